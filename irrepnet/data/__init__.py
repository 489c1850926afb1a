"""Tasks: trajectory files, windows and splits, simulators, and physical baselines.

- :mod:`.trajectory`: the dmol-book file format (``load_trajectory``, ``save_trajectory``,
  ``verify_dmol_file``).
- :mod:`.windows`: next-frame samples over one trajectory and frame-index splits.
- :mod:`.twelve_body_task`: the dmol-book 12-body task (file, shipped reference, or simulator).
- :mod:`.reference`: the shipped reference trajectory of the 12-body task (sha256-pinned).
- :mod:`.polymer`: bead-spring polymer simulator.
- :mod:`.nbody_sim`, :mod:`.nbody_task`: the charged N-body task of the EGNN paper.
- :mod:`.molecules`: small molecules with EMT energies and forces (needs ASE; offline).
- :mod:`.bulk_metal`: periodic fcc metal frames from Langevin MD with EMT energies, forces and
  stress, the ``bulk_metal`` task (needs ASE; offline).
- :mod:`.ase_io`: any file ``ase.io`` reads as a trajectory, and extended XYZ written back (needs ASE).
- :mod:`.energy_files`: energy and force frames from such files, the ``energy`` task (needs ASE).
- :mod:`.cache`: on-disk cache of generated arrays.
- :mod:`.baselines`: zero, constant-velocity, constant-acceleration and Linear baselines.
"""

from .ase_io import AseTrajectory, load_ase_trajectory, write_extxyz
from .baselines import (
    BASELINES,
    applicable_baselines,
    constant_acceleration,
    constant_velocity,
    evaluate_baselines,
    fit_linear_delta_t,
    linear,
    predict,
    zero_displacement,
)
from .bulk_metal import BulkMetalDataset, bulk_metal, generate_bulk_metal
from .cache import cache_path, cache_root, cached_arrays
from .dataset import GraphArrayDataset
from .energy_files import EnergyFileDataset, energy_splits, read_energy_frames
from .molecules import MoleculeDataset, generate_molecules, molecule_names, molecules
from .nbody_sim import coulomb_energy, coulomb_forces, simulate_charged
from .nbody_task import NBodyConfig, NBodyDataset, generate_nbody, nbody
from .polymer import DMOL_STATS, PolymerConfig, polymer_energy, polymer_forces, simulate_polymer, trajectory_stats
from .reference import (
    REFERENCE_BASELINES,
    REFERENCE_CONFIG,
    REFERENCE_FILE,
    REFERENCE_SHA256,
    REFERENCE_STATS,
    REFERENCE_TOLERANCES,
    reference_stats,
    reference_trajectory,
    verify_reference,
    write_reference,
)
from .trajectory import (
    DMOL_SHA256,
    check_trajectory,
    file_sha256,
    find_dmol_file,
    is_dmol_file,
    load_trajectory,
    save_trajectory,
    verify_dmol_file,
)
from .twelve_body_task import DEFAULT_SIMULATION, twelve_body, twelve_body_trajectory
from .windows import TrajectoryDataset, split_frames, split_trajectory

__all__ = [
    "AseTrajectory",
    "BASELINES",
    "BulkMetalDataset",
    "DEFAULT_SIMULATION",
    "DMOL_SHA256",
    "DMOL_STATS",
    "EnergyFileDataset",
    "GraphArrayDataset",
    "MoleculeDataset",
    "NBodyConfig",
    "NBodyDataset",
    "PolymerConfig",
    "REFERENCE_BASELINES",
    "REFERENCE_CONFIG",
    "REFERENCE_FILE",
    "REFERENCE_SHA256",
    "REFERENCE_STATS",
    "REFERENCE_TOLERANCES",
    "TrajectoryDataset",
    "applicable_baselines",
    "bulk_metal",
    "cache_path",
    "cache_root",
    "cached_arrays",
    "check_trajectory",
    "constant_acceleration",
    "constant_velocity",
    "coulomb_energy",
    "coulomb_forces",
    "energy_splits",
    "evaluate_baselines",
    "file_sha256",
    "find_dmol_file",
    "fit_linear_delta_t",
    "generate_bulk_metal",
    "generate_molecules",
    "generate_nbody",
    "is_dmol_file",
    "linear",
    "load_ase_trajectory",
    "load_trajectory",
    "molecule_names",
    "molecules",
    "nbody",
    "polymer_energy",
    "polymer_forces",
    "predict",
    "read_energy_frames",
    "reference_stats",
    "reference_trajectory",
    "save_trajectory",
    "simulate_charged",
    "simulate_polymer",
    "split_frames",
    "split_trajectory",
    "trajectory_stats",
    "twelve_body",
    "twelve_body_trajectory",
    "verify_dmol_file",
    "verify_reference",
    "write_extxyz",
    "write_reference",
    "zero_displacement",
]
