r"""Radius graphs under periodic boundary conditions: edges with integer cell shifts.

A periodic graph ``g`` has lattice vectors as the rows of ``cell[g]`` and a flag per
vector, ``pbc[g]``. The sender of an edge is then an *image* of node ``j``,

.. math::  x_j + S\,C_g, \qquad S \in \mathbb{Z}^3\ (S_k = 0 \text{ where } \mathrm{pbc}_k \text{ is false}),

and ``j -> i`` with shift ``S`` is an edge when

.. math::  |x_i - (x_j + S\,C_g)| < r, \qquad (i, S) \ne (j, 0),

evaluated by :func:`periodic_sq_dist` in the dtype of ``pos``, the one expression every
backend decides with. A cell smaller than the cutoff gives several images of one
neighbour and images of the node itself (``i == j``, ``S != 0``). This matches
``ase.neighborlist.neighbor_list("ijS")``: its ``i`` is the receiver, ``j`` the sender,
``S`` the same shift, and its ``D`` is ``-edge_vec``.

How the candidates are found: positions are first wrapped into the cell along the
periodic directions (fractional coordinates in ``[0, 1)``; atoms outside the cell are
legal input), the search runs on the wrapped positions with the cutoff enlarged by
:data:`~._common.SEARCH_MARGIN`, and the shifts are mapped back to the caller's
positions, :math:`S = S' + W_i - W_j` where :math:`x' = x - W C`.
``"torch"`` adds ghost images of the atoms within reach of the cell (a slab of width
``r`` beyond each periodic face) and runs the non-periodic cell list over atoms and
ghosts together; ``"vesin"`` calls vesin's periodic search graph by graph.

Shapes
------
``pos (n, 3)``, ``cell (G, 3, 3)``, ``pbc (G, 3)`` -> ``edge_index (2, E)``, ``edge_cell_shift (E, 3)``
"""

from __future__ import annotations

import torch

from .. import keys as K
from . import _backends, _cell_list
from ._common import (
    RADIUS_BACKENDS,
    SEARCH_MARGIN,
    as_float,
    backend_module,
    check_pos,
    check_radius,
    empty_edges,
    require,
    resolve_batch,
)


