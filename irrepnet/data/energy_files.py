r"""Energy and force data sets from any file ``ase.io`` reads: the ``energy`` task.

Each frame of the file (extended XYZ, ASE ``.traj``...) is one graph: its atoms, their
positions, the frame's energy and the forces on its atoms, read from configurable keys
as MACE reads them (Batatia et al., NeurIPS 2022; its ``config_type``-free subset): the
energy from the frame's info under ``energy_key``, the forces from its per-atom arrays
under ``forces_key``, and, where the key is not there, from the results of the calculator
that holds the frame (ASE's extxyz reader moves ``energy``, ``forces`` and ``stress`` into
a single-point calculator, so the default keys find them there). An optional
``stress_key`` reads a stress (6 Voigt components ``xx yy zz yz xz xy`` or 9) per frame;
a non-periodic frame without one carries zero (a stress needs a cell).

The species are the elements present in every file read, sorted by atomic number; the
one-hot follows that order and the task records it. Splits are drawn at random from the
one file (``valid_fraction``, ``test_fraction`` of the frames, seeded) or read from
separate files (``valid_data``, ``test_data``); inside each split the frames keep their
file order:

.. math::

    \pi = \mathrm{perm}_\mathrm{seed}(S), \qquad
    \mathrm{test} = \pi_{[0, n_\mathrm{test})}, \quad
    \mathrm{valid} = \pi_{[n_\mathrm{test}, n_\mathrm{test} + n_\mathrm{valid})}, \quad
    \mathrm{train} = \text{the rest}, \qquad
    n_s = \max(1, \mathrm{round}(f_s S)).

Training fits per-element reference energies on the training split exactly as on the
``molecules`` task (:func:`irrepnet.train.energy.fit_energy_scales`, least squares of the
energies on the element counts), and the benchmark's "atom energies" row is the same fit.

Periodic frames keep their cell and pbc as graph fields (``cell (1, 3, 3)``, ``pbc (1, 3)``
per sample); non-periodic frames get a zero cell and pbc false. The graph builders read
them; this module only carries them.

Shapes/irreps
-------------
as :mod:`irrepnet.data.molecules` (``pos (N_s, 3)`` 1o, ``species_onehot (N_s, k)`` kx0e,
``target_forces (N_s, 3)`` 1o, ``target_energy (1, 1)`` 0e), plus ``cell (1, 3, 3)``,
``pbc (1, 3)`` bool and, with a stress key, ``target_stress (1, 3, 3)`` per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .ase_io import import_ase, read_frames
from .molecules import MoleculeDataset

DEFAULT_ENERGY_KEY = "energy"
DEFAULT_FORCES_KEY = "forces"
DEFAULT_VALID_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.1


def _calc_results(atoms) -> dict[str, Any]:
    calc = getattr(atoms, "calc", None)
    return dict(getattr(calc, "results", None) or {})


def _missing(path, i: int, atoms, what: str, key: str, option: str) -> ValueError:
    return ValueError(
        f"{path}: frame {i} has no {what} under {key!r}; its info keys are {sorted(atoms.info)}, its per-atom "
        f"arrays {sorted(atoms.arrays)}, its calculator results {sorted(_calc_results(atoms))}; pass {option} "
        f"with the key that holds the {what}"
    )


def _stress_3x3(value, path, i: int) -> np.ndarray:
    s = np.asarray(value, dtype=np.float64).reshape(-1)
    if s.size == 9:
        return s.reshape(3, 3)
    if s.size == 6:  # Voigt order of ASE: xx yy zz yz xz xy
        xx, yy, zz, yz, xz, xy = s
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise ValueError(f"{path}: frame {i} has a stress of {s.size} values; give 6 (Voigt) or 9")


def read_energy_frames(
    path,
    *,
    energy_key: str = DEFAULT_ENERGY_KEY,
    forces_key: str = DEFAULT_FORCES_KEY,
    stress_key: str | None = None,
    format: str | None = None,
) -> dict[str, np.ndarray]:
    """Every frame of ``path`` with its energy and forces, as concatenated arrays.

    Returns ``pos, forces (n, 3)``, ``numbers (n,)``, ``num_nodes, energy (S,)``,
    ``cell (S, 3, 3)``, ``pbc (S, 3)``, ``formula (S,)`` (strings) and, with ``stress_key``,
    ``stress (S, 3, 3)``.

    Raises
    ------
    ValueError
        a frame without the energy, forces or stress under its key (the message lists the
        keys the frame has), forces of the wrong shape, NaN or Inf values, or no atoms.
    """
    frames = read_frames(path, format=format)
    pos, forces, numbers, counts, energy, cells, pbcs, formulas, stress = [], [], [], [], [], [], [], [], []
    for i, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise ValueError(f"{path}: frame {i} has no atoms; remove it")
        results = _calc_results(atoms)
        e = atoms.info.get(energy_key, results.get(energy_key))
        if e is None:
            raise _missing(path, i, atoms, "energy", energy_key, "--energy-key")
        f = atoms.arrays.get(forces_key)
        f = results.get(forces_key) if f is None else f
        if f is None:
            raise _missing(path, i, atoms, "forces", forces_key, "--forces-key")
        f = np.asarray(f, dtype=np.float64)
        if f.shape != (len(atoms), 3):
            raise ValueError(f"{path}: frame {i} has forces of shape {f.shape} for {len(atoms)} atoms; expected (N, 3)")
        if stress_key is not None:
            s = atoms.info.get(stress_key, results.get(stress_key))
            if s is None and atoms.pbc.any():
                raise _missing(path, i, atoms, "stress", stress_key, "--stress-key")
            # a stress needs a cell: frames without one (molecules beside crystals) carry zero
            stress.append(np.zeros((3, 3)) if s is None else _stress_3x3(s, path, i))
        pos.append(np.asarray(atoms.positions, dtype=np.float64))
        forces.append(f)
        numbers.append(np.asarray(atoms.numbers, dtype=np.int64))
        counts.append(len(atoms))
        energy.append(float(np.asarray(e, dtype=np.float64).reshape(-1)[0]))
        cells.append(np.asarray(atoms.cell[:], dtype=np.float64))
        pbcs.append(np.asarray(atoms.pbc, dtype=bool))
        formulas.append(atoms.get_chemical_formula())
    out = {
        "pos": np.concatenate(pos),
        "forces": np.concatenate(forces),
        "numbers": np.concatenate(numbers),
        "num_nodes": np.asarray(counts, dtype=np.int64),
        "energy": np.asarray(energy, dtype=np.float64),
        "cell": np.stack(cells),
        "pbc": np.stack(pbcs),
        "formula": np.asarray(formulas),
    }
    if stress_key is not None:
        out["stress"] = np.stack(stress)
    bounds = np.concatenate([[0], np.cumsum(out["num_nodes"])])
    for name in ("pos", "forces", "energy", "cell") + (("stress",) if stress_key else ()):
        bad = ~np.isfinite(out[name].reshape(len(out[name]), -1)).all(axis=1)
        if bad.any():
            first = int(np.argmax(bad))
            frame = int(np.searchsorted(bounds, first, side="right") - 1) if name in ("pos", "forces") else first
            raise ValueError(f"{path}: frame {frame} has NaN or Inf {name}; clean or drop it before training")
    return out


def species_of(*arrays: dict[str, np.ndarray]) -> tuple[str, ...]:
    """The elements present in ``arrays`` (of :func:`read_energy_frames`), sorted by atomic number."""
    data = import_ase("ase.data", feature="the energy task")
    z = sorted(set(np.concatenate([a["numbers"] for a in arrays]).tolist()))
    return tuple(data.chemical_symbols[int(n)] for n in z)


def split_frames(
    n: int, *, valid_fraction: float | None, test_fraction: float | None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Sorted frame indices of ``train``, ``valid`` and ``test`` (the module docstring's draw).

    A fraction of ``None`` means that split comes from its own file: it takes no frame here.
    """
    sizes = {}
    for name, frac in (("test", test_fraction), ("valid", valid_fraction)):
        if frac is None:
            sizes[name] = 0
            continue
        if isinstance(frac, bool) or not 0.0 < float(frac) < 1.0:
            raise ValueError(f"--{name}-fraction must be in (0, 1), got {frac!r}")
        sizes[name] = max(1, int(round(float(frac) * n)))
    if n - sizes["test"] - sizes["valid"] < 1:
        raise ValueError(
            f"{n} frames leave none to train on after {sizes['test']} test and {sizes['valid']} validation frames; "
            "give more frames, smaller --valid-fraction/--test-fraction, or --valid-data/--test-data files"
        )
    perm = np.random.default_rng(seed).permutation(n)
    a, b = sizes["test"], sizes["test"] + sizes["valid"]
    return {"train": np.sort(perm[b:]), "valid": np.sort(perm[a:b]), "test": np.sort(perm[:a])}


