"""Pure-PyTorch radius neighbour search with a cell list: linear in n at fixed density.

Points are binned into cubic cells of side ``s = r / m`` (``m`` =
:data:`CELLS_PER_CUTOFF`), keyed by (graph, cell x, cell y, cell z) with z varying
fastest, and sorted by key. For a point, every neighbour closer than ``r`` lies in a
cell at most ``m`` cells away on each axis; cells whose closest corner is already
``>= r`` away are dropped from the stencil, and, because z is the fastest key digit,
the cells left in one (dx, dy) column are one contiguous run of sorted points. Each
unordered pair is proposed once (the forward half of the stencil, plus later points
in the same column), so a point with ``k`` neighbours costs about ``1.9 k`` distance
evaluations at ``m = 2`` (``3.2 k`` with cells of side ``r``). Candidates are expanded
and tested in chunks of :data:`CHUNK` pairs, run as independent tasks over the cores.

Cell keys never overflow: when the dense grid (``G`` graphs x cells per axis) is small
the keys are its linear index and a table gives each cell's first point; otherwise
(sparse or huge coordinate ranges) empty stretches of each axis are compressed and
columns are renumbered by rank, so keys stay below ``n * (3 n)``, and the ranges are
found with ``searchsorted``.
"""

from __future__ import annotations

import math

import torch

from ._common import SEARCH_MARGIN, map_chunks, segment_ids, sq_dist

CELLS_PER_CUTOFF = 2  # m = 2 was fastest: m = 1 tests 1.7x more pairs, m = 3 does 2x more lookups
CHUNK = 1 << 16  # candidate pairs per vectorised step: ~5 MB of temporaries, cache-sized
# A table of cell starts (16 bytes per cell while built) costs a few ns per cell; the
# searchsorted lookups ~2 us per point: the table wins up to hundreds of cells per
# point, so memory sets the limit.
DENSE_CELLS_PER_POINT = 32
DENSE_MIN_CELLS = 1 << 21
# float64 binning is exact to ~2e-16 of the cell coordinate; below 2^36 cells that is
# far inside the SEARCH_MARGIN slack, so no pair closer than r lands outside the stencil
_MAX_CELL_COORD = 2.0**36


def stencil(m: int) -> list[tuple[int, int, int]]:
    """Forward half of the neighbour stencil as columns ``(dx, dy, h)``: cells dz in [-h, h].

    A cell ``d`` cells away on an axis is at least ``(|d| - 1) s`` away on it, so cell
    ``(dx, dy, dz)`` can hold a neighbour only if the sum of those squares is below
    ``r^2 = (m s)^2``. Forward means ``dx > 0``, or ``dx == 0`` and ``dy > 0``; column
    ``(0, 0)`` is handled separately (later points of the same column).
    """
    out = []
    for dx in range(0, m + 1):
        for dy in range(-m, m + 1):
            if dx == 0 and dy <= 0:
                continue
            rem = m * m - max(dx - 1, 0) ** 2 - max(abs(dy) - 1, 0) ** 2
            if rem <= 0:
                continue
            h = 1  # largest |dz| with (|dz| - 1)^2 < rem
            while h * h < rem:
                h += 1
            out.append((dx, dy, h))
    return out


def _compact(v: torch.Tensor, m: int) -> torch.Tensor:
    """Renumber integer coordinates so that gaps wider than ``m`` shrink to ``m + 1``.

    Offsets up to ``m`` (potential neighbours) are kept exactly; farther cells stay out
    of the stencil's reach. The result lies in ``[m, m + (m + 1) * unique)``.
    """
    values, inverse = torch.unique(v, return_inverse=True)
    steps = torch.diff(values).clamp_(max=m + 1)
    return (torch.cat([steps.new_zeros(1), torch.cumsum(steps, 0)]) + m)[inverse]


def _cell_coords(pos: torch.Tensor, r: float, batch: torch.Tensor, num_graphs: int, m: int) -> torch.Tensor:
    """Integer cell of each point relative to its graph's lower corner, offset by ``m``."""
    p64 = pos.detach().double()  # binning in float64 keeps float32 inputs exact; the bins carry no gradient
    lower = torch.full((num_graphs, 3), float("inf"), dtype=torch.float64, device=pos.device)
    lower = lower.scatter_reduce(0, batch[:, None].expand(-1, 3), p64, reduce="amin")
    # a margin on the cell side absorbs rounding in the division (neighbours at
    # exactly r must never be two cells apart)
    rel = (p64 - lower[batch]) / (r * (1 + SEARCH_MARGIN) / m)
    top = float(rel.max())
    if top >= _MAX_CELL_COORD:
        raise ValueError(
            f"a graph spans {top * r / m:.3g} along one axis, more than {_MAX_CELL_COORD / m:.2g} times the "
            f"cutoff r = {r}: the cell list cannot bin it exactly; rescale the positions or split the graph"
        )
    return torch.floor(rel).long() + m


