"""The 12-body trajectory task: next-frame prediction on one bead-spring chain.

The task of the dmol-book chapter "Equivariant neural networks with e3nn"
(A. D. White, *Deep Learning for Molecules and Materials*, applied/e3nn_traj):
given the positions of a 12-bead polymer at frame ``t`` (and optionally the last
``h`` frame steps), predict ``x(t+1) - x(t)``. The chapter trains on the first 80%
of the frames and tests on the rest; see :mod:`irrepnet.data.windows` for the
sample layout and the split, and :mod:`irrepnet.data.baselines` for the physical
baselines (on the dmol file, test split: zero 2.43e-5, constant velocity 1.65e-7,
constant acceleration 5.60e-9 MSE per coordinate).

The dmol file is CC BY-NC 3.0 and not shipped: pass its path, or ``path=None`` for
irrepnet's own reference trajectory, shipped with the package
(:mod:`irrepnet.data.reference`: one run of the built-in simulator
:func:`irrepnet.data.simulate_polymer` with :data:`DEFAULT_SIMULATION`, the same
bytes on every machine, sha256-checked; test split: zero 2.37e-5, constant velocity
2.54e-7, constant acceleration 4.57e-8). Simulating afresh is no default because
the chain is chaotic: last-bit differences between CPUs grow into another
trajectory with other baselines. ``simulation=PolymerConfig(...)`` still simulates.

Shapes
------
samples as in :class:`~irrepnet.data.windows.TrajectoryDataset`: ``pos (12, 3)``,
``target_disp (12, 3)``, ``target_pos (12, 3)``, ``node_index (12,)``, and with
``history = h >= 1`` ``vel (12, 3)``, ``vel_history (12, 3h)``.
"""

from __future__ import annotations

import numpy as np
import torch

from .polymer import PolymerConfig, simulate_polymer
from .reference import REFERENCE_CONFIG, reference_source, reference_trajectory
from .trajectory import PathLike, is_dmol_file, load_trajectory
from .windows import TrajectoryDataset, split_trajectory

#: simulator parameters of the shipped reference trajectory (the default data).
DEFAULT_SIMULATION = REFERENCE_CONFIG


def twelve_body_trajectory(
    path: PathLike | None = None,
    *,
    expect_dmol: bool = False,
    simulation: PolymerConfig | None = None,
) -> tuple[np.ndarray, str]:
    """The ``(T, N, 3)`` trajectory of the task and a one-line description of its source.

    Parameters
    ----------
    path : str or PathLike, optional
        a dmol-format file (e.g. the dmol-book ``data/paths.npz``); ``None``: the
        shipped reference trajectory (or a simulation, see ``simulation``).
    expect_dmol : bool
        raise ``ValueError`` unless ``path`` is exactly the dmol-book file.
    simulation : PolymerConfig, optional
        with ``path=None``: simulate with these parameters instead of loading the
        reference file (``DEFAULT_SIMULATION`` gives the reference chain, but only
        statistically: the simulation is chaotic and machine-dependent).

    Raises
    ------
    FileNotFoundError, ValueError
        the reference file is missing or altered (:func:`~irrepnet.data.reference.verify_reference`).
    """
    if path is None:
        if simulation is not None:
            return simulate_polymer(simulation), f"simulate_polymer({simulation})"
        return reference_trajectory(), reference_source()
    x = load_trajectory(path, expect_dmol=expect_dmol)
    tag = "the dmol-book paths.npz (sha256 verified)" if is_dmol_file(path) else "not the dmol-book file"
    return x, f"{path} ({tag})"


def twelve_body(
    path: PathLike | None = None,
    *,
    history: int = 0,
    split: str = "chronological",
    seed: int = 0,
    train_fraction: float = 0.8,
    dtype: torch.dtype = torch.float64,
    expect_dmol: bool = False,
    simulation: PolymerConfig | None = None,
) -> tuple[TrajectoryDataset, TrajectoryDataset]:
    """Train and test datasets of the 12-body task.

    Parameters
    ----------
    path : str or PathLike, optional
        trajectory file; ``None`` uses the shipped reference trajectory
        (:mod:`irrepnet.data.reference`).
    history : int
        ``h`` past frame steps per sample (``vel``, ``vel_history``); frames
        ``t < h`` are dropped from the training split, the test split is unchanged.
    split : {"chronological", "shuffled"}
        80/20 on the frame index; chronological as in the dmol chapter
        (``T = 2048``: frames 0..1636 train, 1637..2046 test).
    seed : int
        permutation seed of the shuffled split.
    train_fraction : float
    dtype : torch.dtype
        float64 by default.
    expect_dmol : bool
        verify that ``path`` is the dmol-book file (sha256) before loading.
    simulation : PolymerConfig, optional
        with ``path=None``: simulate with these parameters instead of loading the
        reference trajectory.

    Returns
    -------
    (train, test) : two :class:`~irrepnet.data.windows.TrajectoryDataset`, each with
    a ``source`` attribute saying where the trajectory came from.
    """
    x, source = twelve_body_trajectory(path, expect_dmol=expect_dmol, simulation=simulation)
    train, test = split_trajectory(
        x, history=history, split=split, train_fraction=train_fraction, seed=seed, dtype=dtype
    )
    train.source = test.source = source
    return train, test
