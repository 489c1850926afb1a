r"""Bulk fcc metal with energies, forces and stress from EMT, sampled by Langevin MD (offline).

The ``bulk_metal`` task: a periodic test bed for energy models. ASE's effective-medium
theory (``ase.calculators.emt.EMT``; Jacobsen, Stoltze & Nørskov, "A semi-empirical
effective medium theory for metals and alloys", Surf. Sci. 366, 394 (1996)) was fitted
to the fcc metals Al, Ni, Cu, Pd, Ag, Pt and Au, so here, unlike on molecules, it is a
realistic potential. Each sample is a frame of a supercell of ``size`` conventional fcc
cells (default 2x2x2, 32 atoms of Cu), with one atom removed in every other
trajectory (a vacancy, 31 atoms), under a small random homogeneous strain
:math:`\eta` (one per trajectory: the symmetric part of a matrix of entries uniform in
:math:`[-\eta_\max, \eta_\max]`, :math:`\eta_\max` = 0.02 by default) of the lattice of ASE's reference lattice constant :math:`a_0`:

.. math::

    C = a_0\, \mathrm{diag}(n_1, n_2, n_3)\,(1 + \eta), \qquad
    E = E_\mathrm{EMT}(x, C), \quad F_i = -\frac{\partial E}{\partial x_i}, \quad
    \sigma = \frac{1}{V}\frac{\partial E}{\partial \varepsilon}\Big|_{\varepsilon = 0},

with the cell's rows the lattice vectors, :math:`V = |\det C|`, and :math:`\sigma` the
stress as ASE's ``get_stress(voigt=False)`` returns it (eV/Å³; positive under tension,
i.e. when the energy rises with the strain :math:`\varepsilon`).

Frames come from Langevin dynamics (ASE's ``Langevin``; time step 5 fs, friction
0.02/fs) at the trajectory's temperature (cycling through ``temperatures``, default
300, 600 and 1200 K; trajectory ``t`` has temperature ``t mod 3`` and a vacancy when
``(t div 3)`` is odd). Each trajectory starts on the lattice with Maxwell-Boltzmann
momenta at twice its temperature (equipartition hands half to the potential), runs
:data:`EQUILIBRATION_STEPS` steps, then keeps one frame every :data:`FRAME_INTERVAL`
steps. The spacing was measured (Cu, 2x2x2, 600 K, 600 steps after 200 of
equilibration): the autocorrelation of the potential energy is 0.065 at a lag of 10
steps, and that of the atom displacements from their sites (per frame, centre of mass
removed) 0.05 at 15 steps, so frames 15 steps (75 fs) apart are nearly independent;
the energy of that run was at its stationary level within its first 20 steps.

Splits are made of **independent trajectories**: every split has its own seed, and
trajectory ``t`` of a split draws its strain, vacancy site, momenta and Langevin noise
from ``numpy.random.default_rng([seed, t])``, so no frame has a neighbour in time in
another split. Positions are wrapped into the cell. Generated arrays are cached on disk
(:mod:`irrepnet.data.cache`). Cost: ASE's EMT is pure Python; one MD step of the 32-atom
cell took 4.3 ms on one core of the development machine (AMD EPYC, 2 cores shared with
other work) in the quietest of three measurements (8.5 and 9.6 ms in the others), and each
frame costs 19 steps (40 of equilibration per 10 frames, 15 between
frames), so the default 2000 + 250 + 250 frames come to about 2500 x 19 x 4.3 ms = 3.4 min
(an estimate from that step time). Measured while the same two cores ran about ten other
processes (load average 7 to 12): 834 s, 133 s and 157 s for the three splits (19 min).
The time of each generation is logged at INFO on the logger ``irrepnet.data.bulk_metal``.

Shapes/irreps
-------------
``S`` frames of ``N_s`` atoms (``N_s`` = ``4 n_1 n_2 n_3`` or one fewer), ``n = sum N_s``.
sample: ``pos (N_s, 3)`` 1o (Å), ``species_onehot (N_s, 1)`` 1x0e, ``target_forces (N_s, 3)``
1o (eV/Å), ``target_energy (1, 1)`` 0e (eV), ``cell (1, 3, 3)`` (Å, rows lattice vectors),
``pbc (1, 3)`` bool (all ``True``), ``target_stress (1, 3, 3)`` (eV/Å³, ASE's sign).
batch: node fields ``(n, ...)``, graph fields ``(G, ...)``, ``batch (n,)``, ``num_nodes (G,)``.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from .. import keys as K
from ..optional import MissingDependencyError
from .cache import cached_arrays
from .molecules import MoleculeDataset

logger = logging.getLogger(__name__)

#: bump when the generator changes in a way that changes its output.
GENERATOR_VERSION = 1
#: the fcc metals EMT was fitted to (Jacobsen, Stoltze & Nørskov 1996)
ELEMENTS = ("Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au")
DEFAULT_ELEMENT = "Cu"
DEFAULT_SIZE = (2, 2, 2)
DEFAULT_TEMPERATURES = (300.0, 600.0, 1200.0)
#: largest entry of the random symmetric strain of each trajectory's lattice
DEFAULT_MAX_STRAIN = 0.02
#: default seed of each split (different: no trajectory is in two splits).
SPLIT_SEEDS = {"train": 2023_1, "valid": 2023_2, "test": 2023_3}
SPLIT_SIZES = {"train": 2000, "valid": 250, "test": 250}
#: frames kept from each trajectory
FRAMES_PER_TRAJECTORY = 10
#: MD steps between two kept frames (75 fs; see the module docstring for the measurement)
FRAME_INTERVAL = 15
#: MD steps before the first kept frame
EQUILIBRATION_STEPS = 40
TIMESTEP_FS = 5.0
FRICTION_PER_FS = 0.02
#: structures, indexed by the dataset's ``molecule`` array
STRUCTURES = ("perfect", "vacancy")


def _import_ase():
    """ASE's modules used here, or a :class:`~irrepnet.optional.MissingDependencyError` with the install."""
    try:
        build = importlib.import_module("ase.build")
        emt = importlib.import_module("ase.calculators.emt")
        langevin = importlib.import_module("ase.md.langevin")
        units = importlib.import_module("ase.units")
    except ImportError as exc:
        raise MissingDependencyError(
            f"the bulk_metal task runs molecular dynamics with ASE, which is not installed ({exc}); "
            "pip install ase   (or pip install 'irrepnet[ase]')",
            package="ase",
            install="pip install ase",
        ) from None
    return build, emt, langevin, units


