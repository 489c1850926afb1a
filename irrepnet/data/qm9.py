r"""QM9 read from the user's own copy of PyTorch Geometric's raw files (nothing is downloaded).

QM9 (Ramakrishnan, Dral, Rupp & von Lilienfeld, "Quantum chemistry structures and
properties of 134 kilo molecules", Sci. Data 1, 140022 (2014)) holds 133,885 small
organic molecules of H, C, N, O and F (up to 29 atoms) with their B3LYP/6-31G(2df,p)
equilibrium geometries and properties. irrepnet reads the three files that
``torch_geometric.datasets.QM9`` keeps in ``ROOT/raw`` (MoleculeNet's export of QM9
plus the authors' list of molecules that failed their consistency check):

=======================  =========================================================
``gdb9.sdf``             one SDF V2000 block per molecule (title ``gdb_<id>``,
                         counts line, then ``x y z symbol`` per atom, in Å)
``gdb9.sdf.csv``         one row per molecule, header
                         ``mol_id,A,B,C,mu,alpha,homo,lumo,gap,r2,zpve,u0,u298,h298,g298,cv,...``
``uncharacterized.txt``  the 3,054 molecules to drop: text header and footer lines,
                         and one line per molecule whose first field is its 1-based index
=======================  =========================================================

The folder is given with ``--data DIR``. irrepnet never downloads it; see
:data:`HOW_TO_GET` (also in the error raised when a file is missing).

Targets and units
-----------------
The twelve targets of the EGNN paper (Satorras, Hoogeboom & Welling, "E(n) Equivariant
Graph Neural Networks", ICML 2021, Table 3; its QM9 code follows Cormorant, Anderson et
al. 2019), in the units of its table. ``homo lumo gap zpve U0 U H G`` are in Hartree in
the CSV and converted to meV (``HARTREE_TO_MEV``, CODATA 2018; EGNN uses
27.2114 eV/Ha, 4e-7 relative away). ``U0 U H G`` and ``Cv`` are *atomization*
quantities, as in EGNN (its ``subtract_thermo``, on by default): the sum of the
isolated atoms' values (:data:`ATOM_REFERENCES`, the QM9 authors' ``atomref`` table)
is subtracted,

.. math::

    y_m = c\,\Bigl(p_m - \sum_{i \in m} r_{z_i}\Bigr),

with :math:`p_m` the CSV value, :math:`r_z` the reference of element :math:`z` and
:math:`c` the unit factor; :data:`TARGETS` holds the table (``irrepnet.data.qm9.units_table()``
prints it).

Split
-----
The EGNN/Cormorant rule (``gen_splits_gdb9`` of their code): drop the uncharacterized
molecules, keep the rest in file order (130,831 on the full QM9), draw
``numpy.random.seed(0); numpy.random.permutation(N)``, and give its first 100,000 entries
to train, the next ``N - 100000 - int(0.1 N)`` (17,748) to valid and the last
``int(0.1 N)`` (13,083) to test. :func:`split_sizes` writes the same rule as fractions,
``n_train = round(N * 100000 / 130831)``, ``n_test = int(0.1 N)``, which is the paper's
exactly on the full QM9 and scales to any folder (at least one molecule per split, at
least 3 molecules in all). A folder that is not the full QM9 (133,885 molecules, 3,054
uncharacterized) gets a :class:`QM9SplitWarning`: its split cannot be the paper's.

Atom types
----------
``species_onehot`` is the one-hot of H, C, N, O, F (``5x0e``). The EGNN code also feeds
the one-hot times :math:`(Z/9)^k`, :math:`k = 0, 1, 2` (15 inputs); each of those
vectors is non-zero only in the block of its element, so a linear embedding of the 15
inputs spans exactly the same per-element vectors as one of the 5-dim one-hot (the
charge powers only rescale each element's embedding at initialisation). irrepnet
feeds the one-hot alone: the models embed it linearly, so nothing is lost.

Shapes/irreps
-------------
``S`` molecules of ``N_s`` atoms, ``n = sum N_s``.
sample: ``pos (N_s, 3)`` 1o (Å), ``species_onehot (N_s, 5)`` 5x0e, ``target_property (1, 1)``
0e (the target's unit). batch: node fields ``(n, ...)``, ``target_property (G, 1)``,
``batch (n,)``, ``num_nodes (G,)``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import keys as K
from .cache import cached_arrays
from .molecules import MoleculeDataset

#: bump when the parser's output changes (the cache key includes it)
PARSER_VERSION = 1
SDF, CSV, UNCHARACTERIZED = "gdb9.sdf", "gdb9.sdf.csv", "uncharacterized.txt"
RAW_FILES = (SDF, CSV, UNCHARACTERIZED)
#: the full QM9: molecules in gdb9.sdf, and molecules listed in uncharacterized.txt
QM9_MOLECULES, QM9_UNCHARACTERIZED = 133_885, 3_054
#: the EGNN/Cormorant split: training molecules of the full QM9, test fraction, seed
EGNN_TRAIN, EGNN_KEPT, TEST_FRACTION, SPLIT_SEED = 100_000, QM9_MOLECULES - QM9_UNCHARACTERIZED, 0.1, 0
SPECIES = ("H", "C", "N", "O", "F")
ATOMIC_NUMBERS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
HARTREE_TO_MEV = 27.211386245988e3  # CODATA 2018: 1 Ha = 27.211386245988 eV
#: energies of the isolated atoms, per element (QM9's atomref table, B3LYP/6-31G(2df,p)):
#: U0, U, H, G in Hartree; Cv in cal/(mol K)
ATOM_REFERENCES = {
    "U0": {"H": -0.500273, "C": -37.846772, "N": -54.583861, "O": -75.064579, "F": -99.718730},
    "U": {"H": -0.498857, "C": -37.845355, "N": -54.582445, "O": -75.063163, "F": -99.717314},
    "H": {"H": -0.497912, "C": -37.844411, "N": -54.581501, "O": -75.062219, "F": -99.716370},
    "G": {"H": -0.510927, "C": -37.861317, "N": -54.598897, "O": -75.079532, "F": -99.733544},
    "Cv": {e: 2.981 for e in SPECIES},
}

HOW_TO_GET = (
    "irrepnet never downloads data sets. Get PyG's raw QM9 files yourself, either with PyTorch Geometric "
    "and RDKit installed: python -c \"from torch_geometric.datasets import QM9; QM9('ROOT')\" (without RDKit "
    "PyG fetches a processed file instead of the raw ones), then pass --data ROOT/raw; or by hand: unzip "
    "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/molnet_publish/qm9.zip (gdb9.sdf, gdb9.sdf.csv) "
    "and save https://ndownloader.figshare.com/files/3195404 as uncharacterized.txt, in one folder"
)


@dataclass(frozen=True)
class Target:
    """One QM9 target: its CSV column and unit there, and irrepnet's unit ``unit = factor x (csv - refs)``."""

    name: str
    column: str
    csv_unit: str
    unit: str
    factor: float
    description: str
    reference: str | None = None  # key of ATOM_REFERENCES subtracted per atom (atomization quantities)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("mu", "mu", "D", "D", 1.0, "dipole moment"),
        Target("alpha", "alpha", "bohr^3", "bohr^3", 1.0, "isotropic polarizability"),
        Target("homo", "homo", "Ha", "meV", HARTREE_TO_MEV, "HOMO energy"),
        Target("lumo", "lumo", "Ha", "meV", HARTREE_TO_MEV, "LUMO energy"),
        Target("gap", "gap", "Ha", "meV", HARTREE_TO_MEV, "HOMO-LUMO gap"),
        Target("r2", "r2", "bohr^2", "bohr^2", 1.0, "electronic spatial extent"),
        Target("zpve", "zpve", "Ha", "meV", HARTREE_TO_MEV, "zero-point vibrational energy"),
        Target("U0", "u0", "Ha", "meV", HARTREE_TO_MEV, "atomization internal energy at 0 K", "U0"),
        Target("U", "u298", "Ha", "meV", HARTREE_TO_MEV, "atomization internal energy at 298.15 K", "U"),
        Target("H", "h298", "Ha", "meV", HARTREE_TO_MEV, "atomization enthalpy at 298.15 K", "H"),
        Target("G", "g298", "Ha", "meV", HARTREE_TO_MEV, "atomization free energy at 298.15 K", "G"),
        Target("Cv", "cv", "cal/(mol K)", "cal/(mol K)", 1.0, "heat capacity at 298.15 K, minus 2.981 per atom", "Cv"),
    )
}
#: the EGNN paper's default target (its ``--property homo``)
DEFAULT_TARGET = "homo"
CSV_COLUMNS = ("mol_id",) + tuple(t.column for t in TARGETS.values())
#: the header of PyG's (MoleculeNet's) gdb9.sdf.csv; the *_atom columns are in kcal/mol and unused here
PYG_HEADER = "mol_id,A,B,C,mu,alpha,homo,lumo,gap,r2,zpve,u0,u298,h298,g298,cv,u0_atom,u298_atom,h298_atom,g298_atom"


