r"""Optional interoperability with PyTorch Geometric: a ``Data``/``Batch`` to irrepnet's batch dict and back.

PyTorch Geometric (Fey & Lenssen 2019) is not a dependency of irrepnet: these two
functions import it when called and say how to install it otherwise
(``pip install torch-geometric``). Nothing else in irrepnet needs it; the qm9 task reads
PyG's raw files itself (:mod:`irrepnet.data.qm9`).

:func:`from_pyg` reads ``z`` (atomic numbers), ``pos`` (Å), ``batch`` and, when asked for
a QM9 target, ``y`` in the layout of ``torch_geometric.datasets.QM9`` (19 columns, energies
in eV), converted to irrepnet's units and atomization convention (the table of
:mod:`irrepnet.data.qm9`). :func:`to_pyg` writes ``z``, ``pos`` and, when the batch has
one, irrepnet's ``target_property`` as ``y (G, 1)`` (irrepnet's units).

PyG stores ``y`` in float32: a total energy of about -11,000 eV then carries about 1 meV
of rounding, which survives the subtraction of the atom references; the atomization
energies that :func:`irrepnet.data.qm9.load_qm9` computes from the CSV in float64 do not.

Shapes/irreps
-------------
PyG: ``z (n,)`` long, ``pos (n, 3)``, ``batch (n,)``, ``y (G, 19)`` (QM9) or ``(G, 1)``.
irrepnet: ``pos (n, 3)`` 1o, ``species_onehot (n, 5)`` 5x0e, ``batch (n,)``, ``num_nodes (G,)``,
``target_property (G, 1)`` 0e.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import numpy as np
import torch

from .. import keys as K
from ..optional import MissingDependencyError
from .qm9 import ATOMIC_NUMBERS, SPECIES, TARGETS, get_target, target_values

#: PyG's Hartree-to-eV factor (``torch_geometric.datasets.qm9.HAR2EV``), undone before irrepnet's conversion
PYG_HAR2EV = 27.2113825435
#: column of each irrepnet target in PyG's QM9 ``y``, and PyG's factor from the CSV unit
PYG_COLUMNS = {
    "mu": (0, 1.0),
    "alpha": (1, 1.0),
    "homo": (2, PYG_HAR2EV),
    "lumo": (3, PYG_HAR2EV),
    "gap": (4, PYG_HAR2EV),
    "r2": (5, 1.0),
    "zpve": (6, PYG_HAR2EV),
    "U0": (7, PYG_HAR2EV),
    "U": (8, PYG_HAR2EV),
    "H": (9, PYG_HAR2EV),
    "G": (10, PYG_HAR2EV),
    "Cv": (11, 1.0),
}


def _pyg_data():
    """``torch_geometric.data``, or a :class:`~irrepnet.optional.MissingDependencyError` with the install."""
    try:
        return importlib.import_module("torch_geometric.data")
    except ImportError as exc:
        raise MissingDependencyError(
            f"converting PyTorch Geometric batches needs torch_geometric, which is not installed "
            f"({exc}); pip install torch-geometric   (irrepnet itself does not need it)",
            package="torch-geometric",
            install="pip install torch-geometric",
        ) from None


def from_pyg(
    data, *, target: str | None = None, species: Sequence[str] = SPECIES, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """irrepnet's batch dict of a PyG ``Data`` (one graph) or ``Batch``.

    Parameters
    ----------
    data : torch_geometric.data.Data or Batch
        with ``z`` and ``pos``; ``batch`` for several graphs (contiguous, as PyG makes them).
    target : str, optional
        a QM9 target (:data:`irrepnet.data.qm9.TARGETS`): ``y`` is read in the layout of
        ``torch_geometric.datasets.QM9`` and converted to irrepnet's unit. Without it a
        ``y`` of one column is taken as ``target_property`` as it is; other ``y`` are left out.
    species : sequence of str
        the one-hot's elements, in order (QM9's H, C, N, O, F).
    dtype : torch.dtype, optional
        floating dtype of the result (default: that of ``pos``).
    """
    _pyg_data()
    z, pos = getattr(data, "z", None), getattr(data, "pos", None)
    if z is None or pos is None:
        raise ValueError(
            "from_pyg needs data.z (atomic numbers) and data.pos (positions); "
            f"this {type(data).__name__} has {sorted(data.keys()) if hasattr(data, 'keys') else '?'}"
        )
    dtype = dtype or pos.dtype
    numbers = [ATOMIC_NUMBERS.get(s) for s in species]
    if None in numbers:
        raise ValueError(f"species {list(species)}: from_pyg knows the elements {list(ATOMIC_NUMBERS)}")
    lookup = torch.full((max(numbers) + 1,), -1, dtype=torch.long)
    lookup[torch.as_tensor(numbers)] = torch.arange(len(numbers))
    z = z.long().reshape(-1)
    kinds = lookup[z.clamp(0, len(lookup) - 1)]
    bad = (kinds < 0) | (z >= len(lookup))
    if bool(bad.any()):
        raise ValueError(
            f"atomic number(s) {sorted(set(z[bad].tolist()))} are not among the species {list(species)} (Z = {numbers})"
        )
    batch = getattr(data, "batch", None)
    batch = torch.zeros(z.numel(), dtype=torch.long) if batch is None else batch.long().reshape(-1)
    if batch.numel() and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("data.batch is not sorted: irrepnet's graphs are contiguous runs of nodes")
    n_graphs = int(getattr(data, "num_graphs", 0) or (int(batch.max()) + 1 if batch.numel() else 1))
    out = {
        K.POS: pos.to(dtype),
        K.SPECIES_ONEHOT: torch.nn.functional.one_hot(kinds, len(species)).to(dtype),
        K.BATCH: batch,
        K.NUM_NODES: torch.bincount(batch, minlength=n_graphs),
    }
    y = getattr(data, "y", None)
    if target is not None:
        if y is None or y.dim() != 2 or y.shape[1] < 12:
            raise ValueError(
                f"target {target!r}: data.y must be torch_geometric.datasets.QM9's (G, 19) targets, "
                f"got {None if y is None else tuple(y.shape)}"
            )
        t = get_target(target)
        if tuple(species) != SPECIES:
            raise ValueError(f"QM9 targets need QM9's species {SPECIES}, got {tuple(species)}")
        col, factor = PYG_COLUMNS[t.name]
        values = np.zeros((n_graphs, len(TARGETS)))
        values[:, list(TARGETS).index(t.name)] = y[:, col].double().cpu().numpy() / factor  # back to CSV units
        raw = {"values": values, "num_nodes": out[K.NUM_NODES].numpy(), "z": z.numpy()}
        out[K.TARGET_PROPERTY] = torch.as_tensor(target_values(raw, t.name)).to(dtype).reshape(-1, 1)
    elif y is not None and y.dim() == 2 and y.shape == (n_graphs, 1):
        out[K.TARGET_PROPERTY] = y.to(dtype)
    return out


def to_pyg(batch: dict[str, torch.Tensor], *, species: Sequence[str] = SPECIES):
    """A PyG ``Batch`` of irrepnet's ``batch`` dict: ``z``, ``pos`` and ``y = target_property`` when present."""
    D = _pyg_data()
    for name in (K.POS, K.SPECIES_ONEHOT):
        if name not in batch:
            raise ValueError(f"to_pyg needs {name!r} in the batch; it has {sorted(batch)}")
    onehot = batch[K.SPECIES_ONEHOT]
    if onehot.shape[-1] != len(species):
        raise ValueError(f"species_onehot has {onehot.shape[-1]} columns, species {list(species)} has {len(species)}")
    numbers = torch.as_tensor([ATOMIC_NUMBERS[s] for s in species])
    z = numbers[onehot.argmax(dim=-1)]
    counts = batch.get(K.NUM_NODES)
    if counts is None:
        b = batch.get(K.BATCH)
        counts = torch.bincount(b) if b is not None else torch.tensor([z.numel()])
    starts = torch.cumsum(counts, 0) - counts
    y = batch.get(K.TARGET_PROPERTY)
    graphs = []
    for g, (a, n) in enumerate(zip(starts.tolist(), counts.tolist())):
        fields = {"z": z[a : a + n], "pos": batch[K.POS][a : a + n]}
        if y is not None:
            fields["y"] = y[g : g + 1]
        graphs.append(D.Data(**fields))
    return D.Batch.from_data_list(graphs)


__all__ = ["PYG_COLUMNS", "PYG_HAR2EV", "from_pyg", "to_pyg"]