def _check_options(element: str, size: Sequence[int], temperatures: Sequence[float], max_strain: float) -> None:
    if element not in ELEMENTS:
        raise ValueError(f"element must be one of the fcc metals EMT was fitted to, {ELEMENTS}; got {element!r}")
    if len(size) != 3 or any(int(s) != s or s < 1 for s in size):
        raise ValueError(f"size must be three positive integers (conventional cells along a, b, c), got {size!r}")
    if not temperatures or any(not t > 0 for t in temperatures):
        raise ValueError(f"temperatures must be one or more values > 0 K, got {temperatures!r}")
    if not 0 <= max_strain < 0.2:
        raise ValueError(f"max_strain must be in [0, 0.2) (a fraction of the lattice), got {max_strain}")


def trajectory_plan(t: int, temperatures: Sequence[float]) -> tuple[float, bool]:
    """``(temperature, vacancy)`` of trajectory ``t``: temperatures cycle, a vacancy every other cycle."""
    return float(temperatures[t % len(temperatures)]), (t // len(temperatures)) % 2 == 1


def generate_bulk_metal(
    n_frames: int,
    *,
    seed: int,
    element: str = DEFAULT_ELEMENT,
    size: Sequence[int] = DEFAULT_SIZE,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    max_strain: float = DEFAULT_MAX_STRAIN,
    frames_per_trajectory: int = FRAMES_PER_TRAJECTORY,
) -> dict[str, np.ndarray]:
    """Frames of Langevin trajectories and their EMT labels (no cache; see the module docstring).

    Returns ``pos, forces (n, 3)``, ``species (n,)`` (all 0), ``num_nodes (S,)``,
    ``energy (S,)``, ``stress, cell (S, 3, 3)``, ``pbc (S, 3)``, ``molecule (S,)`` (index
    into :data:`STRUCTURES`), ``temperature (S,)`` and ``trajectory (S,)``.
    """
    if n_frames < 1:
        raise ValueError(f"need at least one frame, got n_frames={n_frames}")
    if frames_per_trajectory < 1:
        raise ValueError(f"frames_per_trajectory must be >= 1, got {frames_per_trajectory}")
    _check_options(element, size, temperatures, max_strain)
    build, emt, langevin, units = _import_ase()
    calc = emt.EMT()
    out = {k: [] for k in ("pos", "forces", "num_nodes", "energy", "stress", "cell", "molecule", "temperature")}
    traj = []
    for t in range((n_frames + frames_per_trajectory - 1) // frames_per_trajectory):
        rng = np.random.default_rng([seed, t])
        temperature, vacancy = trajectory_plan(t, temperatures)
        atoms = build.bulk(element, "fcc", cubic=True).repeat(tuple(int(s) for s in size))
        eta = rng.uniform(-max_strain, max_strain, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eta + eta.T)), scale_atoms=True)
        if vacancy:
            del atoms[int(rng.integers(len(atoms)))]
        # momenta at 2T: starting on the lattice, equipartition moves half of it to the potential
        kt = 2 * temperature * units.kB
        masses = atoms.get_masses()[:, None]
        atoms.set_momenta(np.sqrt(masses * kt) * rng.standard_normal((len(atoms), 3)))
        atoms.calc = calc
        dyn = langevin.Langevin(
            atoms,
            TIMESTEP_FS * units.fs,
            temperature_K=temperature,
            friction=FRICTION_PER_FS / units.fs,
            fixcm=False,  # periodic: the centre of mass may wander; ASE deprecates fixcm=True
            rng=rng,
        )
        dyn.run(EQUILIBRATION_STEPS)
        for _ in range(min(frames_per_trajectory, n_frames - len(traj))):
            dyn.run(FRAME_INTERVAL)
            out["energy"].append(atoms.get_potential_energy())
            out["forces"].append(atoms.get_forces())
            out["stress"].append(atoms.get_stress(voigt=False))
            out["pos"].append(atoms.get_positions(wrap=True))
            out["cell"].append(atoms.cell.array.copy())
            out["num_nodes"].append(len(atoms))
            out["molecule"].append(int(vacancy))
            out["temperature"].append(temperature)
            traj.append(t)
    n = sum(out["num_nodes"])
    return {
        "pos": np.concatenate(out["pos"]),
        "forces": np.concatenate(out["forces"]),
        "species": np.zeros(n, dtype=np.int64),
        "num_nodes": np.asarray(out["num_nodes"], dtype=np.int64),
        "energy": np.asarray(out["energy"], dtype=np.float64),
        "stress": np.asarray(out["stress"], dtype=np.float64),
        "cell": np.asarray(out["cell"], dtype=np.float64),
        "pbc": np.ones((len(traj), 3), dtype=bool),
        "molecule": np.asarray(out["molecule"], dtype=np.int64),
        "temperature": np.asarray(out["temperature"], dtype=np.float64),
        "trajectory": np.asarray(traj, dtype=np.int64),
    }