class QM9FormatError(ValueError):
    """A raw file that is not in PyG's format; the message names the file and line."""


class QM9SplitWarning(UserWarning):
    """The folder is not the full QM9, so its split is the scaled rule, not the EGNN paper's."""


def get_target(name: str) -> Target:
    """The target called ``name`` (case-insensitive: ``u0`` is ``U0``), or a ValueError listing the twelve."""
    by_lower = {k.lower(): t for k, t in TARGETS.items()}
    t = by_lower.get(str(name).lower())
    if t is None:
        raise ValueError(f"unknown QM9 target {name!r}; the twelve targets of the EGNN paper are: {', '.join(TARGETS)}")
    return t


def units_table() -> str:
    """The targets as a text table: name, CSV column and unit, irrepnet's unit, conversion."""
    rows = [f"{'target':<6} {'csv column':<10} {'csv unit':<12} {'unit':<12} conversion"]
    for t in TARGETS.values():
        conv = f"x {t.factor:g}" if t.factor != 1 else "as is"
        if t.reference:
            conv += f", minus the atoms' {t.reference} references"
        rows.append(f"{t.name:<6} {t.column:<10} {t.csv_unit:<12} {t.unit:<12} {conv}")
    return "\n".join(rows)


# --- reading the raw files ---------------------------------------------------------
def raw_paths(folder) -> dict[str, Path]:
    """The three raw files in ``folder``; a FileNotFoundError saying which are missing and where to get them."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"QM9 folder {folder} does not exist (--data must be the folder holding "
            f"{', '.join(RAW_FILES)}). {HOW_TO_GET}"
        )
    paths = {name: folder / name for name in RAW_FILES}
    missing = [name for name, p in paths.items() if not p.is_file()]
    if missing:
        hint = " (it looks like PyG's QM9 root: use its raw/ subfolder)" if (folder / "raw").is_dir() else ""
        raise FileNotFoundError(f"QM9 folder {folder} has no {', '.join(missing)}{hint}. {HOW_TO_GET}")
    return paths


def _read_text(path) -> str:
    """The file's text; a file that is not UTF-8 text (a download cut short, an archive) named in one line."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not a text file (byte {exc.start} is not UTF-8): replace it with the raw QM9 "
            f"file of that name, unpacked (gdb9.sdf and gdb9.sdf.csv come in MoleculeNet's qm9.zip)"
        ) from None


