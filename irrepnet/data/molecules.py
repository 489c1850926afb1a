r"""Small molecules with energies and forces from a classical potential (offline, no download).

The ``molecules`` task of issue 13 in its offline form: the molecules of ASE's bundled
G2 collection (Curtiss et al., J. Chem. Phys. 106, 1063 (1997); ``ase.collections.g2``)
made only of elements ASE's effective-medium-theory calculator has parameters for
(H, C, N, O here; Jacobsen, Stoltze & Nørskov, Surf. Sci. 366, 394 (1996), ASE's
``ase.calculators.emt.EMT``), each geometry displaced at random and labelled with the
EMT energy and forces:

.. math::

    x^{(s)}_i = x^{\mathrm{G2}}_{m(s), i} + \sigma\,\varepsilon_{s,i}, \quad
    \varepsilon_{s,i} \sim \mathcal N(0, I_3), \qquad
    E_s = E_\mathrm{EMT}(x^{(s)}), \qquad F_{s,i} = -\partial E_s / \partial x^{(s)}_i .

EMT is a toy for molecules (its parameters were fitted to metals, and the G2 geometries
are not its minima: their forces are already about 2 eV/Å RMS), but it is a smooth,
E(3)-invariant, many-body potential that a package ships, which is what a test bed of
energy-and-force models needs. Sample ``s`` is molecule ``m(s) = s mod M`` (every split
holds every molecule, in equal shares up to one), so splits differ by geometry, not by
molecule; each split has its own seed, so no geometry is in two splits. Single atoms
(no geometry, zero force) are left out. Generated arrays are cached on disk
(:mod:`irrepnet.data.cache`); 3000 geometries take about 5 s on one core.

Shapes/irreps
-------------
``S`` molecules of ``N_s`` atoms, ``n = sum N_s``, ``k`` species.
sample: ``pos (N_s, 3)`` 1o (Å), ``species_onehot (N_s, k)`` kx0e, ``target_forces (N_s, 3)``
1o (eV/Å), ``target_energy (1, 1)`` 0e (eV, a graph field).
batch: node fields ``(n, ...)``, ``target_energy (G, 1)``, ``batch (n,)``, ``num_nodes (G,)``.
"""

from __future__ import annotations

import copy
import importlib
import logging
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .. import keys as K
from ..optional import MissingDependencyError
from .cache import cached_arrays

logger = logging.getLogger(__name__)

#: bump when the generator changes in a way that changes its output.
GENERATOR_VERSION = 1
#: elements of the default dataset: those of G2 that ASE's EMT has parameters for.
DEFAULT_SPECIES = ("H", "C", "N", "O")
#: default seed of each split (different, so that no geometry is in two splits).
SPLIT_SEEDS = {"train": 2013_1, "valid": 2013_2, "test": 2013_3}
SPLIT_SIZES = {"train": 3000, "valid": 500, "test": 500}
#: standard deviation of the random displacement of each coordinate, in Å: enough to
#: change the forces by about 40% of their RMS, small against bond lengths (~1 Å).
DEFAULT_DISPLACEMENT = 0.05

Index = Sequence[int] | np.ndarray | torch.Tensor | slice


def _import_ase():
    """ASE's modules, or a :class:`~irrepnet.optional.MissingDependencyError` (an ImportError) with the install."""
    try:
        collections = importlib.import_module("ase.collections")
        emt = importlib.import_module("ase.calculators.emt")
    except ImportError as exc:
        raise MissingDependencyError(
            f"the molecules task computes energies with ASE, which is not installed ({exc}); "
            "pip install ase   (or pip install 'irrepnet[molecules]')",
            package="ase",
            install="pip install ase",
        ) from None
    return collections, emt


def molecule_names(species: Sequence[str] = DEFAULT_SPECIES) -> tuple[str, ...]:
    """G2 molecules (two atoms or more) made only of ``species``, sorted by name."""
    collections, emt = _import_ase()
    unsupported = sorted(set(species) - set(emt.parameters))
    if unsupported:
        raise ValueError(f"ASE's EMT has no parameters for {unsupported}; it knows {sorted(emt.parameters)}")
    allowed = set(species)
    g2 = collections.g2
    names = sorted(n for n in g2.names if len(g2[n]) > 1 and set(g2[n].get_chemical_symbols()) <= allowed)
    if not names:
        raise ValueError(f"no G2 molecule is made only of {sorted(allowed)}; add elements such as H and C")
    return tuple(names)