class BulkMetalDataset(MoleculeDataset):
    """Periodic frames: a :class:`~irrepnet.data.molecules.MoleculeDataset` with a cell, pbc and stress per graph.

    Same ``batch``, ``subset`` and ``arrays`` as the molecules; the graph fields add
    ``cell (S, 3, 3)``, ``pbc (S, 3)`` and ``target_stress (S, 3, 3)``. ``molecule``
    indexes :data:`STRUCTURES` (0 perfect, 1 vacancy); ``temperature`` and ``trajectory``
    are per frame (numpy).

    Parameters
    ----------
    arrays : dict
        as returned by :func:`generate_bulk_metal`.
    element : str
        the metal (the one species).
    dtype : torch.dtype
        floating dtype of the returned tensors.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        *,
        element: str,
        split: str = "",
        seed: int | None = None,
        config: dict | None = None,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__(arrays, species=(element,), names=STRUCTURES, split=split, seed=seed, dtype=dtype)
        self.element, self.config = element, dict(config or {})
        S = len(self)
        cell, stress = np.asarray(arrays["cell"]), np.asarray(arrays["stress"])
        if cell.shape != (S, 3, 3) or stress.shape != (S, 3, 3) or np.asarray(arrays["pbc"]).shape != (S, 3):
            raise ValueError(
                f"bulk metal arrays disagree: {S} frames, but cell {cell.shape}, stress {stress.shape} "
                f"and pbc {np.asarray(arrays['pbc']).shape}; expected (S, 3, 3), (S, 3, 3), (S, 3)"
            )
        self._graph[K.CELL] = torch.as_tensor(cell).to(dtype)
        self._graph[K.PBC] = torch.as_tensor(np.asarray(arrays["pbc"])).bool()
        self._graph[K.TARGET_STRESS] = torch.as_tensor(stress).to(dtype)
        self.temperature = np.asarray(arrays["temperature"], dtype=np.float64)
        self.trajectory = np.asarray(arrays["trajectory"], dtype=np.int64)

    def subset(self, indices) -> BulkMetalDataset:
        """Frames ``indices`` as a new dataset (a copy)."""
        idx = self._index(indices).numpy()
        out = super().subset(indices)  # a copy of self, with the node and graph fields cut
        out.temperature, out.trajectory = self.temperature[idx], self.trajectory[idx]
        return out

    def __repr__(self) -> str:
        vac = int(self.molecule.sum())
        return (
            f"BulkMetalDataset({self.split}: {len(self)} frames of fcc {self.element} ({vac} with a vacancy), "
            f"{len(set(self.trajectory.tolist()))} trajectories at {sorted(set(self.temperature.tolist()))} K, "
            f"seed={self.seed}, {self.dtype})"
        )


def bulk_metal(
    split: str = "train",
    *,
    n_train: int = SPLIT_SIZES["train"],
    n_valid: int = SPLIT_SIZES["valid"],
    n_test: int = SPLIT_SIZES["test"],
    seed: int | None = None,
    element: str = DEFAULT_ELEMENT,
    size: Sequence[int] = DEFAULT_SIZE,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    max_strain: float = DEFAULT_MAX_STRAIN,
    frames_per_trajectory: int = FRAMES_PER_TRAJECTORY,
    cache_dir=None,
    use_cache: bool = True,
    dtype: torch.dtype = torch.float64,
) -> BulkMetalDataset:
    """One split of the bulk metal dataset (see the module docstring).

    Parameters
    ----------
    split : {"train", "valid", "test"}
    n_train, n_valid, n_test : int
        frames in each split (2000, 250, 250).
    seed : int, optional
        override the split's default seed (:data:`SPLIT_SEEDS`).
    element : str
        one of :data:`ELEMENTS` (default Cu).
    size : three ints
        conventional fcc cells (4 atoms each) along a, b, c.
    temperatures : sequence of float
        Langevin temperatures in K, cycled over the trajectories.
    max_strain : float
        largest entry of each trajectory's random symmetric lattice strain.
    frames_per_trajectory : int
        frames kept from each trajectory (default 10).
    cache_dir, use_cache
        as in :func:`irrepnet.data.cache.cached_arrays`. On a cache miss the generation
        time is logged at INFO on the logger ``irrepnet.data.bulk_metal``.
    """
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {tuple(SPLIT_SEEDS)}, got {split!r}")
    n = {"train": n_train, "valid": n_valid, "test": n_test}[split]
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the {split} split needs at least one frame, got {n!r}")
    seed = SPLIT_SEEDS[split] if seed is None else int(seed)
    size, temperatures = tuple(int(s) for s in size), tuple(float(t) for t in temperatures)
    _check_options(element, size, temperatures, max_strain)
    _import_ase()  # the clear error when ASE is missing, before any cache lookup
    ase = importlib.import_module("ase")
    config = {
        "element": element,
        "size": list(size),
        "temperatures": list(temperatures),
        "max_strain": float(max_strain),
        "frames_per_trajectory": int(frames_per_trajectory),
        "timestep_fs": TIMESTEP_FS,
        "friction_per_fs": FRICTION_PER_FS,
        "interval": FRAME_INTERVAL,
        "equilibration": EQUILIBRATION_STEPS,
    }
    params = {"version": GENERATOR_VERSION, "n": int(n), "seed": seed, **config, "ase": ase.__version__}

    def generate():
        t0 = time.perf_counter()
        arrays = generate_bulk_metal(
            int(n),
            seed=seed,
            element=element,
            size=size,
            temperatures=temperatures,
            max_strain=max_strain,
            frames_per_trajectory=frames_per_trajectory,
        )
        logger.info(
            "generated %d %s frames of fcc %s (%d atoms) in %.1f s",
            n,
            split,
            element,
            len(arrays["pos"]),
            time.perf_counter() - t0,
        )
        return arrays

    arrays = cached_arrays("bulk-metal-emt", params, generate, cache_dir=cache_dir, use_cache=use_cache)
    return BulkMetalDataset(arrays, element=element, split=split, seed=seed, config=config, dtype=dtype)