def _take(arrays: dict[str, np.ndarray], frames: np.ndarray) -> dict[str, np.ndarray]:
    """The frames ``frames`` of concatenated ``arrays`` (node arrays by their atoms)."""
    bounds = np.concatenate([[0], np.cumsum(arrays["num_nodes"])])
    atoms = np.concatenate([np.arange(bounds[f], bounds[f + 1]) for f in frames]) if len(frames) else np.zeros(0, int)
    per_atom = ("pos", "forces", "numbers")
    return {k: (v[atoms] if k in per_atom else v[frames]) for k, v in arrays.items()}


class EnergyFileDataset(MoleculeDataset):
    """A :class:`~irrepnet.data.molecules.MoleculeDataset` read from a file (see the module docstring).

    Its ``names`` are the chemical formulas present and ``molecule`` each frame's formula;
    its ``source`` is the file and ``frames`` the index of each sample in it.
    """

    source: str = ""
    frames: np.ndarray

    def subset(self, indices) -> EnergyFileDataset:
        out = super().subset(indices)
        out.frames = self.frames[self._index(indices).numpy()]
        return out

    def __repr__(self) -> str:
        periodic = int(self._graph["pbc"].any(dim=1).sum()) if "pbc" in self._graph else 0
        return (
            f"EnergyFileDataset({self.split}: {len(self)} frames of {self.source}, {self.num_atoms} atoms of "
            f"{'/'.join(self.species)}, {periodic} periodic, {self.dtype})"
        )


