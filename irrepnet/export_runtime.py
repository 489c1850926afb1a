r"""Run a model exported by :func:`irrepnet.export.export_model` with torch alone.

This module imports nothing but the standard library and torch: :func:`~irrepnet.export.export_model`
ships a copy of it inside every package (and beside it, as ``<name>_runtime.py``), so
that the package runs where irrepnet and e3nn are not installed. It builds the graph
the package asks for (the neighbour list is computed outside the exported program,
because its size depends on the data) and calls the program with plain tensors.

The graph is the one the model was trained with, read from the package's metadata:
``"radius"`` (every ordered pair of distinct atoms of one system closer than the cutoff,
in the data's length unit),

.. math::

    \mathcal{E} = \{(j \to i) : i \neq j,\; g(i) = g(j),\; \lVert x_i - x_j \rVert < r_c\},

``"full"`` (every ordered pair of one system) or ``"none"``. The search here is dense,
:math:`O(n^2)` in time and memory over the whole batch: fine for molecules of tens to a
few thousand atoms; past that, build the edges with a cell list or a neighbour-list
library (vesin, matscipy, ASE) and pass ``edge_index`` yourself, in the same
convention: row 0 the sender :math:`j`, row 1 the receiver :math:`i`, sorted by receiver.

Example
-------
>>> import importlib.util                                   # doctest: +SKIP
>>> spec = importlib.util.spec_from_file_location("rt", "model_runtime.py")
>>> rt = importlib.util.module_from_spec(spec); spec.loader.exec_module(rt)
>>> model = rt.load("model.pt2")
>>> energy, forces = model(pos, species=["O", "H", "H"])

Shapes
------
``pos (n, 3)``, ``batch (n,)``, ``num_nodes (G,)`` -> ``edge_index (2, E)``; the
program's inputs and outputs are listed in ``metadata["inputs"]`` and ``metadata["outputs"]``.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import torch

#: the metadata's name inside a package (extra file of an ExportedProgram, AOTI metadata key)
METADATA_NAME = "irrepnet.json"
#: this module's name inside a package
RUNTIME_NAME = "irrepnet_runtime.py"
#: the AOTInductor metadata key holding the JSON
AOTI_METADATA_KEY = "irrepnet"


def radius_graph(pos: torch.Tensor, cutoff: float, batch: torch.Tensor | None = None) -> torch.Tensor:
    """``edge_index (2, E)``: ordered pairs of distinct nodes of one graph closer than ``cutoff``.

    Dense (an ``(n, n)`` distance matrix); edges sorted by receiver, then sender.
    """
    n = pos.shape[0]
    batch = torch.zeros(n, dtype=torch.long, device=pos.device) if batch is None else batch
    diff = pos.detach()[:, None, :] - pos.detach()[None, :, :]
    keep = (diff.pow(2).sum(-1) < cutoff * cutoff) & (batch[:, None] == batch[None, :])
    keep.fill_diagonal_(False)
    receiver, sender = keep.nonzero(as_tuple=True)
    return torch.stack([sender, receiver])


def full_graph(batch: torch.Tensor) -> torch.Tensor:
    """``edge_index (2, E)``: every ordered pair of distinct nodes of one graph, sorted by receiver."""
    keep = batch[:, None] == batch[None, :]
    keep.fill_diagonal_(False)
    receiver, sender = keep.nonzero(as_tuple=True)
    return torch.stack([sender, receiver])


def _plane_spacing(cell: torch.Tensor, pbc: torch.Tensor, axis: int) -> float:
    """Distance between neighbouring lattice planes along ``axis``: the part of ``cell[axis]``
    orthogonal to the other periodic rows (a slab's or wire's open rows do not count)."""
    vec, others = cell[axis], cell[[k for k in range(3) if k != axis and bool(pbc[k])]]
    if others.shape[0]:
        coef = torch.linalg.lstsq(others.T, vec[:, None]).solution
        vec = vec - (others.T @ coef)[:, 0]
    return float(vec.norm())


def periodic_radius_graph(
    pos: torch.Tensor, cutoff: float, cell: torch.Tensor, pbc: torch.Tensor, batch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(edge_index (2, E), edge_cell_shift (E, 3))`` under periodic boundary conditions.

    ``j -> i`` with integer shift :math:`S` is an edge when
    :math:`\lVert x_i - (x_j + S C_g)\rVert < r_c` and :math:`(i, S) \neq (j, 0)`; :math:`S_k = 0`
    along directions where ``pbc`` is false. Dense: every pair of a graph against every
    shift within reach (the graph's diameter plus the cutoff over each plane spacing), so
    positions need not lie inside the cell. Sorted by receiver, sender, then shift.
    """
    pos, cell = pos.detach(), cell.detach().to(pos.dtype)
    edges, shifts = [], []
    for g in range(cell.shape[0]):
        nodes = (batch == g).nonzero(as_tuple=True)[0]
        x = pos[nodes]
        reach = cutoff + (float(torch.cdist(x, x).max()) if x.shape[0] else 0.0)
        ranges = []
        for a in range(3):
            m = math.ceil(reach / _plane_spacing(cell[g], pbc[g], a)) if bool(pbc[g][a]) else 0
            ranges.append(torch.arange(-m, m + 1, dtype=pos.dtype))
        grid = torch.cartesian_prod(*ranges).reshape(-1, 3)  # lexicographic order
        vec = x[:, None, None, :] - (x[None, :, None, :] + (grid @ cell[g])[None, None])  # (i, j, S, 3)
        keep = vec.pow(2).sum(-1) < cutoff * cutoff
        self_image = (grid == 0).all(-1)
        keep &= ~(torch.eye(x.shape[0], dtype=torch.bool)[:, :, None] & self_image[None, None, :])
        i, j, k = keep.nonzero(as_tuple=True)
        edges.append(torch.stack([nodes[j], nodes[i]]))
        shifts.append(grid[k])
    return torch.cat(edges, dim=1), torch.cat(shifts).to(pos.dtype)


