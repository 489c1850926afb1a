"""Constructions that look at every pair inside a graph: the full graph and exact kNN.

Both group nodes by graph with one stable sort, so nothing loops over graphs in
Python and nodes of a graph need not be contiguous in the batch.
"""

from __future__ import annotations

import torch

from ._common import empty_edges, resolve_batch, segment_ids

KNN_BUDGET = 1 << 22  # padded distance entries per vectorised kNN step (~50 MB of float32 temporaries)


def group_by_graph(batch: torch.Tensor, num_graphs: int):
    """``(perm, counts, start, slot)``: nodes sorted by graph, ascending index inside.

    ``perm[start[g] + t]`` is the ``t``-th node of graph ``g``; ``slot[i]`` is the rank
    of node ``i`` inside its graph.
    """
    perm = torch.argsort(batch, stable=True)
    counts = torch.bincount(batch, minlength=num_graphs)
    start = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(perm)
    slot[perm] = torch.arange(perm.numel(), device=batch.device) - start[batch[perm]]
    return perm, counts, start, slot


def full_graph(
    num_nodes: torch.Tensor | int,
    batch: torch.Tensor | None = None,
    *,
    loop: bool = False,
) -> torch.Tensor:
    r"""Fully connected graph inside each graph of a batch, no edges between graphs.

    Every ordered pair ``(j -> i)`` of distinct nodes of one graph is an edge
    (``i -> i`` too when ``loop``), in canonical order (receiver, then sender). Built
    by flat index arithmetic over all graphs at once, no Python loop over graphs.

    Parameters
    ----------
    num_nodes : torch.Tensor or int
        nodes per graph (graphs may be empty), or an int for one graph.
    batch : torch.Tensor, optional
        graph of each node; default: graphs are contiguous runs of ``num_nodes``.
    loop : bool
        add self loops.

    Returns
    -------
    torch.Tensor
        ``edge_index`` (row 0 sender, row 1 receiver), long, on ``num_nodes``' device.

    Shapes
    ------
    ``num_nodes (G,)``, ``batch (n,)`` -> ``(2, E)`` with :math:`E = \sum_g N_g (N_g - 1)`
    (:math:`\sum_g N_g^2` with loops)
    """
    if isinstance(num_nodes, int):
        num_nodes = torch.tensor([num_nodes], device=batch.device if batch is not None else None)
    n = int(num_nodes.sum())
    batch, g = resolve_batch(n, batch, num_nodes, num_nodes.device)
    if n == 0:
        return empty_edges(batch.device)
    perm, counts, start, slot = group_by_graph(batch, g)
    per_recv = counts[batch] - (0 if loop else 1)
    first = torch.cumsum(per_recv, 0)
    recv = segment_ids(per_recv, torch.empty(int(first[-1]), dtype=torch.long, device=batch.device))
    first -= per_recv  # edge e is the t-th of its receiver, t = e - first[recv]
    e = torch.arange(recv.numel(), device=batch.device)
    # sender = the t-th node of the graph (perm[start + t]), skipping the receiver itself
    idx = e + (start[batch] - first)[recv]
    if not loop:
        idx += e >= (first + slot)[recv]
    return torch.stack([perm[idx], recv])


def _k_smallest(d2: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the ``k`` smallest finite entries of each row, ties to the lowest column.

    ``topk`` finds the k-th smallest value in linear time per row but picks among
    equal values arbitrarily; keeping everything below it, then the first equal
    entries in column order, makes the choice deterministic.
    """
    kth = torch.topk(d2, k, dim=-1, largest=False).values[..., -1:]
    below = d2 < kth
    tied = d2 == kth
    room = k - below.sum(-1, keepdim=True)
    return (below | (tied & (torch.cumsum(tied, -1) <= room))) & torch.isfinite(d2)


def knn_pairs_torch(
    pos: torch.Tensor, k: int, batch: torch.Tensor, num_graphs: int, loop: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact kNN from padded ``(G, N_max, N_max)`` distance blocks, ties to the lower index.

    Cost is quadratic per graph and memory is padded to the largest graph, in steps
    of at most :data:`KNN_BUDGET` entries: right for molecule-sized graphs, slow for
    one graph of many thousands of nodes or a batch mixing tiny and huge graphs.

    Shapes
    ------
    ``pos (n, 3)`` -> ``recv (P,)``, ``send (P,)`` with ``P <= n k``, any order
    """
    perm, counts, start, slot = group_by_graph(batch, num_graphs)
    nmax = int(counts.max())
    padded = pos.new_zeros(num_graphs, nmax, 3)
    node = torch.full((num_graphs, nmax), -1, dtype=torch.long, device=pos.device)
    padded[batch, slot] = pos
    node[batch, slot] = torch.arange(pos.shape[0], device=pos.device)
    rows = max(1, min(nmax, KNN_BUDGET // (3 * nmax)))  # receivers per graph and step
    graphs = max(1, KNN_BUDGET // (3 * nmax * rows))
    col = torch.arange(nmax, device=pos.device)
    recv, send = [], []
    for g0 in range(0, num_graphs, graphs):
        senders = padded[g0 : g0 + graphs]  # (g, N_max, 3)
        missing = node[g0 : g0 + graphs] < 0  # padding slots
        for a0 in range(0, nmax, rows):
            d = padded[g0 : g0 + graphs, a0 : a0 + rows, None, :] - senders[:, None, :, :]
            d2 = (d * d).sum(-1)  # (g, a, N_max)
            bad = missing[:, None, :] | missing[:, a0 : a0 + rows, None]
            if not loop:
                bad = bad | (col[a0 : a0 + rows, None] == col)
            g, a, b = torch.nonzero(_k_smallest(d2.masked_fill(bad, float("inf")), min(k, nmax)), as_tuple=True)
            recv.append(node[g + g0, a + a0])
            send.append(node[g + g0, b])
    return torch.cat(recv), torch.cat(send)