def read_sdf(path) -> dict[str, object]:
    """Titles, atom counts, atomic numbers and positions (Å) of every SDF V2000 block in ``path``."""
    lines = _read_text(path).split("\n")
    titles, counts, numbers, pos = [], [], [], []
    i, total = 0, len(lines)
    while i < total:
        if not lines[i].strip() and all(not x.strip() for x in lines[i:]):
            break  # trailing blank lines
        start = i
        if i + 3 >= total:
            raise QM9FormatError(
                f"{path}, line {i + 1}: the file ends inside molecule {len(titles) + 1} "
                "(an SDF block has a title, two header lines and a counts line)"
            )
        head = lines[i + 3]
        try:
            if "V2000" not in head:
                raise ValueError
            n_atoms, n_bonds = int(head[0:3]), int(head[3:6])
        except ValueError:
            raise QM9FormatError(
                f"{path}, line {i + 4}: expected a V2000 counts line (atoms in columns 1-3, "
                f"bonds in 4-6, 'V2000'), got {head.strip()!r}"
            ) from None
        for k in range(n_atoms):
            j = i + 4 + k
            parts = lines[j].split() if j < total else []
            try:
                x, y, z, symbol = float(parts[0]), float(parts[1]), float(parts[2]), parts[3]
            except (ValueError, IndexError):
                raise QM9FormatError(
                    f"{path}, line {j + 1}: expected an atom line 'x y z symbol ...' "
                    f"(atom {k + 1} of {n_atoms}), got {lines[j] if j < total else '<end>'!r}"
                ) from None
            if symbol not in ATOMIC_NUMBERS:
                raise QM9FormatError(
                    f"{path}, line {j + 1}: element {symbol!r} is not one of QM9's {', '.join(SPECIES)}"
                )
            numbers.append(ATOMIC_NUMBERS[symbol])
            pos.append((x, y, z))
        i += 4 + n_atoms + n_bonds
        while i < total and lines[i].strip() != "$$$$":  # properties ("M  CHG", "M  END") up to the delimiter
            i += 1
        if i >= total:
            raise QM9FormatError(f"{path}, line {start + 1}: molecule {len(titles) + 1} has no closing '$$$$'")
        i += 1
        titles.append(lines[start].strip())
        counts.append(n_atoms)
    if not titles:
        raise QM9FormatError(f"{path}: no molecule found (expected SDF V2000 blocks ending in '$$$$')")
    return {
        "titles": titles,
        "num_nodes": np.asarray(counts, dtype=np.int64),
        "z": np.asarray(numbers, dtype=np.int64),
        "pos": np.asarray(pos, dtype=np.float64).reshape(-1, 3),
    }


