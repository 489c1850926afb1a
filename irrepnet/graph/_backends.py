"""Neighbour searches delegated to compiled libraries (torch-cluster, vesin).

Each wrapper returns the same thing as its pure-PyTorch counterpart, so the public
functions can post-process every backend alike: radius searches return each
unordered pair once, already tested with :func:`~._common.sq_dist` (the library
searches ``r (1 + SEARCH_MARGIN)`` and the exact test is redone here); kNN returns
``(recv, send)`` in any order.
"""

from __future__ import annotations

import math

import torch

from ._common import SEARCH_MARGIN, backend_module, sq_dist

# math.cbrt is Python 3.11+; on 3.10 the power is within an ulp of it, which can move the
# truncated cell count only for inputs exactly at a cube of an integer
_cbrt = getattr(math, "cbrt", lambda x: x ** (1.0 / 3.0))

Pairs = tuple[torch.Tensor, torch.Tensor]


def _sorted_by_graph(pos: torch.Tensor, batch: torch.Tensor):
    """torch-cluster needs nodes grouped by graph: return ``(pos, batch, perm)``, perm or None."""
    if batch.numel() < 2 or bool((batch[1:] >= batch[:-1]).all()):
        return pos, batch, None
    perm = torch.argsort(batch, stable=True)
    return pos[perm], batch[perm], perm


def radius_pairs_torch_cluster(pos: torch.Tensor, r: float, batch: torch.Tensor, num_graphs: int) -> Pairs:
    tc = backend_module("torch_cluster")
    x, b, perm = _sorted_by_graph(pos, batch)
    largest = int(torch.bincount(b, minlength=num_graphs).max())
    # torch-cluster keeps only max_num_neighbors per node (32 by default) without
    # saying so; the largest graph size makes the search exact
    edge_index = tc.radius_graph(
        x,
        r * (1 + SEARCH_MARGIN),
        batch=b,
        loop=False,
        max_num_neighbors=largest,
        num_workers=torch.get_num_threads(),
    )
    a, c = edge_index[0], edge_index[1]
    keep = a < c  # both directions come back; keep each pair once
    a, c = a[keep], c[keep]
    keep = sq_dist(x, a, c) < r * r
    a, c = a[keep], c[keep]
    return (a, c) if perm is None else (perm[a], perm[c])


def _slot_grid(num_graphs: int, slot: torch.Tensor) -> tuple[int, int]:
    """Slots along x and y (z takes the rest) so that the whole layout is roughly cubic."""
    side = (num_graphs * float(slot.prod())) ** (1 / 3)
    return max(1, round(side / float(slot[0]))), max(1, round(side / float(slot[1])))


def vesin_cells(spans) -> list:
    """Cells per axis that vesin 0.6 uses for a non-periodic box spanning ``spans`` cutoffs.

    Mirrors its ``CellList`` constructor: the grid is capped at 1e5 cells by shrinking
    the axes in proportion, and an axis shrunk to 0 cells makes it divide by zero
    (SIGFPE kills the process: a flat 2-D set over more than ~316 x 316 cutoffs is
    enough), so such inputs must never reach it.
    """
    n = [max(1.0, float(math.trunc(s))) for s in spans]
    if n[0] * n[1] * n[2] > 1e5:
        xy, yz = n[0] / n[1], n[1] / n[2]
        n[2] = float(math.trunc(_cbrt(1e5 / (xy * yz * yz))))
        n[1] = float(math.trunc(yz * n[2]))
        n[0] = float(math.trunc(xy * n[1]))
    return n


def radius_pairs_vesin(pos: torch.Tensor, r: float, batch: torch.Tensor, num_graphs: int) -> Pairs:
    """vesin computes one system at a time: the graphs are placed in a grid of slots.

    Each slot is the largest graph's bounding box plus ``2 r`` per axis, so no pair
    from two graphs is within the search radius and one call handles the batch; the
    slots form a roughly cubic block because vesin caps its grid at 1e5 cells and a
    long row of graphs would leave too few cells across it. Coordinates are divided
    by ``r`` (vesin refuses cutoffs below 1e-6) in float64, vesin's own precision;
    the exact test uses the original positions.
    """
    vesin = backend_module("vesin")
    scaled = pos.double() / r
    idx = batch[:, None].expand(-1, 3)
    lower = torch.full((num_graphs, 3), float("inf"), dtype=torch.float64, device=pos.device)
    upper = torch.full((num_graphs, 3), float("-inf"), dtype=torch.float64, device=pos.device)
    lower = lower.scatter_reduce(0, idx, scaled, reduce="amin")
    upper = upper.scatter_reduce(0, idx, scaled, reduce="amax")
    occupied = torch.bincount(batch, minlength=num_graphs) > 0
    slot = torch.where(occupied[:, None], upper - lower, 0.0).amax(0) + 2.0
    a, b = _slot_grid(num_graphs, slot)
    g = torch.arange(num_graphs, device=pos.device)
    corner = torch.stack([g % a, (g // a) % b, g // (a * b)], 1) * slot
    points = scaled + (corner - torch.where(occupied[:, None], lower, 0.0))[batch]
    cutoff = 1.0 + SEARCH_MARGIN
    spans = [d / cutoff for d in (points.amax(0) - points.amin(0)).tolist()]
    if min(vesin_cells(spans)) < 1:
        raise ValueError(
            f"vesin cannot handle this input: its bounding box spans {[round(s) for s in spans]} cutoffs, too "
            "flat or elongated for vesin's capped cell grid (vesin would crash); use backend='torch'"
        )
    search = vesin.NeighborList(cutoff=cutoff, full_list=False)
    box = torch.zeros(3, 3, dtype=torch.float64, device=points.device)  # zero box: no periodicity
    i, j = search.compute(points, box, False, "ij")
    i, j = i.to(pos.device, torch.long), j.to(pos.device, torch.long)
    keep = (batch[i] == batch[j]) & (sq_dist(pos, i, j) < r * r)
    return i[keep], j[keep]


def knn_torch_cluster(pos: torch.Tensor, k: int, batch: torch.Tensor, loop: bool) -> Pairs:
    tc = backend_module("torch_cluster")
    x, b, perm = _sorted_by_graph(pos, batch)
    edge_index = tc.knn_graph(x, k, batch=b, loop=loop, num_workers=torch.get_num_threads())
    send, recv = edge_index[0], edge_index[1]
    return (recv, send) if perm is None else (perm[recv], perm[send])