def generate_molecules(
    n_samples: int, *, seed: int, displacement: float = DEFAULT_DISPLACEMENT, species: Sequence[str] = DEFAULT_SPECIES
) -> dict[str, np.ndarray]:
    """Displaced G2 geometries and their EMT labels (no cache).

    Returns ``pos, forces (n, 3)``, ``species (n,)`` (index into ``species``),
    ``num_nodes (S,)``, ``energy (S,)`` and ``molecule (S,)`` (index into :func:`molecule_names`).
    """
    if n_samples < 1:
        raise ValueError(f"need at least one sample, got n_samples={n_samples}")
    if not displacement >= 0:
        raise ValueError(f"displacement must be >= 0 Å, got {displacement}")
    collections, emt = _import_ase()
    names = molecule_names(species)
    index = {s: i for i, s in enumerate(species)}
    rng = np.random.default_rng(seed)
    calc = emt.EMT()
    pos, forces, kinds, counts, energy, mol = [], [], [], [], [], []
    for s in range(n_samples):
        m = s % len(names)
        atoms = collections.g2[names[m]].copy()
        atoms.positions = atoms.positions + displacement * rng.standard_normal(atoms.positions.shape)
        atoms.calc = calc
        energy.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
        pos.append(atoms.positions)
        kinds.append([index[z] for z in atoms.get_chemical_symbols()])
        counts.append(len(atoms))
        mol.append(m)
    return {
        "pos": np.concatenate(pos),
        "forces": np.concatenate(forces),
        "species": np.concatenate(kinds).astype(np.int64),
        "num_nodes": np.asarray(counts, dtype=np.int64),
        "energy": np.asarray(energy, dtype=np.float64),
        "molecule": np.asarray(mol, dtype=np.int64),
    }


class MoleculeDataset:
    """Molecules of different sizes, stored as concatenated atoms plus per-molecule offsets.

    Map-style (``len``, ``[i]``) like :class:`~irrepnet.data.GraphArrayDataset`, with the
    same :meth:`batch`, :meth:`subset` and :meth:`arrays` the trainer uses; graphs differ
    in size, so there is no ``num_nodes`` attribute.

    Parameters
    ----------
    arrays : dict
        as returned by :func:`generate_molecules`; optionally also ``cell (S, 3, 3)``,
        ``pbc (S, 3)`` and ``stress (S, 3, 3)``, kept as the graph fields ``cell``, ``pbc``
        and ``target_stress``.
    species : sequence of str
        the elements, in one-hot order.
    names : sequence of str
        molecule names, indexed by ``arrays["molecule"]``.
    dtype : torch.dtype
        floating dtype of the returned tensors.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        *,
        species: Sequence[str],
        names: Sequence[str],
        split: str = "",
        seed: int | None = None,
        displacement: float | None = None,
        dtype: torch.dtype = torch.float64,
    ):
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype such as torch.float64, got {dtype}")
        self.dtype, self.species, self.names = dtype, tuple(species), tuple(names)
        self.split, self.seed, self.displacement = split, seed, displacement
        counts = torch.as_tensor(np.asarray(arrays["num_nodes"])).long()
        n = int(counts.sum())
        kinds = torch.as_tensor(np.asarray(arrays["species"])).long()
        if kinds.shape != (n,) or np.asarray(arrays["pos"]).shape != (n, 3):
            raise ValueError(
                f"molecule arrays disagree: num_nodes sums to {n} atoms, but pos has shape "
                f"{np.asarray(arrays['pos']).shape} and species {tuple(kinds.shape)}"
            )
        self._node = {
            K.POS: torch.as_tensor(np.asarray(arrays["pos"])).to(dtype),
            K.SPECIES_ONEHOT: torch.nn.functional.one_hot(kinds, len(self.species)).to(dtype),
            K.TARGET_FORCES: torch.as_tensor(np.asarray(arrays["forces"])).to(dtype),
        }
        self._graph = {K.TARGET_ENERGY: torch.as_tensor(np.asarray(arrays["energy"])).to(dtype).reshape(-1, 1)}
        # frames read from files (irrepnet.data.energy_files) may carry a cell, pbc and stress per graph
        for key, name in (("cell", K.CELL), ("pbc", K.PBC), ("stress", K.TARGET_STRESS)):
            if key in arrays:
                value = torch.as_tensor(np.asarray(arrays[key]))
                self._graph[name] = value if value.dtype == torch.bool else value.to(dtype)
        self.counts = counts
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
        self.molecule = np.asarray(arrays["molecule"], dtype=np.int64)

    # --- map-style dataset --------------------------------------------------
    def __len__(self) -> int:
        return int(self.counts.numel())

    def __getitem__(self, i) -> dict[str, torch.Tensor]:
        if not isinstance(i, (int, np.integer)) and not (isinstance(i, torch.Tensor) and i.dim() == 0):
            raise TypeError(f"index a dataset with one integer; use .batch(indices) for many, got {type(i).__name__}")
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample index {i} out of range for a dataset of {len(self)} molecules")
        i %= len(self)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        out = {k: v[a:b].clone() for k, v in self._node.items()}
        out.update({k: v[i : i + 1].clone() for k, v in self._graph.items()})
        return out

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for i in range(len(self)):
            yield self[i]

    @property
    def fields(self) -> Sequence[str]:
        return tuple(self._node) + tuple(self._graph)

    @property
    def num_atoms(self) -> int:
        return int(self.offsets[-1])

    def _index(self, indices: Index | None) -> torch.Tensor:
        if indices is None:
            return torch.arange(len(self))
        if isinstance(indices, slice):
            return torch.arange(len(self))[indices]
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices).long()
        idx = idx.reshape(-1)
        if idx.numel() == 0:
            raise ValueError("a batch or subset needs at least one molecule")
        if int(idx.max()) >= len(self) or int(idx.min()) < -len(self):
            raise IndexError(f"indices out of range for a dataset of {len(self)} molecules")
        return idx % len(self)

    def _atoms_of(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(atom indices, atoms per molecule)`` of molecules ``idx``, in that order."""
        counts = self.counts[idx]
        starts = self.offsets[idx]
        local = torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        return torch.repeat_interleave(starts, counts) + local, counts

    def batch(self, indices: Index | None = None) -> dict[str, torch.Tensor]:
        """Molecules ``indices`` (all if ``None``) collated; equal to ``collate([self[i] for i in indices])``."""
        idx = self._index(indices)
        atoms, counts = self._atoms_of(idx)
        out = {k: v[atoms] for k, v in self._node.items()}
        out.update({k: v[idx] for k, v in self._graph.items()})
        out[K.NUM_NODES] = counts.clone()
        out[K.BATCH] = torch.repeat_interleave(torch.arange(idx.numel()), counts)
        return out

    def arrays(self) -> dict[str, torch.Tensor]:
        """The whole dataset as one batch (node fields ``(n, ...)``, graph fields ``(S, ...)``); read-only."""
        out = {**self._node, **self._graph}
        out[K.NUM_NODES] = self.counts
        out[K.BATCH] = torch.repeat_interleave(torch.arange(len(self)), self.counts)
        return out

    def subset(self, indices: Index) -> MoleculeDataset:
        """Molecules ``indices`` as a new dataset (a copy)."""
        idx = self._index(indices)
        atoms, counts = self._atoms_of(idx)
        out = copy.copy(self)
        out._node = {k: v[atoms].contiguous() for k, v in self._node.items()}
        out._graph = {k: v[idx].contiguous() for k, v in self._graph.items()}
        out.counts = counts.clone()
        out.offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
        out.molecule = self.molecule[idx.numpy()]
        return out

    def __repr__(self) -> str:
        return (
            f"MoleculeDataset({self.split}: {len(self)} molecules, {self.num_atoms} atoms of "
            f"{'/'.join(self.species)}, {len(set(self.molecule.tolist()))} distinct molecules, "
            f"displacement {self.displacement} Å, seed={self.seed}, {self.dtype})"
        )


