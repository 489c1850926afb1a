r"""Any file ``ase.io`` reads, in as a trajectory, and frames out as extended XYZ.

Reading: :func:`load_ase_trajectory` takes every frame of a file that
``ase.io.read(path, index=":")`` reads (extended XYZ, XYZ, ASE ``.traj``, LAMMPS dumps...)
as one trajectory of fixed atoms, with the checks of the ``.npz`` loader
(:func:`irrepnet.data.trajectory.check_trajectory`: NaN, too few frames, no motion) and
two of its own (the atom count and the atomic numbers must not change between frames).
:func:`irrepnet.data.trajectory.load_trajectory` dispatches here for anything that is
not an ``.npz``, so ``irrepnet train --data run.extxyz`` trains the displacement task
on the file's positions exactly as on the same positions saved as ``.npz``.

Velocities come from the file when every frame has them (an ``extxyz`` ``vel`` or
``velocities`` column, as stored; or ASE's momenta, ``atoms.get_velocities()``, in ASE's
units: Å per ASE time unit of about 10.18 fs, into which ASE's LAMMPS reader converts a
dump's ``vx vy vz``), otherwise from central finite differences of the positions,

.. math::

    v(t) = \frac{x(t+1) - x(t-1)}{2\,\Delta t}, \qquad
    v(0) = \frac{x(1) - x(0)}{\Delta t}, \quad v(T-1) = \frac{x(T-1) - x(T-2)}{\Delta t},

with the frame time step :math:`\Delta t` from the file (an info key ``time`` on every
frame, evenly spaced, or ``dt``/``timestep``/``time_step``) or given (``--time-step``, in
the file's time unit). The displacement task needs neither: its inputs are frame steps.

Periodic files store wrapped coordinates, which jump by a cell vector where an atom
crosses the boundary. Along the periodic directions each frame step is therefore taken
as its minimum image in the cell :math:`C_t` of frame ``t`` (rows a, b, c), and the
positions are rebuilt from those steps (unwrapped):

.. math::

    s = (x(t+1) - x(t))\,C_t^{-1}, \qquad s_k \leftarrow s_k - \mathrm{round}(s_k)
    \ \text{(periodic } k\text{)}, \qquad x(t+1) \leftarrow x(t) + s\,C_t,

which is right as long as no atom moves half a cell between two frames.

Writing: :func:`write_extxyz` writes frames of positions with optional energies and forces
(as an ASE single-point calculator, so that ``atoms.get_potential_energy()`` and
``get_forces()`` read them back), velocities, cells, times and any other per-frame or
per-atom values, for ASE, OVITO and VMD. Extended XYZ keeps 8 decimals of each per-atom
value (ASE's ``%16.8f``).

ASE is optional: it is imported inside the functions, and its absence is a
:class:`~irrepnet.optional.MissingDependencyError` that says ``pip install 'irrepnet[ase]'``.

Shapes
------
``T`` frames of ``N`` atoms: positions and velocities ``(T, N, 3)``, atomic numbers
``(N,)``, cells ``(T, 3, 3)`` (rows a, b, c; zero for a non-periodic frame), pbc ``(T, 3)``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..optional import require
from .trajectory import NUMPY_SUFFIXES, PathLike, _check_usable, check_trajectory

#: what the error for a missing ASE tells the user to run
ASE_INSTALL = "pip install 'irrepnet[ase]'"
#: per-frame info key holding the simulation time of the frame
TIME_KEY = "time"
#: info keys holding the time between frames (the first found is used)
STEP_KEYS = ("dt", "timestep", "time_step")
#: per-atom arrays holding velocities (as extxyz writers name them); ASE's momenta come after them
VELOCITY_ARRAYS = ("vel", "velocities")
#: relative spread of the ``time`` differences still taken as one time step
TIME_STEP_RTOL = 1e-6


def import_ase(module: str = "ase.io", feature: str = "reading this file") -> Any:
    """``module`` of ASE, or a :class:`~irrepnet.optional.MissingDependencyError` naming the ``ase`` extra."""
    return require(module, feature=feature, package="ase", install=ASE_INSTALL)


def _existing_file(path: PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {p}")
    if p.is_dir():
        raise FileNotFoundError(f"{p} is a directory; pass the path of the file itself")
    return p


def read_frames(path: PathLike, *, format: str | None = None) -> list:
    """Every frame of ``path`` as ``ase.Atoms`` (``ase.io.read(path, index=":")``).

    Raises
    ------
    FileNotFoundError
        no such file.
    ValueError
        ASE cannot read it (the message quotes ASE's reason), or it holds no frame.
    irrepnet.optional.MissingDependencyError
        ASE is not installed.
    """
    p = _existing_file(path)
    aseio = import_ase("ase.io", feature=f"reading {p.name} (any file but an .npz goes through ase.io)")
    try:
        frames = aseio.read(p, index=":", format=format)
    except Exception as exc:  # ASE's parsers raise many types (KeyError, IndexError, UnknownFileTypeError...)
        raise ValueError(
            f"{p}: ase.io cannot read it ({type(exc).__name__}: {exc}); give a file ase.io.read reads "
            "(.extxyz, .xyz, .traj, a LAMMPS dump...) or an .npz trajectory with the key 'arr'"
        ) from None
    if not isinstance(frames, list):  # one Atoms for a single-frame reader
        frames = [frames]
    if not frames:
        raise ValueError(f"{p} holds no frames")
    return frames


def frame_time_step(frames: Sequence[Any], name: str = "the file") -> tuple[float, str] | None:
    """``(dt, where it came from)`` of ``frames``, or ``None`` when the file does not say.

    From the ``time`` info of every frame (which must be evenly spaced and increasing),
    else from a ``dt``/``timestep``/``time_step`` info that every frame holds with one
    positive value (a value that changes from frame to frame is a step counter, not a time
    step).
    """
    if len(frames) >= 2 and all(TIME_KEY in f.info for f in frames):
        times = np.asarray([float(f.info[TIME_KEY]) for f in frames])
        steps = np.diff(times)
        dt = float(steps[0])
        if not np.all(steps > 0) or not np.allclose(steps, dt, rtol=TIME_STEP_RTOL, atol=0.0):
            bad = int(np.argmax(~np.isclose(steps, dt, rtol=TIME_STEP_RTOL, atol=0.0) | (steps <= 0)))
            raise ValueError(
                f"{name}: the frames' info {TIME_KEY!r} is not evenly spaced and increasing (step {dt:g} at "
                f"frame 0, {steps[bad]:g} at frame {bad}); give evenly spaced frames, or pass --time-step"
            )
        return dt, f"info {TIME_KEY!r}"
    for key in STEP_KEYS:
        values = {float(f.info[key]) for f in frames if key in f.info}
        # one positive value on every frame; ASE's LAMMPS reader stores the step counter
        # (0, 10, 20...) as "timestep", which is no time step and is passed over
        if len(values) == 1 and all(key in f.info for f in frames) and min(values) > 0:
            return values.pop(), f"info {key!r}"
    return None


def _file_velocities(frames: Sequence[Any]) -> np.ndarray | None:
    """``(T, N, 3)`` velocities stored in every frame, or ``None``."""
    for key in VELOCITY_ARRAYS:
        if all(key in f.arrays for f in frames):
            return np.stack([np.asarray(f.arrays[key], dtype=np.float64) for f in frames])
    if all("momenta" in f.arrays for f in frames):
        return np.stack([f.get_velocities() for f in frames]).astype(np.float64)
    return None


def unwrap_positions(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Positions ``(T, N, 3)`` with each frame step replaced by its minimum image (module docstring).

    ``cell (T, 3, 3)`` and ``pbc (T, 3)`` per frame; frames without periodicity are left as they are.
    """
    x = np.array(positions, dtype=np.float64, copy=True)
    for t in range(x.shape[0] - 1):
        periodic = np.asarray(pbc[t], dtype=bool)
        if not periodic.any():
            continue
        c = np.asarray(cell[t], dtype=np.float64)
        step = np.linalg.solve(c.T, (positions[t + 1] - positions[t]).T).T  # fractional: step = s @ c
        step[:, periodic] -= np.round(step[:, periodic])
        x[t + 1] = x[t] + step @ c
    return x


def finite_difference_velocities(positions: np.ndarray, time_step: float) -> np.ndarray:
    """Central differences inside, one-sided at both ends (the module docstring's formula); ``(T, N, 3)``."""
    return np.gradient(np.asarray(positions, dtype=np.float64), float(time_step), axis=0)


@dataclass
class AseTrajectory:
    """The frames of one file as a trajectory (see :func:`load_ase_trajectory`).

    Attributes
    ----------
    positions : numpy.ndarray
        ``(T, N, 3)`` float64; unwrapped along periodic directions (see :func:`unwrap_positions`).
    numbers : numpy.ndarray
        ``(N,)`` atomic numbers, the same in every frame.
    velocities : numpy.ndarray or None
        ``(T, N, 3)``: from the file, or finite differences; ``None`` when not asked for and
        not in the file.
    velocity_source : str
        ``"file"``, ``"finite differences"`` or ``"none"``.
    time_step : float or None
        time between frames, in the file's unit; ``None`` when unknown.
    time_step_source : str
        ``"--time-step"``, ``"info 'time'"``, ``"info 'dt'"``... or ``"none"``.
    cell : numpy.ndarray
        ``(T, 3, 3)``; pbc ``(T, 3)`` bool.
    """

    positions: np.ndarray
    numbers: np.ndarray
    velocities: np.ndarray | None
    velocity_source: str
    time_step: float | None
    time_step_source: str
    cell: np.ndarray
    pbc: np.ndarray
    path: str = ""


def load_ase_trajectory(
    path: PathLike,
    *,
    time_step: float | None = None,
    velocities: bool = True,
    format: str | None = None,
    unwrap: bool = True,
) -> AseTrajectory:
    """Read every frame of ``path`` (any format ``ase.io`` reads) as one trajectory.

    Parameters
    ----------
    path : str or PathLike
    time_step : float, optional
        time between frames in the file's time unit; overrides the file's (``--time-step``).
    velocities : bool
        ``True``: the result holds velocities, from the file or by finite differences, and
        a file without velocities and without a time step is refused. ``False``: velocities
        only if the file has them (the displacement task reads frame steps instead).
    format : str, optional
        ASE's format name when the suffix does not say it (``"lammps-dump-text"``).
    unwrap : bool
        rebuild periodic positions from minimum-image frame steps (the module docstring);
        ``False`` keeps them as stored.

    Raises
    ------
    ValueError
        the atom count or the atomic numbers change between frames; the positions fail
        :func:`~irrepnet.data.trajectory.check_trajectory` (NaN, fewer than 2 frames) or
        do not move; a non-positive ``time_step``; velocities asked for with no time step.
    """
    frames = read_frames(path, format=format)
    p = str(path)
    n0, z0 = len(frames[0]), frames[0].numbers
    for i, f in enumerate(frames):
        if len(f) != n0:
            raise ValueError(
                f"{p}: frame {i} has {len(f)} atoms but frame 0 has {n0}; a trajectory keeps the same atoms "
                "in every frame (split the file where the count changes, or train the energy task on it)"
            )
        if not np.array_equal(f.numbers, z0):
            j = int(np.argmax(f.numbers != z0))
            raise ValueError(
                f"{p}: the atomic numbers change at frame {i} (atom {j}: {int(z0[j])} -> {int(f.numbers[j])}); "
                "a trajectory keeps the same atoms in the same order in every frame"
            )
    positions = check_trajectory(np.stack([f.positions for f in frames]), name=p)
    cell = np.stack([np.asarray(f.cell[:], dtype=np.float64) for f in frames])
    pbc = np.stack([np.asarray(f.pbc, dtype=bool) for f in frames])
    if unwrap and pbc.any():
        singular = [i for i in range(len(frames)) if pbc[i].any() and abs(np.linalg.det(cell[i])) < 1e-12]
        if singular:
            raise ValueError(
                f"{p}: frame {singular[0]} is periodic but its cell has no volume; give the cell, or read "
                "it with unwrap=False"
            )
        positions = unwrap_positions(positions, cell, pbc)
    _check_usable(positions, Path(p))
    if time_step is not None:
        if not time_step > 0:
            raise ValueError(f"--time-step must be > 0 (the time between frames), got {time_step}")
        dt, dt_source = float(time_step), "--time-step"
    else:
        found = frame_time_step(frames, p)
        dt, dt_source = found if found is not None else (None, "none")
    vel, vel_source = _file_velocities(frames), "file"
    if vel is None:
        vel_source = "none"
        if velocities:
            if dt is None:
                raise ValueError(
                    f"{p} holds no velocities and no time step (no info key {TIME_KEY!r} on every frame, nor "
                    f"{'/'.join(STEP_KEYS)}); pass --time-step (the time between frames, in the file's unit) "
                    "to take them as finite differences"
                )
            vel, vel_source = finite_difference_velocities(positions, dt), "finite differences"
    if vel is not None:
        vel = check_trajectory(vel, name=f"{p} velocities")
    return AseTrajectory(
        positions=positions,
        numbers=np.asarray(z0, dtype=np.int64),
        velocities=vel,
        velocity_source=vel_source,
        time_step=dt,
        time_step_source=dt_source,
        cell=cell,
        pbc=pbc,
        path=p,
    )


def _per_frame(name: str, values, count: int) -> list:
    values = list(values)
    if len(values) != count:
        raise ValueError(f"write_extxyz: {name} has {len(values)} frames, positions have {count}")
    return values


def write_extxyz(
    path: PathLike,
    positions: Sequence[np.ndarray] | np.ndarray,
    *,
    numbers: Sequence[int] | Sequence[Sequence[int]] | np.ndarray | None = None,
    energy: Sequence[float] | np.ndarray | None = None,
    forces: Sequence[np.ndarray] | np.ndarray | None = None,
    velocities: Sequence[np.ndarray] | np.ndarray | None = None,
    cell: Sequence[np.ndarray] | np.ndarray | None = None,
    pbc: Sequence[Sequence[bool]] | np.ndarray | None = None,
    time: Sequence[float] | np.ndarray | None = None,
    info: Mapping[str, Sequence[Any]] | None = None,
    arrays: Mapping[str, Sequence[np.ndarray]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write frames as one extended XYZ file that ASE, OVITO and VMD open; returns the path.

    Parameters
    ----------
    path : str or PathLike
    positions : array ``(T, N, 3)`` or sequence of ``(N_t, 3)``
        one entry per frame; frames may differ in size.
    numbers : array ``(N,)`` or sequence of ``(N_t,)``, optional
        atomic numbers, shared by every frame or one per frame; default 0 (ASE's ``X``).
    energy : ``(T,)``, optional; forces : ``(T, N, 3)`` or sequence of ``(N_t, 3)``, optional
        kept as a single-point calculator: ``atoms.get_potential_energy()`` and
        ``atoms.get_forces()`` of the frames read back return them.
    velocities : like ``positions``, optional
        written as ASE's momenta (``atoms.get_velocities()`` returns them).
    cell : ``(T, 3, 3)``, pbc : ``(T, 3)``, optional
        per frame; default no cell and no periodicity.
    time : ``(T,)``, optional
        the info key ``time`` of each frame (what :func:`frame_time_step` reads).
    info : mapping of str to ``(T,)``, optional
        more per-frame values (e.g. ``ref_energy``).
    arrays : mapping of str to sequence of ``(N_t, k)``, optional
        more per-atom values (e.g. ``ref_forces``).
    overwrite : bool
        replace an existing file; otherwise ``FileExistsError``.
    """
    ase = import_ase("ase", feature="writing extended XYZ")
    aseio = import_ase("ase.io", feature="writing extended XYZ")
    spc = import_ase("ase.calculators.singlepoint", feature="writing extended XYZ")
    p = Path(path).expanduser()
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} already exists; pass overwrite=True (or remove it) to replace it")
    pos = [np.asarray(x, dtype=np.float64) for x in positions]
    T = len(pos)
    if T == 0:
        raise ValueError("write_extxyz: no frames to write")
    if numbers is None:
        nums = [np.zeros(len(x), dtype=np.int64) for x in pos]
    elif _ragged(numbers):  # one (N_t,) per frame
        nums = _per_frame("numbers", [np.asarray(z, dtype=np.int64) for z in numbers], T)
    else:  # one (N,) for every frame
        nums = [np.asarray(numbers, dtype=np.int64)] * T
    columns = {"energy": energy, "forces": forces, "velocities": velocities, "cell": cell, "pbc": pbc, "time": time}
    per = {k: _per_frame(k, v, T) for k, v in columns.items() if v is not None}
    extra_info = {k: _per_frame(k, v, T) for k, v in (info or {}).items()}
    extra_arrays = {k: _per_frame(k, v, T) for k, v in (arrays or {}).items()}
    images = []
    for t in range(T):
        atoms = ase.Atoms(numbers=np.asarray(nums[t], dtype=np.int64), positions=pos[t])
        if "cell" in per:
            atoms.cell = np.asarray(per["cell"][t], dtype=np.float64).reshape(3, 3)
        if "pbc" in per:
            atoms.pbc = np.asarray(per["pbc"][t], dtype=bool).reshape(3)
        if "velocities" in per:
            atoms.set_velocities(np.asarray(per["velocities"][t], dtype=np.float64))
        if "time" in per:
            atoms.info[TIME_KEY] = float(per["time"][t])
        for k, v in extra_info.items():
            atoms.info[k] = v[t].item() if isinstance(v[t], np.generic) else v[t]
        for k, v in extra_arrays.items():
            atoms.arrays[k] = np.asarray(v[t], dtype=np.float64)
        results = {}
        if "energy" in per:
            results["energy"] = float(per["energy"][t])
        if "forces" in per:
            results["forces"] = np.asarray(per["forces"][t], dtype=np.float64)
        if results:
            atoms.calc = spc.SinglePointCalculator(atoms, **results)
        images.append(atoms)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        aseio.write(tmp, images, format="extxyz")
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def _ragged(numbers) -> bool:
    """Whether ``numbers`` is a sequence of per-frame sequences (not one ``(N,)`` list)."""
    first = next(iter(numbers), None)
    return first is not None and np.ndim(first) == 1


def trajectory_time_step(path: PathLike, time_step: float | None = None) -> float | None:
    """The time between the frames of trajectory file ``path``: ``time_step`` if given, else
    what an ASE file's info says (:func:`frame_time_step`), else ``None`` (``.npz`` files keep none)."""
    if time_step is not None:
        if not time_step > 0:
            raise ValueError(f"--time-step must be > 0 (the time between frames), got {time_step}")
        return float(time_step)
    if Path(path).suffix.lower() in NUMPY_SUFFIXES or zipfile.is_zipfile(path):
        return None
    found = frame_time_step(read_frames(path), str(path))
    return None if found is None else found[0]