def _ranges_dense(c, batch, num_graphs, m, cols):
    """Sort points by linear cell index; a table of cell starts gives each column's run.

    Returns ``order`` (sorted position -> node) and ``lo, hi`` of shape ``(n, J)``:
    the run ``[lo, hi)`` of sorted points in each stencil column of each sorted point.
    Column 0 is ``(0, 0)``; its ``lo`` is filled in by the caller.
    """
    # coordinates start at m, so the m empty cells below each row, column and graph
    # are also the padding above the previous one: a lookup past the end of a row
    # lands in empty cells of the next row, never on another row's points
    nx, ny, nz = (c.max(0).values + 1).tolist()
    key = ((batch * nx + c[:, 0]) * ny + c[:, 1]) * nz + c[:, 2]
    key, order = torch.sort(key)
    offset = torch.tensor([0] + [(dx * ny + dy) * nz for dx, dy, _ in cols], device=c.device)
    reach = torch.tensor([m] + [h for _, _, h in cols], device=c.device)  # column (0, 0) reaches dz = m
    past_end = int((offset + reach).max()) + 2  # the last graph's lookups past the grid
    counts = torch.bincount(key, minlength=num_graphs * nx * ny * nz + past_end)
    start = torch.cumsum(counts, 0)
    start -= counts  # start[k]: first sorted point of cell k
    lo = start[key[:, None] + (offset - reach)]
    hi = start[key[:, None] + (offset + reach + 1)]
    return order, lo, hi


def _ranges_sparse(c, batch, m, cols):
    """As :func:`_ranges_dense` for grids too large to tabulate: rank keys, searchsorted."""
    x = _compact(c[:, 0], m)
    x = _compact(batch * (int(x.max()) + m + 1) + x, m)  # graphs side by side along x
    y, z = _compact(c[:, 1], m), _compact(c[:, 2], m)
    ny, nz = int(y.max()) + m + 1, int(z.max()) + m + 1
    column = x * ny + y
    columns, col_rank = torch.unique(column, return_inverse=True)
    key, order = torch.sort(col_rank * nz + z)
    column, z = column[order], z[order]
    lo = torch.empty(c.shape[0], len(cols) + 1, dtype=torch.long, device=c.device)
    hi = torch.empty_like(lo)
    hi[:, 0] = torch.searchsorted(key, key + m, right=True)
    for j, (dx, dy, h) in enumerate(cols, start=1):
        target = column + (dx * ny + dy)
        rank = torch.searchsorted(columns, target)
        found = columns[rank.clamp(max=columns.numel() - 1)] == target
        lo[:, j] = torch.searchsorted(key, rank * nz + z - h)
        hi[:, j] = torch.where(found, torch.searchsorted(key, rank * nz + z + h, right=True), lo[:, j])
    return order, lo, hi