def molecules(
    split: str = "train",
    *,
    n_train: int = SPLIT_SIZES["train"],
    n_valid: int = SPLIT_SIZES["valid"],
    n_test: int = SPLIT_SIZES["test"],
    seed: int | None = None,
    displacement: float = DEFAULT_DISPLACEMENT,
    species: Sequence[str] = DEFAULT_SPECIES,
    cache_dir=None,
    use_cache: bool = True,
    dtype: torch.dtype = torch.float64,
    verbose: bool = False,
) -> MoleculeDataset:
    """One split of the offline molecules dataset (see the module docstring).

    Parameters
    ----------
    split : {"train", "valid", "test"}
    n_train, n_valid, n_test : int
        molecules (geometries) in each split (3000, 500, 500).
    seed : int, optional
        override the split's default seed (:data:`SPLIT_SEEDS`).
    displacement : float
        standard deviation of the random displacement of each coordinate, in Å.
    species : sequence of str
        elements allowed (and the one-hot order); molecules with others are left out.
    cache_dir, use_cache
        as in :func:`irrepnet.data.cache.cached_arrays`.
    verbose : bool
        ignored (kept so that old calls still run): the generation time on a cache miss is
        logged at INFO on the logger ``irrepnet.data.molecules``.
    """
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {tuple(SPLIT_SEEDS)}, got {split!r}")
    n = {"train": n_train, "valid": n_valid, "test": n_test}[split]
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the {split} split needs at least one molecule, got {n!r}")
    seed = SPLIT_SEEDS[split] if seed is None else int(seed)
    species = tuple(species)
    names = molecule_names(species)  # also the clear error when ASE is missing
    ase = importlib.import_module("ase")
    params = {
        "version": GENERATOR_VERSION,
        "n": int(n),
        "seed": seed,
        "displacement": float(displacement),
        "species": list(species),
        "molecules": list(names),
        "ase": ase.__version__,
    }

    def generate():
        t0 = time.perf_counter()
        arrays = generate_molecules(int(n), seed=seed, displacement=displacement, species=species)
        logger.info(
            "generated %d %s molecules (%d atoms) in %.1f s", n, split, len(arrays["pos"]), time.perf_counter() - t0
        )
        return arrays

    arrays = cached_arrays("molecules-emt", params, generate, cache_dir=cache_dir, use_cache=use_cache)
    return MoleculeDataset(
        arrays, species=species, names=names, split=split, seed=seed, displacement=float(displacement), dtype=dtype
    )
