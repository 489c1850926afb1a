"""From a batch dict to a batch dict with edges: ``edge_index``, ``edge_vec``, ``edge_len``."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .. import keys as K
from ..batch import Batch, ensure_batch
from ._api import knn_graph, radius_graph
from ._dense import full_graph
from ._periodic import cell_offsets, is_periodic, periodic_radius_graph

KINDS = ("full", "radius", "knn")


def edge_vectors(data: Mapping[str, torch.Tensor]) -> Batch:
    r"""Return a new batch with ``edge_vec = pos[i] - pos[j]`` and ``edge_len = |edge_vec|``.

    Differentiable in ``pos`` (forces, the equivariance audit). The gradient of
    ``edge_len`` at a zero-length edge (coincident nodes) is 0, not ``NaN``.

    Periodic graphs: when the batch holds ``edge_cell_shift`` and ``cell``, the sender
    is the image of ``j`` shifted by whole cell vectors,

    .. math::  \mathbf{r}_{ij} = x_i - (x_j + S_{ij}\, C_g),

    differentiable in ``pos`` and in ``cell`` (stress is a derivative with respect to
    the cell); models that read ``edge_vec`` need not know about periodicity.

    Shapes
    ------
    ``pos (n, 3)``, ``edge_index (2, E)``, optional ``edge_cell_shift (E, 3)``,
    ``cell (G, 3, 3)``, ``batch (n,)`` -> adds ``edge_vec (E, 3)``, ``edge_len (E,)``
    """
    for name in (K.POS, K.EDGE_INDEX):
        if name not in data:
            raise KeyError(f"edge_vectors needs {name!r}; fields present: {sorted(data)}")
    pos, edge_index = data[K.POS], data[K.EDGE_INDEX]
    if K.EDGE_CELL_SHIFT in data and K.CELL not in data:
        raise KeyError(f"edge_vectors: the batch has {K.EDGE_CELL_SHIFT!r} but no {K.CELL!r} to shift by; add the cell")
    if K.EDGE_CELL_SHIFT in data:
        cell, shift, recv = data[K.CELL], data[K.EDGE_CELL_SHIFT], edge_index[1]
        graph = data[K.BATCH].index_select(0, recv) if K.BATCH in data else torch.zeros_like(recv)
        sender = pos.index_select(0, edge_index[0]) + cell_offsets(shift.to(pos.dtype), cell.to(pos.dtype), graph)
        vec = pos.index_select(0, recv) - sender
    else:
        vec = pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0])
    out = dict(data)
    out[K.EDGE_VEC] = vec
    out[K.EDGE_LEN] = torch.linalg.vector_norm(vec, dim=-1)
    return out


def edge_pairs(
    edge_index: torch.Tensor, num_nodes: int, shift: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(edge_pair, pair_edge)`` of a symmetric graph, ``None`` when some edge has no reverse.

    In a graph where ``j -> i`` is an edge exactly when ``i -> j`` is, each unordered
    pair appears twice, and anything that depends on the distance alone (radial
    embeddings, the radial MLP of a tensor-product convolution) needs computing for one
    of the two only: ``f(pair_edge)`` has a row per pair and ``f(pair_edge)[edge_pair]``
    a row per edge, equal to ``f`` of every edge. The first edge of a pair (in
    ``edge_index`` order) represents it. Self loops are pairs of one edge.

    Periodic graphs (``shift``, the ``edge_cell_shift``): ``j -> i`` with shift ``S``
    pairs with ``i -> j`` with ``-S`` (the same distance); a self image ``i -> i`` with
    ``S`` pairs with ``i -> i`` with ``-S``. ``None`` too when the packed keys could
    overflow int64 (shifts spanning more than ``~9e18 / n^2`` values).

    Shapes
    ------
    ``edge_index (2, E)``, optional ``shift (E, 3)`` -> ``edge_pair (E,)`` with values in ``[0, P)``, ``pair_edge (P,)``
    """
    send, recv = edge_index[0], edge_index[1]
    key, reverse_key = recv * num_nodes + send, send * num_nodes + recv
    if shift is not None and shift.numel():
        s = shift.long()
        reach = int(s.abs().max())
        width = 2 * reach + 1
        if (num_nodes * num_nodes + 1) * width**3 >= 2**62:
            return None
        code = ((s[:, 0] + reach) * width + (s[:, 1] + reach)) * width + (s[:, 2] + reach)
        # the reverse edge has shift -S: digits reach - S_k
        reverse_code = ((reach - s[:, 0]) * width + (reach - s[:, 1])) * width + (reach - s[:, 2])
        key, reverse_key = key * width**3 + code, reverse_key * width**3 + reverse_code
    order = torch.argsort(key)
    position = torch.searchsorted(key[order], reverse_key).clamp_(max=max(key.numel() - 1, 0))
    reverse = order[position]
    if key.numel() and not torch.equal(key[reverse], reverse_key):
        return None
    edges = torch.arange(key.numel(), device=key.device)
    first = torch.minimum(edges, reverse)
    pair_edge = torch.nonzero(edges == first).squeeze(1)  # ascending, so searchsorted finds each pair
    return torch.searchsorted(pair_edge, first), pair_edge


