"""Graph construction as a layer, so that a model owns its graph.

Building the graph inside the model means the audit transforms only node fields and
the graph is rebuilt from the transformed positions, which is what happens at
inference. It is built once per batch and every later layer reuses it; a full graph,
which depends on ``batch`` and ``num_nodes`` alone, is kept from one call to the next
and reused while they stay the same (a training run's batches of equal-size systems).

The work splits in two. :meth:`GraphConstruction.topology` decides which pairs are
edges: its output size depends on the data, so it runs eagerly (a compiled model,
:mod:`irrepnet.compile`, calls it before entering the compiled region and passes the
result in the batch under :attr:`GraphConstruction.topology_field`). ``forward`` then
only computes the geometry, ``edge_vec`` and ``edge_len``, which is differentiable in
the positions (and the cell) and traces into one graph.

Periodic cells: when the batch holds ``cell`` and ``pbc`` with some ``pbc`` true, a
radius graph is built with :func:`~irrepnet.graph.periodic_radius_graph`; its
``edge_cell_shift`` is a topology field beside ``edge_index`` and ``edge_vec`` includes
it, so every model that reads ``edge_vec`` works unchanged. Full and kNN graphs of
periodic data are refused.

Shapes/irreps
-------------
reads ``pos 1o (n, 3)``, ``batch (n,)``, ``num_nodes (G,)``, and on periodic data
``cell (G, 3, 3)``, ``pbc (G, 3)``;
writes ``edge_index (2, E)``, ``edge_vec 1o (E, 3)``, ``edge_len (E,)`` (on periodic
data also ``edge_cell_shift (E, 3)``, and ``edge_vec`` includes the shift), and for
the symmetric kinds (full, radius), with ``pairs=True``, ``edge_pair (E,)`` and ``pair_edge (P,)``, with which
functions of the edge length are computed once per pair (see :func:`per_pair`).

Regular graphs
--------------
Edges come sorted by receiver. When every node receives the same number ``D`` of
edges (the full graph of a batch of equal-size systems: ``D = N - 1``; a kNN graph),
``topology`` also leaves ``receiver_slots`` (a ``(D,)`` tensor: its *shape* carries
``D``, which ``torch.compile`` then knows without reading values). The edge rows are
then a dense ``(n, D)`` grid, receiver by receiver, and :func:`at_receivers` and
:func:`sum_at_receivers` replace the gather ``x[receiver]`` by a broadcast and the
scatter-add onto receivers by a sum over a dimension: the same numbers (up to the order
of floating-point additions) without index arithmetic.
"""

from __future__ import annotations

import torch

from .. import keys as K
from ..batch import ensure_batch
from ..graph import edge_vectors
from ..graph._build import build_edge_index, edge_pairs
from ..graph._periodic import is_periodic
from ..interface import IrrepsModule
from ..scatter import segment_mean, segment_softmax, segment_sum