def energy_dataset(
    arrays: dict[str, np.ndarray], species: Sequence[str], *, split: str, source: str, frames, seed, dtype
) -> EnergyFileDataset:
    """One split as an :class:`EnergyFileDataset` (``arrays`` from :func:`read_energy_frames`)."""
    data = import_ase("ase.data", feature="the energy task")
    index = {data.atomic_numbers[s]: i for i, s in enumerate(species)}
    names = sorted(set(arrays["formula"].tolist()))
    by_name = {n: i for i, n in enumerate(names)}
    ds = EnergyFileDataset(
        {
            **{k: v for k, v in arrays.items() if k not in ("numbers", "formula")},
            "species": np.asarray([index[int(z)] for z in arrays["numbers"]], dtype=np.int64),
            "molecule": np.asarray([by_name[n] for n in arrays["formula"]], dtype=np.int64),
        },
        species=species,
        names=names,
        split=split,
        seed=seed,
        dtype=dtype,
    )
    ds.source, ds.frames = source, np.asarray(frames, dtype=np.int64)
    return ds


def energy_splits(
    data,
    *,
    energy_key: str = DEFAULT_ENERGY_KEY,
    forces_key: str = DEFAULT_FORCES_KEY,
    stress_key: str | None = None,
    valid_fraction: float | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    valid_data=None,
    test_data=None,
    dtype: torch.dtype = torch.float64,
) -> tuple[dict[str, EnergyFileDataset], tuple[str, ...]]:
    """``({"train", "valid", "test"}: datasets, species)`` of the energy task (see the module docstring).

    Parameters
    ----------
    data : str or PathLike
        the file of training frames (and of the validation and test frames not given apart).
    energy_key, forces_key, stress_key : str
        where each frame keeps its energy, forces and (optional) stress.
    valid_fraction, test_fraction : float, optional
        shares of ``data`` drawn for validation and test (default 0.1 each); refused together
        with ``valid_data`` / ``test_data``.
    seed : int
        seed of the split.
    valid_data, test_data : str or PathLike, optional
        files of the validation and test frames.
    """
    keys = {"energy_key": energy_key, "forces_key": forces_key, "stress_key": stress_key}
    for option, fraction, given in (("valid", valid_fraction, valid_data), ("test", test_fraction, test_data)):
        if fraction is not None and given is not None:
            raise ValueError(f"give either --{option}-fraction or --{option}-data, not both")
    if valid_data is None and valid_fraction is None:
        valid_fraction = DEFAULT_VALID_FRACTION
    if test_data is None and test_fraction is None:
        test_fraction = DEFAULT_TEST_FRACTION
    main = read_energy_frames(data, **keys)
    apart = {name: read_energy_frames(f, **keys) for name, f in (("valid", valid_data), ("test", test_data)) if f}
    species = species_of(main, *apart.values())
    picks = split_frames(len(main["energy"]), valid_fraction=valid_fraction, test_fraction=test_fraction, seed=seed)
    out = {}
    for name in ("train", "valid", "test"):
        if name in apart:
            arrays, frames = apart[name], np.arange(len(apart[name]["energy"]))
            source = str(Path(valid_data if name == "valid" else test_data))
        else:
            arrays, frames, source = _take(main, picks[name]), picks[name], str(Path(data))
        out[name] = energy_dataset(arrays, species, split=name, source=source, frames=frames, seed=seed, dtype=dtype)
    return out, species


def energy_identity(data, options: dict[str, Any]) -> dict[str, Any]:
    """The data identity (:mod:`irrepnet.data.identity`) of the energy task's files.

    ``sha256`` is the file's when the splits come from one file, else that of the files'
    sha256s; ``load`` holds every option that reads the same splits again (the separate
    files by absolute path, since a checkpoint may be audited from another folder).
    """
    from .identity import _canonical_sha256, file_identity
    from .trajectory import file_sha256

    apart = {k: str(Path(options[k]).resolve()) for k in ("valid_data", "test_data") if options.get(k)}
    identity = file_identity(data, load={"data": str(data), **options, **apart})
    if apart:
        digests = {"data": identity["sha256"], **{k: file_sha256(v) for k, v in apart.items()}}
        identity.update(
            sha256=_canonical_sha256(digests),
            files=digests,
            size=identity["size"] + sum(Path(v).stat().st_size for v in apart.values()),
        )
    return identity