def build_graph(
    data: Mapping[str, torch.Tensor],
    kind: str = "radius",
    *,
    r: float | None = None,
    k: int | None = None,
    backend: str = "auto",
    loop: bool = False,
    max_num_neighbors: int | None = None,
) -> Batch:
    """Build edges over a batch and return a new batch with edge fields added.

    Parameters
    ----------
    data : dict
        a batch (or one sample: ``batch``/``num_nodes`` default to one graph).
    kind : str
        ``"full"`` (:func:`full_graph`), ``"radius"`` (:func:`radius_graph`, needs ``r``)
        or ``"knn"`` (:func:`knn_graph`, needs ``k``).
    r, k, backend, loop, max_num_neighbors
        passed on to the builder; a parameter the kind does not use is an error
        rather than silently ignored.

    Returns
    -------
    dict
        ``data``'s fields (existing edge fields replaced) plus ``edge_index``,
        ``edge_vec``, ``edge_len``, and ``batch``/``num_nodes`` if they were absent;
        on a periodic batch (``cell``, ``pbc``) also ``edge_cell_shift``, and ``edge_vec``
        includes it.

    Shapes
    ------
    ``pos (n, 3)`` -> adds ``edge_index (2, E)``, ``edge_vec (E, 3)``, ``edge_len (E,)``
    """
    out, edge_index = build_edge_index(
        data, kind, r=r, k=k, backend=backend, loop=loop, max_num_neighbors=max_num_neighbors
    )
    out[K.EDGE_INDEX] = edge_index
    return edge_vectors(out)


def build_edge_index(
    data: Mapping[str, torch.Tensor],
    kind: str = "radius",
    *,
    r: float | None = None,
    k: int | None = None,
    backend: str = "auto",
    loop: bool = False,
    max_num_neighbors: int | None = None,
) -> tuple[Batch, torch.Tensor]:
    """The topology half of :func:`build_graph`: ``(data with batch/num_nodes, edge_index)``.

    Its output size depends on the data (how many pairs are neighbours), so it runs
    eagerly, before a compiled model (see :mod:`irrepnet.compile`); the geometry,
    :func:`edge_vectors`, is differentiable and compiles. Arguments as in :func:`build_graph`.
    A batch with periodic graphs (``cell`` and ``pbc``, some ``pbc`` true) gets
    :func:`~irrepnet.graph.periodic_radius_graph` and the returned batch also holds
    ``edge_cell_shift``; full and kNN graphs of periodic batches are refused.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown graph kind {kind!r}; choose one of {', '.join(KINDS)}")
    required, optional = {"full": ((), ()), "radius": (("r",), ("max_num_neighbors",)), "knn": (("k",), ())}[kind]
    for name, value in {"r": r, "k": k, "max_num_neighbors": max_num_neighbors}.items():
        if value is None and name in required:
            raise ValueError(f"build_graph(kind={kind!r}) needs {name}=...")
        if value is not None and name not in required + optional:
            raise ValueError(f"build_graph(kind={kind!r}) does not use {name}; remove it")
    if kind == "full" and backend != "auto":
        raise ValueError("build_graph(kind='full') has no backends; leave backend='auto'")
    out = ensure_batch(data)
    pos, batch, num_nodes = out[K.POS], out[K.BATCH], out[K.NUM_NODES]
    out.pop(K.EDGE_CELL_SHIFT, None)  # of an earlier graph
    if is_periodic(out):
        if kind != "radius":
            raise ValueError(
                f"a {kind} graph has no periodic images; the batch holds periodic cells (pbc): use a radius graph"
            )
        assert r is not None  # checked above: radius graphs require r
        edge_index, out[K.EDGE_CELL_SHIFT] = periodic_radius_graph(
            pos, r, out[K.CELL], out[K.PBC], batch, num_nodes, backend, max_num_neighbors, loop
        )
        return out, edge_index
    if kind == "full":
        edge_index = full_graph(num_nodes, batch, loop=loop)
    elif kind == "radius":
        assert r is not None  # checked above: radius graphs require r
        edge_index = radius_graph(pos, r, batch, num_nodes, backend, max_num_neighbors, loop)
    else:
        assert k is not None  # checked above: kNN graphs require k
        edge_index = knn_graph(pos, k, batch, num_nodes, backend, loop)
    return out, edge_index.to(pos.device)