class GraphConstruction(IrrepsModule):
    """Full, radius or kNN graph over each graph of the batch.

    Parameters
    ----------
    kind : {"full", "radius", "knn"}
    r : float, optional
        cutoff radius for ``kind="radius"``.
    k : int, optional
        neighbours per node for ``kind="knn"``.
    backend : str
        neighbour-search backend (see :mod:`irrepnet.graph`).
    regular : bool
        mark regular graphs (``receiver_slots``) so that layers take the dense path;
        ``False`` keeps every layer on gather/scatter (for comparisons).
    pairs : bool
        on a symmetric kind, also write ``edge_pair``/``pair_edge`` for a
        :class:`~irrepnet.nn.RadialEmbedding` downstream (0.2 ms per 100 x 5-node batch,
        wasted on a model with no radial embedding).
    """

    def __init__(
        self,
        kind: str = "full",
        r: float | None = None,
        k: int | None = None,
        backend: str = "auto",
        regular: bool = True,
        pairs: bool = False,
    ):
        super().__init__({K.POS: "1o"}, {K.EDGE_INDEX: None, K.EDGE_VEC: "1o", K.EDGE_LEN: None})
        if kind not in ("full", "radius", "knn"):
            raise ValueError(f"unknown graph kind {kind!r}; choose 'full', 'radius' or 'knn'")
        if kind == "radius" and (r is None or r <= 0):
            raise ValueError(f"a radius graph needs r > 0, got r={r}")
        if kind == "knn" and (k is None or k < 1):
            raise ValueError(f"a kNN graph needs k >= 1, got k={k}")
        self.kind, self.r, self.k, self.backend, self.regular = kind, r, k, backend, regular
        self._full_cache = None  # (batch, num_nodes, (regular, pairs), fields) of the last full graph built
        # full and radius graphs hold j -> i exactly when i -> j: pair fields for per_pair()
        self.pairs = pairs and kind in ("full", "radius")
        if self.pairs:
            self.irreps_out.update({K.EDGE_PAIR: None, K.PAIR_EDGE: None})

    @property
    def topology_field(self) -> str:
        """Batch field where :meth:`topology` leaves this graph's ``edge_index`` for ``forward``."""
        param = f"r={self.r}" if self.kind == "radius" else f"k={self.k}" if self.kind == "knn" else ""
        return f"_topology[{self.kind}{',' if param else ''}{param},{self.backend}]"

    def topology(self, data):
        """``data`` with ``batch``/``num_nodes`` filled in and this graph's edges under :attr:`topology_field`.

        Eager only: which pairs are neighbours decides the output's size. Positions are
        read detached; the edges themselves carry no gradient.
        """
        out = ensure_batch(data)
        if self.kind != "radius" and is_periodic(out):  # before the cache: a full graph of these nodes may be in it
            raise ValueError(
                f"GraphConstruction(kind={self.kind!r}) has no periodic images; the batch holds periodic cells "
                "(pbc): use kind='radius'"
            )
        hit = self._cached_full(out)
        if hit is not None:  # the full graph of the same systems as the last call: its fields unchanged
            out.update(hit)
            return out
        kwargs = {"r": self.r} if self.kind == "radius" else {"k": self.k} if self.kind == "knn" else {}
        backend = {} if self.kind == "full" else {"backend": self.backend}
        out, edge_index = build_edge_index(out, self.kind, **kwargs, **backend)
        shift = out.pop(K.EDGE_CELL_SHIFT, None)
        fields = {self.topology_field: edge_index}
        if shift is not None:  # periodic: travels beside edge_index, into compiled regions too
            fields[self.topology_field + K.EDGE_CELL_SHIFT] = shift
        degree = regular_degree(edge_index[1], out[K.POS].shape[0]) if self.regular else None
        if degree is not None:
            fields[self.topology_field + K.RECEIVER_SLOTS] = torch.arange(degree, device=edge_index.device)
        pairs = edge_pairs(edge_index, out[K.POS].shape[0], shift) if self.pairs else None
        if pairs is not None:
            fields[self.topology_field + K.EDGE_PAIR], fields[self.topology_field + K.PAIR_EDGE] = pairs
        if self.kind == "full":
            # copies of the key: a caller refilling its batch tensors in place must not fake a hit
            self._full_cache = (out[K.BATCH].clone(), out[K.NUM_NODES].clone(), (self.regular, self.pairs), fields)
        out.update(fields)
        return out

    def _cached_full(self, data):
        """The topology fields of the last full graph when ``data`` has the same ``batch`` and ``num_nodes``.

        A full graph depends on nothing else (the fields written also on ``regular`` and
        ``pairs``, which are part of the key: a test switches ``regular`` off), and a training run feeds batches of one
        shape: building it (sorting nodes by graph, index arithmetic, the regularity check)
        would cost each step as much as a layer's elementwise pass on the N-body batch.
        The key is compared by value (two ``torch.equal`` of ``(n,)`` and ``(G,)``), not
        by identity, so a new batch of the same systems hits and any other misses.
        """
        cached = getattr(self, "_full_cache", None)
        if cached is None or self.kind != "full":
            return None
        batch, num_nodes, options, fields = cached
        new_batch, new_counts = data[K.BATCH], data[K.NUM_NODES]
        if (
            options != (self.regular, self.pairs)
            or batch.device != new_batch.device
            or batch.shape != new_batch.shape
            or num_nodes.shape != new_counts.shape
            or not torch.equal(num_nodes, new_counts)
            or not torch.equal(batch, new_batch)
        ):
            return None
        return fields

    def forward(self, data):
        if self.topology_field not in data:  # eager use: nobody prepared the edges
            data = self.topology(data)
        edges = {**data, K.EDGE_INDEX: data[self.topology_field]}
        edges.pop(K.EDGE_CELL_SHIFT, None)  # of an earlier graph
        if self.topology_field + K.EDGE_CELL_SHIFT in data:
            edges[K.EDGE_CELL_SHIFT] = data[self.topology_field + K.EDGE_CELL_SHIFT]
        out = edge_vectors(edges)
        for stale in (K.RECEIVER_SLOTS, K.EDGE_PAIR, K.PAIR_EDGE, K.PAIR_EMBEDDING):  # of an earlier graph
            out.pop(stale, None)
        if self.topology_field + K.RECEIVER_SLOTS in data:
            out[K.RECEIVER_SLOTS] = data[self.topology_field + K.RECEIVER_SLOTS]
        if self.topology_field + K.EDGE_PAIR in data:
            out[K.EDGE_PAIR] = data[self.topology_field + K.EDGE_PAIR]
            out[K.PAIR_EDGE] = data[self.topology_field + K.PAIR_EDGE]
        return out

    def extra_repr(self) -> str:
        extra = f", r={self.r}" if self.kind == "radius" else f", k={self.k}" if self.kind == "knn" else ""
        return f"kind={self.kind!r}{extra}, {super().extra_repr()}"


