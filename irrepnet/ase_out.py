r"""A trained model's predictions and rollouts as extended XYZ, for ASE, OVITO and VMD.

What ``irrepnet train --write-extxyz PATH`` and ``irrepnet audit --checkpoint ...
--write-extxyz PATH`` write (through :func:`irrepnet.data.ase_io.write_extxyz`):

- energy tasks (``molecules``, ``energy``...): one frame per test graph, its atoms and
  positions, the predicted energy and forces as the frame's single-point calculator
  (``atoms.get_potential_energy()``, ``atoms.get_forces()``), the true ones as the info key
  ``ref_energy`` and the per-atom array ``ref_forces``, and the cell and pbc where the data
  has them;
- trajectory tasks (``twelve_body``): a rollout, the model's own predictions fed back from
  the first test frame :math:`t_0 \ge h` to the end of the trajectory,

  .. math::

      \hat x(t_0) = x(t_0), \qquad \hat x(t+1) = \hat x(t) + f_\theta(\hat x(t), \dots, \hat x(t-h)),

  one frame per step with the true positions as the per-atom array ``ref_positions``, the
  frame index as info ``frame`` and, when the time step is known (``--time-step`` or the
  file's), the time ``frame * dt`` as info ``time``. Beads have no element: ASE's ``X``
  (atomic number 0).

Shapes
------
energy: ``S`` frames of ``N_s`` atoms; rollout: ``T - t_0`` frames of ``N`` beads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import keys as K
from .data.ase_io import import_ase, write_extxyz


def _split(values: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    return np.split(values, np.cumsum(counts)[:-1])


def write_energy_predictions(model, dataset, path, *, overwrite: bool = True) -> Path:
    """Predicted and true energies and forces of ``dataset`` (a ``MoleculeDataset``) as extended XYZ."""
    from .metrics import predict_energy_forces

    data = import_ase("ase.data", feature="writing extended XYZ")
    pred = predict_energy_forces(model, dataset)
    arrays = dataset.arrays()
    counts = pred["num_nodes"]
    z = np.asarray([data.atomic_numbers[s] for s in dataset.species])[arrays[K.SPECIES_ONEHOT].argmax(-1).numpy()]
    extra = {}
    if K.CELL in arrays:
        extra["cell"] = arrays[K.CELL].double().numpy()
        extra["pbc"] = arrays[K.PBC].numpy()
    return write_extxyz(
        path,
        _split(arrays[K.POS].double().numpy(), counts),
        numbers=_split(z, counts),
        energy=pred["energy_pred"],
        forces=_split(pred["forces_pred"], counts),
        info={"ref_energy": pred["energy_true"]},
        arrays={"ref_forces": _split(pred["forces_true"], counts)},
        overwrite=overwrite,
        **extra,
    )


def write_rollout(model, dataset, path, *, start: int | None = None, overwrite: bool = True) -> Path:
    """The model's rollout over ``dataset`` (a ``TrajectoryDataset``, the test split) as extended XYZ.

    ``start`` defaults to the dataset's first frame with a full history; the rollout runs
    to the trajectory's last frame.
    """
    from .metrics import rollout

    traj, h = dataset.trajectory, dataset.history
    t0 = int(dataset.frames.min()) if start is None else int(start)
    t0 = max(t0, h)
    steps = traj.shape[0] - 1 - t0
    if steps < 1:
        raise ValueError(f"no frame after the rollout's start {t0} in a trajectory of {traj.shape[0]} frames")
    pos = rollout(model, traj, [t0], steps, h)[0]  # (steps+1, N, 3), index 0 the true frame t0
    frames = np.arange(t0, t0 + steps + 1)
    dt = getattr(dataset, "time_step", None)
    return write_extxyz(
        path,
        pos,
        time=None if dt is None else frames * dt,
        info={"frame": frames},
        arrays={"ref_positions": traj[frames]},
        overwrite=overwrite,
    )


#: tasks whose test split is one trajectory that a model can be rolled out along
ROLLOUT_TASKS = ("twelve_body",)


def check_writable(spec) -> str:
    """``"energy"`` or ``"rollout"``: what :func:`write_predictions` writes for a task of
    :class:`~irrepnet.interface.TaskSpec` ``spec``; else a one-line ``ValueError``.

    Needs no data, so that the command line refuses before loading or training anything.
    """
    if spec.target == K.ENERGY:
        return "energy"
    if spec.target == K.DISPLACEMENT and spec.name in ROLLOUT_TASKS:
        return "rollout"
    raise ValueError(
        f"--write-extxyz writes energies and forces or trajectory rollouts; task {spec.name!r} predicts "
        f"{spec.target!r} without one trajectory to roll out: drop --write-extxyz"
    )


def write_predictions(model, task, path, *, overwrite: bool = True) -> Path:
    """Predictions of ``model`` on ``task.test`` (energy tasks) or its rollout (trajectory tasks), as extended XYZ."""
    if check_writable(task.spec) == "energy":
        return write_energy_predictions(model, task.test, path, overwrite=overwrite)
    return write_rollout(model, task.test, path, overwrite=overwrite)