def read_csv(path) -> tuple[list, np.ndarray]:
    """``(mol_ids, values (M, 12))``: the target columns of :data:`TARGETS`, in its order, in CSV units."""
    lines = _read_text(path).split("\n")
    header = [h.strip() for h in lines[0].split(",")] if lines else []
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise QM9FormatError(
            f"{path}, line 1: the header lacks column(s) {missing}; PyG's gdb9.sdf.csv header is {PYG_HEADER}"
        )
    cols = [header.index(c) for c in CSV_COLUMNS[1:]]
    id_col = header.index("mol_id")
    ids, values = [], []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != len(header):
            raise QM9FormatError(f"{path}, line {n}: {len(fields)} fields, the header has {len(header)}")
        try:
            values.append([float(fields[c]) for c in cols])
        except ValueError:
            raise QM9FormatError(f"{path}, line {n}: a target column is not a number: {line.strip()!r}") from None
        ids.append(fields[id_col].strip())
    return ids, np.asarray(values, dtype=np.float64).reshape(-1, len(cols))


def read_uncharacterized(path, n_molecules: int) -> np.ndarray:
    """0-based indices of the molecules listed in ``uncharacterized.txt`` (lines whose first field is an integer).

    The file's own header and footer lines start with words or rules and are skipped; this
    is the rule of the EGNN/Cormorant code, which finds exactly 3,054 indices in QM9's file
    (PyG instead drops 9 header lines and 2 footer lines).
    """
    out = []
    for n, line in enumerate(_read_text(path).split("\n"), start=1):
        first = line.split()[0] if line.split() else ""
        if not first.lstrip("-").isdigit():
            continue
        index = int(first)
        if not 1 <= index <= n_molecules:
            raise QM9FormatError(
                f"{path}, line {n}: molecule index {index} is outside 1..{n_molecules} "
                f"(the indices are 1-based rows of {SDF})"
            )
        out.append(index - 1)
    return np.unique(np.asarray(out, dtype=np.int64))


def parse_raw(folder) -> dict[str, np.ndarray]:
    """All of ``folder``'s molecules: ``pos (n, 3)``, ``z (n,)``, ``num_nodes (M,)``, ``values (M, 12)`` (CSV
    units, :data:`TARGETS` order), ``excluded (M,)`` bool and ``gdb_index (M,)`` (1-based row)."""
    paths = raw_paths(folder)
    sdf = read_sdf(paths[SDF])
    ids, values = read_csv(paths[CSV])
    m = len(sdf["titles"])
    if len(ids) != m:
        raise QM9FormatError(
            f"{paths[CSV]} has {len(ids)} molecules but {paths[SDF]} has {m}; both must list "
            "the same molecules in the same order (PyG's raw files)"
        )
    for k, (title, mol_id) in enumerate(zip(sdf["titles"], ids)):
        if title and title != mol_id:
            raise QM9FormatError(
                f"{paths[CSV]}, line {k + 2}: molecule {mol_id!r}, but molecule {k + 1} of "
                f"{paths[SDF]} is {title!r}; the two files are not in the same order"
            )
    excluded = np.zeros(m, dtype=bool)
    excluded[read_uncharacterized(paths[UNCHARACTERIZED], m)] = True
    return {
        "pos": sdf["pos"],
        "z": sdf["z"],
        "num_nodes": sdf["num_nodes"],
        "values": values,
        "excluded": excluded,
        "gdb_index": np.arange(1, m + 1, dtype=np.int64),
    }