def per_pair(fn, data):
    """``fn(edge_embedding)``, evaluated once per unordered pair when the embedding says it may be.

    A radial embedding is a function of ``|x_i - x_j|``, the same for ``i -> j`` and
    ``j -> i``; :class:`~irrepnet.nn.RadialEmbedding` on a symmetric graph therefore
    writes it once per pair (``pair_embedding``). For ``fn`` acting row by row (a radial
    MLP), ``fn(pair_embedding)[edge_pair]`` equals ``fn(edge_embedding)`` at half the
    cost. Without ``pair_embedding`` (kNN graphs, an embedding from elsewhere) it is
    ``fn(edge_embedding)``.

    Shapes
    ------
    ``edge_embedding (E, B)`` or ``pair_embedding (P, B)`` -> ``fn``'s output with ``E`` rows
    """
    if K.PAIR_EMBEDDING not in data:
        return fn(data[K.EDGE_EMBEDDING])
    return fn(data[K.PAIR_EMBEDDING]).index_select(0, data[K.EDGE_PAIR])


def regular_degree(receiver: torch.Tensor, num_nodes: int) -> int | None:
    """``D`` when each of the ``num_nodes`` nodes receives exactly ``D >= 1`` edges, else ``None``.

    Eager (reads values); ``receiver`` must be sorted, as every builder returns it.
    """
    if num_nodes == 0 or receiver.numel() % num_nodes:
        return None
    degree = receiver.numel() // num_nodes
    if degree == 0 or not torch.equal(
        receiver.view(num_nodes, degree), torch.arange(num_nodes, device=receiver.device)[:, None].expand(-1, degree)
    ):
        return None
    return degree


def at_receivers(x: torch.Tensor, data) -> torch.Tensor:
    """``x[receiver]`` for node rows ``x``: a broadcast view ``(n, D, ...)`` on a regular graph.

    Returns an ``(E, ...)`` tensor on other graphs and an ``(n, D, ...)`` view on regular
    ones; both have ``E = n D`` rows once flattened, in edge order (:func:`edge_rows`).
    """
    if K.RECEIVER_SLOTS not in data:
        return x.index_select(0, data[K.EDGE_INDEX][1])
    return x.unsqueeze(1).expand(x.shape[0], data[K.RECEIVER_SLOTS].shape[0], *x.shape[1:])


def edge_rows(x: torch.Tensor, data) -> torch.Tensor:
    """Edge rows ``(E, ...)`` as the layout of :func:`at_receivers`: ``(n, D, ...)`` on a regular graph."""
    if K.RECEIVER_SLOTS not in data:
        return x
    return x.view(-1, data[K.RECEIVER_SLOTS].shape[0], *x.shape[1:])