def radius_pairs(pos: torch.Tensor, r: float, batch: torch.Tensor, num_graphs: int, dense: bool | None = None):
    """Every unordered pair of distinct nodes of one graph with ``sq_dist < r^2``, once.

    ``dense`` forces the table (``True``) or the searchsorted (``False``) lookup; by
    default the table is used while it has at most ``DENSE_CELLS_PER_POINT`` cells per point.

    Shapes
    ------
    ``pos (n, 3)`` with ``n >= 1``, ``batch (n,)`` -> ``a (P,)``, ``b (P,)`` original node indices
    """
    n, m = pos.shape[0], CELLS_PER_CUTOFF
    c = _cell_coords(pos, r, batch, num_graphs, m)
    cols = stencil(m)
    if dense is None:
        cells = num_graphs * math.prod((c.max(0).values + 1).tolist())  # Python ints: no overflow
        dense = cells <= DENSE_CELLS_PER_POINT * n + DENSE_MIN_CELLS
    order, lo, hi = _ranges_dense(c, batch, num_graphs, m, cols) if dense else _ranges_sparse(c, batch, m, cols)
    # column (0, 0): the later points of the same column, so each pair appears once
    lo[:, 0] = torch.arange(1, n + 1, device=pos.device)
    count = hi - lo  # (n, J)
    per_point = torch.cumsum(count.sum(1), 0)
    total = int(per_point[-1])
    n_chunks = max(1, total // CHUNK)
    bounds = torch.searchsorted(per_point, torch.arange(1, n_chunks, device=pos.device) * (total // n_chunks))
    edges = [0] + bounds.tolist() + [n]
    ps = pos[order]
    ranges = [(a0, a1) for a0, a1 in zip(edges[:-1], edges[1:]) if a0 < a1]
    parts = map_chunks(lambda a0, a1: _chunk_pairs(ps, r * r, order, lo[a0:a1], count[a0:a1], a0), ranges, pos.device)
    return torch.cat([a for a, _ in parts]), torch.cat([b for _, b in parts])


def _chunk_pairs(ps, r2, order, lo, count, first_point):
    """Pairs within ``r`` among the candidates of sorted points ``first_point, ...``.

    ``lo, count`` are those points' rows of the ``(n, J)`` column runs.
    """
    cnt = count.reshape(-1)
    first = torch.cumsum(cnt, 0)
    rows = segment_ids(cnt, torch.empty(int(first[-1]), dtype=torch.long, device=ps.device))
    first -= cnt  # rows[t]: the (point, column) of candidate t, which starts at first[rows[t]]
    q = torch.arange(rows.numel(), device=ps.device) + (lo.reshape(-1) - first)[rows]
    p = torch.div(rows, lo.shape[1], rounding_mode="floor") + first_point
    keep = torch.nonzero(sq_dist(ps, p, q) < r2).squeeze(1)
    return order.index_select(0, p.index_select(0, keep)), order.index_select(0, q.index_select(0, keep))


def radius_query_pairs(
    pos: torch.Tensor, r: float, batch: torch.Tensor, num_graphs: int, queries: int, dense: bool | None = None
):
    """Directed pairs ``(p, q)`` with ``p < queries``, ``q != p`` any point of its graph, ``sq_dist < r^2``.

    The cell list asked from the first ``queries`` points only, over the full stencil
    (both halves and the whole own column), so each pair with a query point is found
    from that point and pairs among the other points are never evaluated. Periodic
    graphs use it with the atoms as queries and their ghost images as the other points
    (:mod:`irrepnet.graph._periodic`), where ghosts can outnumber atoms many times over.
    ``dense`` as in :func:`radius_pairs`.

    Shapes
    ------
    ``pos (n, 3)`` with ``n >= 1``, ``batch (n,)`` -> ``p (P,)``, ``q (P,)`` original point indices
    """
    n, m = pos.shape[0], CELLS_PER_CUTOFF
    c = _cell_coords(pos, r, batch, num_graphs, m)
    half = stencil(m)
    # column (0, 0) whole (dz in [-m, m]) as an ordinary column; the built-in column 0 is not used
    cols = [(0, 0, m)] + half + [(-dx, -dy, h) for dx, dy, h in half]
    if dense is None:
        cells = num_graphs * math.prod((c.max(0).values + 1).tolist())
        dense = cells <= DENSE_CELLS_PER_POINT * n + DENSE_MIN_CELLS
    order, lo, hi = _ranges_dense(c, batch, num_graphs, m, cols) if dense else _ranges_sparse(c, batch, m, cols)
    rows = torch.nonzero(order < queries).squeeze(1)  # sorted positions of the query points
    lo, count = lo.index_select(0, rows), (hi - lo).index_select(0, rows)
    count[:, 0] = 0
    per_point = torch.cumsum(count.sum(1), 0)
    total = int(per_point[-1]) if rows.numel() else 0
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=pos.device)
        return empty, empty
    n_chunks = max(1, total // CHUNK)
    bounds = torch.searchsorted(per_point, torch.arange(1, n_chunks, device=pos.device) * (total // n_chunks))
    edges = [0] + bounds.tolist() + [rows.numel()]
    ps = pos[order]
    ranges = [(a0, a1) for a0, a1 in zip(edges[:-1], edges[1:]) if a0 < a1]

    def chunk(a0, a1):
        cnt = count[a0:a1].reshape(-1)
        first = torch.cumsum(cnt, 0)
        slot = segment_ids(cnt, torch.empty(int(first[-1]), dtype=torch.long, device=pos.device))
        first -= cnt
        q = torch.arange(slot.numel(), device=pos.device) + (lo[a0:a1].reshape(-1) - first)[slot]
        p = rows[a0:a1].index_select(0, torch.div(slot, lo.shape[1], rounding_mode="floor"))
        keep = torch.nonzero((sq_dist(ps, p, q) < r * r) & (p != q)).squeeze(1)
        return order.index_select(0, p.index_select(0, keep)), order.index_select(0, q.index_select(0, keep))

    parts = map_chunks(chunk, ranges, pos.device)
    return torch.cat([a for a, _ in parts]), torch.cat([b for _, b in parts])