def cached_raw(folder, *, cache_dir=None, use_cache: bool = True) -> dict[str, np.ndarray]:
    """:func:`parse_raw`, cached (:mod:`irrepnet.data.cache`) under the files' paths, sizes and times."""
    paths = raw_paths(folder)
    stamp = {name: [str(p.resolve()), os.stat(p).st_size, os.stat(p).st_mtime_ns] for name, p in paths.items()}
    params = {"version": PARSER_VERSION, "files": stamp}
    return cached_arrays("qm9-raw", params, lambda: parse_raw(folder), cache_dir=cache_dir, use_cache=use_cache)


def target_values(raw: dict[str, np.ndarray], target: str) -> np.ndarray:
    """``(M,)`` float64: target ``target`` of every molecule of ``raw`` in irrepnet's unit (see the table)."""
    t = get_target(target)
    col = list(TARGETS).index(t.name)
    value = raw["values"][:, col].astype(np.float64)
    if t.reference:
        refs = np.zeros(max(ATOMIC_NUMBERS.values()) + 1)
        for element, r in ATOM_REFERENCES[t.reference].items():
            refs[ATOMIC_NUMBERS[element]] = r
        molecule = np.repeat(np.arange(len(value)), raw["num_nodes"])
        value = value - np.bincount(molecule, weights=refs[raw["z"]], minlength=len(value))
    return value * t.factor


# --- the split ---------------------------------------------------------------------------
def split_sizes(n: int) -> tuple[int, int, int]:
    """``(train, valid, test)`` sizes of ``n`` characterized molecules; (100000, 17748, 13083) on QM9."""
    if n < 3:
        raise ValueError(f"{n} characterized molecule(s): the split needs at least 3 (one train, valid, test)")
    n_test = max(1, int(TEST_FRACTION * n))
    n_train = max(1, min(round(n * EGNN_TRAIN / EGNN_KEPT), n - n_test - 1))
    return n_train, n - n_train - n_test, n_test