def sum_at_receivers(m: torch.Tensor, data, num_nodes: int, mean: bool = False) -> torch.Tensor:
    """Sum (or mean) of edge rows onto their receivers, ``m`` in the layout of :func:`edge_rows`.

    On a regular graph ``m`` is ``(n, D, ...)`` and this is a sum over ``D``; otherwise
    ``m`` is ``(E, ...)`` and this is :func:`~irrepnet.scatter.segment_sum`
    (:func:`~irrepnet.scatter.segment_mean`); nodes that receive nothing get 0.
    """
    if K.RECEIVER_SLOTS not in data:
        receiver = data[K.EDGE_INDEX][1]
        return segment_mean(m, receiver, num_nodes) if mean else segment_sum(m, receiver, num_nodes)
    return m.mean(1) if mean else m.sum(1)


def softmax_at_receivers(logits: torch.Tensor, data, num_nodes: int) -> torch.Tensor:
    """Softmax of edge logits over each receiver's edges, in the layout of :func:`edge_rows`.

    On a regular graph a softmax over the ``D`` dimension with the guarantees of
    :func:`~irrepnet.scatter.segment_softmax`: the (detached) maximum is subtracted, and a
    receiver whose logits are all ``-inf`` gets weights 0, not ``NaN``.
    """
    if K.RECEIVER_SLOTS not in data:
        return segment_softmax(logits, data[K.EDGE_INDEX][1], num_nodes)
    top = logits.detach().amax(dim=1, keepdim=True)
    weights = torch.exp(logits - torch.where(torch.isfinite(top), top, torch.zeros_like(top)))
    return weights / weights.sum(dim=1, keepdim=True).clamp(min=torch.finfo(weights.dtype).tiny)


#: fixed-size systems up to this many nodes get the full graph under ``graph="auto"``
FULL_GRAPH_MAX_NODES = 32


def auto_graph_kind(kind: str, num_nodes: int | None, periodic: bool = False) -> str:
    """Resolve ``kind="auto"`` for a model whose messages vanish smoothly at its cutoff.

    Such a model (bias-free radial MLP of an embedding that is exactly 0 beyond the
    cutoff, or attention with :math:`\\log u = -\\infty` there) computes the same function
    on the full graph as on the radius graph: the extra edges contribute exact zeros (so
    ``"full"`` does not lift the cutoff: pairs beyond it stay unseen, half of them on the
    5-body system at radius 3.5). For small systems of a fixed size (at most
    :data:`FULL_GRAPH_MAX_NODES` nodes, the 12-bead polymer, the 5-body system) the full
    graph is regular with a size known in advance: the dense path of this module applies
    and a compiled model never recompiles for a new edge count. Otherwise ``"radius"``,
    and always ``"radius"`` on a ``periodic`` task (``task.extras["periodic"]``): a full
    graph has no periodic images. Other kinds are returned unchanged.
    """
    if kind != "auto":
        return kind
    if periodic:
        return "radius"
    return "full" if num_nodes is not None and num_nodes <= FULL_GRAPH_MAX_NODES else "radius"


def edge_chunks(num_edges: int, chunk: int | None, data) -> list[tuple[int, int]] | None:
    """``[(start, stop), ...]`` ranges of at most ``chunk`` edges, or ``None`` to take all edges at once.

    Layers that hold per-edge tensors much wider than their inputs (tensor-product weights,
    attention kernels: ``(E, weight_numel)``) take a large graph in chunks of edges, each
    run under :func:`torch.utils.checkpoint.checkpoint`, so that memory is set by the
    chunk and by node tensors instead of by every edge's weights at once (the backward
    recomputes each chunk). ``None`` when ``chunk`` is ``None``, the graph has at most
    ``chunk`` edges, or it is a regular ``(n, D)`` grid (small systems, already dense).
    """
    if chunk is None or num_edges <= chunk or K.RECEIVER_SLOTS in data:
        return None
    return [(a, min(a + chunk, num_edges)) for a in range(0, num_edges, chunk)]