def cell_offsets(shift: torch.Tensor, cell: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
    """``shift @ cell[graph]`` row by row: the Cartesian offset of each edge's sender image.

    Written as three products and two sums so that the cutoff test and
    :func:`~irrepnet.graph.edge_vectors` do the same arithmetic; differentiable in ``cell``.

    Shapes
    ------
    ``shift (E, 3)``, ``cell (G, 3, 3)``, ``graph (E,)`` -> ``(E, 3)``
    """
    c = cell.index_select(0, graph)
    return shift[:, 0:1] * c[:, 0] + shift[:, 1:2] * c[:, 1] + shift[:, 2:3] * c[:, 2]


def periodic_sq_dist(pos, cell, graph, recv, send, shift) -> torch.Tensor:
    """``|pos[recv] - (pos[send] + shift @ cell[graph])|^2``: the cutoff test of periodic edges.

    With ``shift == 0`` it is bit for bit :func:`~._common.sq_dist` (adding an exact 0
    changes nothing), so non-periodic graphs of a mixed batch get the edges they get alone.
    """
    d = pos.index_select(0, recv) - (pos.index_select(0, send) + cell_offsets(shift, cell, graph))
    d = d * d
    return d[:, 0] + d[:, 1] + d[:, 2]


def check_cell(cell: torch.Tensor, pbc: torch.Tensor, num_graphs: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cell (G, 3, 3), pbc (G, 3) bool)`` on ``device``; ``(3, 3)`` and ``(3,)`` mean every graph."""
    if not isinstance(cell, torch.Tensor) or not isinstance(pbc, torch.Tensor):
        raise TypeError("cell and pbc must be tensors: cell (G, 3, 3) float, pbc (G, 3) bool")
    if cell.dim() == 2:
        cell = cell.expand(num_graphs, 3, 3)
    if pbc.dim() == 1:
        pbc = pbc.expand(num_graphs, 3)
    if tuple(cell.shape) != (num_graphs, 3, 3) or not cell.is_floating_point():
        raise ValueError(
            f"cell must be a float tensor of shape ({num_graphs}, 3, 3), got {cell.dtype} {tuple(cell.shape)}"
        )
    if tuple(pbc.shape) != (num_graphs, 3) or pbc.dtype != torch.bool:
        raise ValueError(f"pbc must be a bool tensor of shape ({num_graphs}, 3), got {pbc.dtype} {tuple(pbc.shape)}")
    if not bool(torch.isfinite(cell).all()):
        raise ValueError("cell contains NaN or Inf; every lattice vector must be finite")
    return cell.to(device), pbc.to(device)


def lattice_basis(cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    """Each graph's periodic lattice vectors, completed to a basis of space (float64).

    Rows along non-periodic directions may be zero (ASE writes a slab's ``c`` as zero):
    they are replaced by an orthonormal basis of the complement of the periodic rows,
    so that fractional coordinates along the periodic rows are defined for any cell.

    Shapes
    ------
    ``cell (G, 3, 3)``, ``pbc (G, 3)`` -> ``(G, 3, 3)``
    """
    c = cell.double()
    periodic = torch.where(pbc[:, :, None], c, torch.zeros_like(c))
    norms = torch.linalg.vector_norm(periodic, dim=2)
    # right singular vectors beyond the rank of the periodic rows span their complement
    _, sv, vh = torch.linalg.svd(periodic)
    k = pbc.sum(1, keepdim=True)  # (G, 1) periodic axes per graph
    rank_np = torch.cumsum((~pbc).long(), 1) - 1  # rank of each non-periodic axis among them
    row = (k + rank_np).clamp(max=2)
    complement = torch.gather(vh, 1, row[:, :, None].expand(-1, -1, 3))
    basis = torch.where(pbc[:, :, None], c, complement)
    # a periodic row that is (nearly) zero or dependent on the others has no lattice
    volume = torch.linalg.det(basis).abs()
    scale = torch.where(pbc, norms, torch.ones_like(norms)).prod(1)
    bad = torch.nonzero(pbc.any(1) & ~(volume > 1e-9 * scale)).flatten()
    if bad.numel():
        g = int(bad[0])
        raise ValueError(
            f"graph {g}: its periodic lattice vectors {c[g][pbc[g]].tolist()} are zero or linearly dependent; "
            "give a proper cell or set pbc False along that direction"
        )
    return basis


def wrap(pos: torch.Tensor, batch: torch.Tensor, basis: torch.Tensor, pbc: torch.Tensor):
    """Positions moved into the cell along periodic directions, float64: ``(x - W C, W)``.

    Shapes
    ------
    ``pos (n, 3)``, ``batch (n,)`` -> ``(n, 3)`` float64, ``W (n, 3)`` long
    """
    x = pos.double()
    inv = torch.linalg.inv(basis)
    frac = torch.einsum("nk,nkl->nl", x, inv.index_select(0, batch))
    whole = torch.where(pbc.index_select(0, batch), torch.floor(frac), torch.zeros_like(frac))
    shifted = x - torch.einsum("nk,nkl->nl", whole, basis.index_select(0, batch))
    return shifted, whole.long()


def _image_reach(basis: torch.Tensor, pbc: torch.Tensor, r: float) -> torch.Tensor:
    """``r / d_k``: the cutoff in units of the spacing of lattice planes, 0 along open axes.

    The planes of constant fractional coordinate ``k`` are ``d_k = 1 / |b_k|`` apart
    (``b_k`` the reciprocal vector, column ``k`` of the inverse basis); a neighbour
    within ``r`` is less than ``r / d_k`` away in that coordinate. Shapes: ``(G, 3)``.
    """
    reciprocal = torch.linalg.vector_norm(torch.linalg.inv(basis), dim=1)  # |column k|
    return torch.where(pbc, r * reciprocal, torch.zeros_like(reciprocal))


def _ghosts(x: torch.Tensor, batch: torch.Tensor, basis: torch.Tensor, pbc: torch.Tensor, r: float):
    """Images of the wrapped atoms that may lie within ``r`` of the cell: ``(node, shift, position)``.

    An image ``x_j + S C`` can be a neighbour of an atom in the cell only if its
    fractional coordinates lie in ``(-r / d_k, 1 + r / d_k)`` along each periodic axis.
    """
    reach = _image_reach(basis, pbc, r)  # (G, 3)
    span = torch.ceil(reach).long()  # |S_k| <= ceil(r / d_k)
    most = span.amax(0).tolist()
    axes = [torch.arange(-m, m + 1, device=x.device) for m in most]
    shifts = torch.cartesian_prod(*axes).reshape(-1, 3)
    shifts = shifts[(shifts != 0).any(1)]
    nodes = torch.nonzero(pbc.any(1).index_select(0, batch)).flatten()
    if nodes.numel() == 0 or shifts.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long, device=x.device)
        return empty, torch.zeros(0, 3, dtype=torch.long, device=x.device), x.new_zeros(0, 3)
    g = batch.index_select(0, nodes)
    frac = torch.einsum("nk,nkl->nl", x.index_select(0, nodes), torch.linalg.inv(basis).index_select(0, g))
    lo, hi = -reach.index_select(0, g), 1.0 + reach.index_select(0, g)  # (m, 3)
    image = frac[:, None, :] + shifts[None].double()  # (m, T, 3)
    inside = ((image > lo[:, None]) & (image < hi[:, None])) | (shifts[None] == 0)
    allowed = (shifts[None].abs() <= span.index_select(0, g)[:, None]).all(2)
    which = torch.nonzero(inside.all(2) & allowed)
    node = nodes.index_select(0, which[:, 0])
    shift = shifts.index_select(0, which[:, 1])
    position = x.index_select(0, node) + torch.einsum("ek,ekl->el", shift.double(), basis.index_select(0, batch[node]))
    return node, shift, position


def _pairs_torch(x, r, batch, num_graphs, basis, pbc):
    """Directed candidates ``(recv, send, shift)`` on wrapped positions: the cell list over atoms and
    ghosts, queried from the atoms only (pairs of two ghosts are never evaluated)."""
    n = x.shape[0]
    node, shift, position = _ghosts(x, batch, basis, pbc, r)
    points = torch.cat([x, position])
    owner = torch.cat([torch.arange(n, device=x.device), node])
    image = torch.cat([shift.new_zeros(n, 3), shift])
    recv, sender = _cell_list.radius_query_pairs(
        points, r, torch.cat([batch, batch.index_select(0, node)]), num_graphs, n
    )
    return recv, owner.index_select(0, sender), image.index_select(0, sender)


def _pairs_vesin(x, r, batch, num_graphs, basis, pbc):
    """Directed candidates from vesin: its periodic search per periodic graph (full list), and the
    open graphs together through :func:`~._backends.radius_pairs_vesin` (batched, guarded against
    the flat inputs that crash vesin)."""
    vesin = backend_module("vesin")
    device = x.device
    periodic = pbc.any(1)
    recv, send, shifts = [], [], []
    open_nodes = torch.nonzero(~periodic.index_select(0, batch)).squeeze(1)
    if open_nodes.numel():
        graphs, local = torch.unique(batch.index_select(0, open_nodes), return_inverse=True)
        a, b = _backends.radius_pairs_vesin(x.index_select(0, open_nodes), r, local, graphs.numel())
        a, b = open_nodes.index_select(0, a), open_nodes.index_select(0, b)
        recv += [a, b]
        send += [b, a]
        shifts.append(torch.zeros(2 * a.numel(), 3, dtype=torch.long, device=device))
    counts = torch.bincount(batch, minlength=num_graphs)
    order = torch.argsort(batch, stable=True)
    starts = (torch.cumsum(counts, 0) - counts).tolist()
    for g in torch.nonzero(periodic & (counts > 0)).flatten().tolist():
        nodes = order[starts[g] : starts[g] + int(counts[g])]
        # vesin refuses cutoffs below 1e-6: search in units of r, float64 (its own precision)
        search = vesin.NeighborList(cutoff=1.0, full_list=True)
        i, j, s = search.compute(x.index_select(0, nodes) / r, basis[g] / r, pbc[g], "ijS")
        recv.append(nodes.index_select(0, i.to(device, torch.long)))
        send.append(nodes.index_select(0, j.to(device, torch.long)))
        shifts.append(s.to(device, torch.long))
    if not recv:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, torch.zeros(0, 3, dtype=torch.long, device=device)
    return torch.cat(recv), torch.cat(send), torch.cat(shifts)


_PAIRS = {"torch": _pairs_torch, "vesin": _pairs_vesin}


def canonical_periodic(recv: torch.Tensor, send: torch.Tensor, shift: torch.Tensor, n: int) -> torch.Tensor:
    """The permutation that sorts edges by receiver, then sender, then shift (lexicographic).

    Shapes
    ------
    ``recv, send (E,)``, ``shift (E, 3)`` long -> ``(E,)``
    """
    if recv.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=recv.device)
    low = shift.amin(0)
    width = (shift.amax(0) - low + 1).tolist()
    s = shift - low
    code = (s[:, 0] * width[1] + s[:, 1]) * width[2] + s[:, 2]
    order = torch.argsort(code, stable=True)
    key = (recv * n + send).index_select(0, order)
    return order.index_select(0, torch.argsort(key, stable=True))


def _nearest(recv: torch.Tensor, d2: torch.Tensor, n: int, limit: int) -> torch.Tensor:
    """Indices (ascending) of each receiver's ``limit`` nearest edges; ties: earlier edge first."""
    by_dist = torch.argsort(d2, stable=True)
    order = by_dist[torch.argsort(recv.index_select(0, by_dist), stable=True)]
    degree = torch.bincount(recv, minlength=n)
    first = torch.cumsum(degree, 0) - degree
    rank = torch.arange(order.numel(), device=recv.device) - first.index_select(0, recv.index_select(0, order))
    return torch.sort(order[rank < limit]).values


def periodic_radius_graph(
    pos: torch.Tensor,
    r: float,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    batch: torch.Tensor | None = None,
    num_nodes: torch.Tensor | int | None = None,
    backend: str = "auto",
    max_num_neighbors: int | None = None,
    loop: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Radius graph under periodic boundary conditions: edges and the sender's cell shift.

    ``j -> i`` with shift ``S`` is an edge when :math:`|x_i - (x_j + S C_g)| < r`
    strictly and ``(i, S) != (j, 0)``, decided by one expression (``periodic_sq_dist``) in the dtype
    of ``pos`` whatever backend proposed the candidate. Graphs with ``pbc`` all false
    get exactly the edges of :func:`~irrepnet.graph.radius_graph` (shift 0); a batch may
    mix periodic, partly periodic (slabs, wires) and open graphs, with triclinic cells
    of any size relative to ``r``. Positions need not lie inside the cell.

    Parameters
    ----------
    pos : torch.Tensor
        node positions.
    r : float
        cutoff, > 0.
    cell : torch.Tensor
        lattice vectors of each graph as rows; rows along non-periodic directions are
        not used (they may be zero). ``(3, 3)`` applies to every graph.
    pbc : torch.Tensor
        bool, periodicity along each lattice vector; ``(3,)`` applies to every graph.
    batch, num_nodes, backend, max_num_neighbors, loop
        as in :func:`~irrepnet.graph.radius_graph`; the backends are ``"torch"`` (ghost
        images and the cell list; ``"auto"``) and ``"vesin"``; torch-cluster has no
        periodic search and is refused. ``loop`` adds ``i -> i`` with shift 0.

    Returns
    -------
    tuple of torch.Tensor
        ``edge_index`` (long, sorted by receiver, then sender, then shift) and
        ``edge_cell_shift`` (integers, in the dtype of ``pos``); with them
        ``edge_vec = pos[i] - (pos[j] + edge_cell_shift @ cell[g])``.

    Shapes
    ------
    ``pos (n, 3)``, ``cell (G, 3, 3)``, ``pbc (G, 3)``, ``batch (n,)`` -> ``(2, E)``, ``(E, 3)``
    """
    check_pos(pos)
    r = check_radius(r)
    if backend == "torch_cluster":  # refused whether or not it is installed
        raise ValueError("backend 'torch_cluster' has no periodic neighbour search; use backend='torch' or 'vesin'")
    name = require(backend, RADIUS_BACKENDS, "periodic_radius_graph")
    if max_num_neighbors is not None and max_num_neighbors < 0:
        raise ValueError(f"max_num_neighbors must be >= 0 or None, got {max_num_neighbors}")
    n = pos.shape[0]
    batch, g = resolve_batch(n, batch, num_nodes, pos.device)
    cell, pbc = check_cell(cell, pbc, g, pos.device)
    x = as_float(pos.detach())
    if n == 0:
        return empty_edges(pos.device), x.new_zeros(0, 3)
    basis = lattice_basis(cell, pbc)
    wrapped, whole = wrap(x, batch, basis, pbc)
    search = r * (1 + SEARCH_MARGIN)  # the exact test below decides
    recv, send, image = _PAIRS["torch" if name == "auto" else name](wrapped, search, batch, g, basis, pbc)
    shift = image + whole.index_select(0, recv) - whole.index_select(0, send)
    shift_f = shift.to(x.dtype)
    c = cell.detach().to(x.dtype)
    keep = periodic_sq_dist(x, c, batch.index_select(0, recv), recv, send, shift_f) < r * r
    keep &= (recv != send) | (shift != 0).any(1)
    recv, send, shift = recv[keep], send[keep], shift[keep]
    if max_num_neighbors is not None:
        d2 = periodic_sq_dist(x, c, batch.index_select(0, recv), recv, send, shift.to(x.dtype))
        kept = _nearest(recv, d2, n, max_num_neighbors)
        recv, send, shift = recv[kept], send[kept], shift[kept]
    if loop:
        nodes = torch.arange(n, device=pos.device)
        recv, send = torch.cat([recv, nodes]), torch.cat([send, nodes])
        shift = torch.cat([shift, shift.new_zeros(n, 3)])
    order = canonical_periodic(recv, send, shift, n)
    edge_index = torch.stack([send.index_select(0, order), recv.index_select(0, order)])
    return edge_index, shift.index_select(0, order).to(x.dtype)


def is_periodic(data) -> bool:
    """Whether a batch holds a periodic graph: ``cell`` and ``pbc`` present, some ``pbc`` true.

    A batch with ``cell`` but no ``pbc`` (or the reverse) is refused rather than guessed.
    """
    has_cell, has_pbc = K.CELL in data, K.PBC in data
    if has_cell != has_pbc:
        missing = K.PBC if has_cell else K.CELL
        raise ValueError(f"the batch has {(K.CELL if has_cell else K.PBC)!r} but no {missing!r}; give both or neither")
    return has_pbc and bool(data[K.PBC].any())


def refuse_periodic(data, what: str, fix: str) -> None:
    """Raise a one-line ``ValueError`` when ``data`` holds a periodic graph.

    For models that compute ``x_i - x_j`` (or other functions of absolute positions)
    themselves instead of reading ``edge_vec``: they would silently ignore the images.
    Reads no tensor values unless the batch has ``pbc`` (compiled open models are untouched).
    """
    if (K.PBC in data or K.CELL in data) and is_periodic(data):
        raise ValueError(f"{what} computes from the positions directly and knows no periodic images; {fix}")


__all__ = ["periodic_radius_graph", "cell_offsets", "periodic_sq_dist", "is_periodic", "refuse_periodic"]