def egnn_split(n: int, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Positions (into the characterized molecules, in file order) of each split: the EGNN/Cormorant rule.

    ``numpy.random.RandomState(seed).permutation(n)`` (the same stream as their
    ``np.random.seed(0); np.random.permutation``), cut at :func:`split_sizes`; each split sorted.
    """
    n_train, n_valid, _ = split_sizes(n)
    perm = np.random.RandomState(seed).permutation(n)
    parts = np.split(perm, [n_train, n_train + n_valid])
    return {name: np.sort(p) for name, p in zip(("train", "valid", "test"), parts)}


def split_indices(raw: dict[str, np.ndarray], seed: int = SPLIT_SEED, *, warn: bool = True) -> dict[str, np.ndarray]:
    """Rows of ``raw`` (0-based, uncharacterized molecules dropped) in each split; warns if not the full QM9."""
    kept = np.flatnonzero(~raw["excluded"])
    m, dropped = len(raw["excluded"]), int(raw["excluded"].sum())
    if warn and (m, dropped) != (QM9_MOLECULES, QM9_UNCHARACTERIZED):
        sizes = split_sizes(len(kept))
        warnings.warn(
            f"this QM9 folder has {m} molecules, {dropped} of them uncharacterized (the full QM9 has "
            f"{QM9_MOLECULES} and {QM9_UNCHARACTERIZED}): the split is the EGNN rule scaled to "
            f"{len(kept)} molecules (train/valid/test {sizes[0]}/{sizes[1]}/{sizes[2]}), not the "
            "paper's split",
            QM9SplitWarning,
            stacklevel=3,
        )
    return {name: kept[pos] for name, pos in egnn_split(len(kept), seed).items()}


# --- the dataset -------------------------------------------------------------------------
class QM9Dataset(MoleculeDataset):
    """QM9 molecules with one graph-level target (``target_property (G, 1)``), variable sizes.

    A :class:`~irrepnet.data.molecules.MoleculeDataset` (same ``batch``, ``subset``, ``arrays``)
    whose node fields are ``pos`` and ``species_onehot`` (H, C, N, O, F) and whose graph field
    is ``target_property``; ``molecule`` holds each molecule's 1-based QM9 index (``gdb_<i>``).
    """

    def __init__(
        self,
        raw: dict[str, np.ndarray],
        rows: Sequence[int],
        *,
        target: str = DEFAULT_TARGET,
        split: str = "",
        dtype: torch.dtype = torch.float64,
    ):
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype such as torch.float64, got {dtype}")
        self.target = get_target(target)
        self.unit = self.target.unit
        self.dtype, self.species, self.names, self.split = dtype, SPECIES, (), split
        self.seed, self.displacement = SPLIT_SEED, None
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            raise ValueError(f"the {split or 'requested'} split holds no molecule")
        offsets = np.concatenate([[0], np.cumsum(raw["num_nodes"])])
        atoms = np.concatenate([np.arange(offsets[r], offsets[r + 1]) for r in rows])
        kinds = np.searchsorted(np.asarray([ATOMIC_NUMBERS[e] for e in SPECIES]), raw["z"][atoms])
        self._node = {
            K.POS: torch.as_tensor(raw["pos"][atoms]).to(dtype),
            K.SPECIES_ONEHOT: torch.nn.functional.one_hot(torch.as_tensor(kinds), len(SPECIES)).to(dtype),
        }
        values = target_values(raw, self.target.name)[rows]
        self._graph = {K.TARGET_PROPERTY: torch.as_tensor(values).to(dtype).reshape(-1, 1)}
        self.counts = torch.as_tensor(raw["num_nodes"][rows]).long()
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(self.counts, 0)])
        self.molecule = raw["gdb_index"][rows].astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"QM9Dataset({self.split}: {len(self)} molecules, {self.num_atoms} atoms, target "
            f"{self.target.name} in {self.unit}, {self.dtype})"
        )


def load_qm9(
    data,
    *,
    target: str = DEFAULT_TARGET,
    seed: int = SPLIT_SEED,
    dtype: torch.dtype = torch.float64,
    cache_dir=None,
    use_cache: bool = True,
    n_train: int | None = None,
    n_valid: int | None = None,
    n_test: int | None = None,
) -> dict[str, QM9Dataset]:
    """``{"train", "valid", "test"}`` datasets of the QM9 folder ``data`` for one ``target``.

    Parameters
    ----------
    data : path
        the folder of PyG's raw files (``ROOT/raw`` of ``torch_geometric.datasets.QM9``).
    target : str
        one of :data:`TARGETS` (case-insensitive); default ``homo``.
    seed : int
        seed of the split permutation (0: the EGNN paper's).
    n_train, n_valid, n_test : int, optional
        keep only the first molecules (in file order) of a split; membership is unchanged.
    cache_dir, use_cache
        the parsed files are cached as in :func:`irrepnet.data.cache.cached_arrays`.
    """
    get_target(target)  # an unknown target fails before the files are read
    raw = cached_raw(data, cache_dir=cache_dir, use_cache=use_cache)
    rows = split_indices(raw, seed)
    out = {}
    for split, limit in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        r = rows[split]
        if limit is not None:
            if limit < 1:
                raise ValueError(f"n_{split} must be >= 1, got {limit}")
            r = r[:limit]
        out[split] = QM9Dataset(raw, r, target=target, split=split, dtype=dtype)
    return out


__all__ = [
    "ATOM_REFERENCES",
    "DEFAULT_TARGET",
    "HOW_TO_GET",
    "RAW_FILES",
    "SPECIES",
    "TARGETS",
    "QM9Dataset",
    "QM9FormatError",
    "QM9SplitWarning",
    "Target",
    "egnn_split",
    "get_target",
    "load_qm9",
    "parse_raw",
    "split_indices",
    "split_sizes",
    "target_values",
    "units_table",
]