def build_edges(meta: dict, pos: torch.Tensor, batch: torch.Tensor, cell=None, pbc=None):
    """The edges of the graph ``meta["graph"]`` names: ``edge_index``, ``None`` without a graph,
    or ``(edge_index, edge_cell_shift)`` for a periodic package (``cell (G, 3, 3)`` and ``pbc (G, 3)`` given)."""
    kind = meta["graph"]["kind"]
    if kind == "radius" and meta.get("periodic"):
        if cell is None or pbc is None:
            raise ValueError("this package is periodic: give cell (G, 3, 3) and pbc (G, 3)")
        return periodic_radius_graph(pos, float(meta["graph"]["cutoff"]), cell, pbc, batch)
    if kind == "radius":
        return radius_graph(pos, float(meta["graph"]["cutoff"]), batch)
    if kind == "full":
        return full_graph(batch)
    if kind == "none":
        return None
    raise ValueError(f"this runtime builds radius and full graphs; the package asks for {kind!r}")


def read_metadata(path) -> dict:
    """The metadata of a package: from ``<name>.json`` beside it, else from inside the archive.

    An ExportedProgram holds it as the extra file ``irrepnet.json``; an AOTInductor package
    under the key ``irrepnet`` of its compiled model's metadata.
    """
    path = Path(path)
    beside = path.with_suffix(".json")
    if beside.is_file():
        return json.loads(beside.read_text())
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith("extra/" + METADATA_NAME):
                return json.loads(archive.read(name))
            if name.endswith("_metadata.json"):
                stored = json.loads(archive.read(name))
                if AOTI_METADATA_KEY in stored:
                    return json.loads(stored[AOTI_METADATA_KEY])
    raise ValueError(f"{path} holds no irrepnet metadata; was it written by irrepnet export?")


class ExportedModel:
    """A loaded package and its metadata; call it with positions and per-atom fields.

    Parameters
    ----------
    program : callable
        the AOTInductor model or the ExportedProgram's module.
    metadata : dict
        the package's metadata (inputs, outputs, graph, species, dtype, versions).
    """

    def __init__(self, program, metadata: dict):
        self.program, self.metadata = program, metadata

    def inputs(self, pos: torch.Tensor, species=None, num_nodes=None, **fields) -> tuple:
        """The program's input tensors, in order: ``fields`` as given, the graph built here.

        ``species`` (element symbols, one per atom) is turned into ``species_onehot`` in
        the package's species order; ``num_nodes`` (atoms per system, default one system).
        """
        meta = self.metadata
        dtype = getattr(torch, meta["dtype"])
        pos = pos.to(dtype)
        num_nodes = torch.tensor([pos.shape[0]]) if num_nodes is None else torch.as_tensor(num_nodes)
        batch = torch.repeat_interleave(torch.arange(num_nodes.numel()), num_nodes)
        if species is not None:
            order = {s: k for k, s in enumerate(meta["species"])}
            unknown = sorted({s for s in species if s not in order})
            if unknown:
                raise ValueError(f"species {unknown} are not among the model's {meta['species']}")
            index = torch.tensor([order[s] for s in species])
            fields["species_onehot"] = torch.nn.functional.one_hot(index, len(order)).to(dtype)
        fields.update(pos=pos, batch=batch, num_nodes=num_nodes)
        if meta.get("periodic"):  # cell (G, 3, 3) and pbc (G, 3), or one (3, 3) and (3,) for every graph
            if "cell" not in fields or "pbc" not in fields:
                raise ValueError("this package is periodic: give cell (G, 3, 3) and pbc (G, 3)")
            cell = torch.as_tensor(fields["cell"], dtype=dtype).expand(num_nodes.numel(), 3, 3)
            pbc = torch.as_tensor(fields.pop("pbc")).expand(num_nodes.numel(), 3)
            fields["cell"] = cell.contiguous()
            fields["edge_index"], fields["edge_cell_shift"] = build_edges(meta, pos, batch, cell, pbc)
        else:
            edges = build_edges(meta, pos, batch)
            if edges is not None:
                fields["edge_index"] = edges
        missing = [name for name in meta["inputs"] if name not in fields]
        if missing:
            raise ValueError(f"the package reads {meta['inputs']}; missing {missing}")
        return tuple(fields[k].to(dtype) if fields[k].is_floating_point() else fields[k] for k in meta["inputs"])

    def __call__(self, pos: torch.Tensor, species=None, num_nodes=None, **fields) -> tuple:
        with torch.no_grad():  # the forces are computed inside the program: no autograd graph is needed
            return tuple(self.program(*self.inputs(pos, species, num_nodes, **fields)))


def load(path) -> ExportedModel:
    """Load a package written by ``irrepnet export`` (AOTInductor or ExportedProgram)."""
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("aoti"):
        program = torch._inductor.aoti_load_package(str(path))
    else:
        program = torch.export.load(str(path)).module()
    return ExportedModel(program, meta)


__all__ = [
    "ExportedModel",
    "build_edges",
    "full_graph",
    "load",
    "periodic_radius_graph",
    "radius_graph",
    "read_metadata",
]
