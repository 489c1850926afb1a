"""Batching graphs into one dict of tensors, and checking a batch is well formed.

A *sample* is one graph: a dict whose node fields have a first dimension equal to
its number of nodes (and graph fields a first dimension of 1). :func:`collate`
concatenates samples into a batch and adds :data:`~irrepnet.keys.BATCH` and
:data:`~irrepnet.keys.NUM_NODES`, the layout used by every layer (as in PyG).

Shapes/irreps
-------------
sample: ``pos (N_g, 3)``, other node fields ``(N_g, ...)``, optional
``edge_index (2, E_g)`` with indices local to the graph.
batch: ``pos (n, 3)`` with ``n = sum N_g``, ``batch (n,)``, ``num_nodes (G,)``,
``edge_index (2, E)`` with global indices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from . import keys as K

Batch = dict[str, torch.Tensor]


def _num_nodes_of(sample: Mapping[str, torch.Tensor], i: int) -> int:
    if K.POS not in sample:
        raise KeyError(f"sample {i} has no {K.POS!r} field; every sample needs positions of shape (N, 3)")
    pos = sample[K.POS]
    if pos.dim() != 2 or pos.shape[1] != 3:
        raise ValueError(f"sample {i}: {K.POS!r} must have shape (N, 3), got {tuple(pos.shape)}")
    return pos.shape[0]


def collate(samples: Sequence[Mapping[str, torch.Tensor]]) -> Batch:
    """Concatenate graphs into one batch.

    Parameters
    ----------
    samples : sequence of dict
        one dict per graph, all with the same keys.

    Returns
    -------
    dict
        node fields concatenated along dim 0, graph fields stacked, ``edge_index``
        shifted by each graph's node offset, plus ``batch`` and ``num_nodes``.
    """
    if len(samples) == 0:
        raise ValueError("collate needs at least one sample")
    names = set(samples[0].keys())
    for i, s in enumerate(samples):
        if set(s.keys()) != names:
            raise KeyError(
                f"sample {i} has fields {sorted(s.keys())} but sample 0 has {sorted(names)}; all samples must match"
            )
    counts = [_num_nodes_of(s, i) for i, s in enumerate(samples)]
    device = samples[0][K.POS].device
    num_nodes = torch.tensor(counts, dtype=torch.long, device=device)
    out: Batch = {}
    for name in sorted(names):
        if name in (K.BATCH, K.NUM_NODES):
            continue  # recomputed below
        kind = K.field_kind(name)
        if name == K.EDGE_INDEX:
            offsets = torch.cumsum(num_nodes, 0) - num_nodes
            out[name] = torch.cat([s[name] + offsets[i] for i, s in enumerate(samples)], dim=1)
        elif kind == K.NODE:
            for i, s in enumerate(samples):
                if s[name].shape[0] != counts[i]:
                    raise ValueError(
                        f"sample {i}: node field {name!r} has {s[name].shape[0]} rows but {K.POS!r} has {counts[i]}"
                    )
            out[name] = torch.cat([s[name] for s in samples], dim=0)
        else:
            out[name] = torch.cat([s[name] for s in samples], dim=0)
    out[K.NUM_NODES] = num_nodes
    out[K.BATCH] = batch_from_counts(num_nodes)
    return out


def num_graphs(data: Mapping[str, torch.Tensor]) -> int:
    """Number of graphs in a batch (an unbatched sample counts as one)."""
    if K.NUM_NODES in data:
        return data[K.NUM_NODES].numel()
    if K.BATCH in data and data[K.BATCH].numel() > 0:
        return int(data[K.BATCH].max()) + 1
    return 1


def batch_from_counts(num_nodes: torch.Tensor) -> torch.Tensor:
    """The ``batch`` vector of graphs laid out as contiguous runs of ``num_nodes`` nodes.

    Shapes
    ------
    ``num_nodes (G,)`` -> ``(sum num_nodes,)`` with values in ``[0, G)``
    """
    return torch.repeat_interleave(torch.arange(num_nodes.numel(), device=num_nodes.device), num_nodes)


def ensure_batch(data: Mapping[str, torch.Tensor]) -> Batch:
    """Return ``data`` with ``batch`` and ``num_nodes`` present (one graph if both are absent)."""
    out = dict(data)
    pos = out[K.POS]
    if K.BATCH not in out and K.NUM_NODES in out:  # graphs are contiguous runs of num_nodes
        out[K.BATCH] = batch_from_counts(out[K.NUM_NODES].to(pos.device))
    if K.BATCH not in out:
        out[K.BATCH] = torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
    if K.NUM_NODES not in out:
        g = num_graphs(out)
        out[K.NUM_NODES] = torch.bincount(out[K.BATCH], minlength=g)
    return out


def to(data: Mapping[str, torch.Tensor], device=None, dtype=None) -> Batch:
    """Move a batch; ``dtype`` applies to floating-point fields only."""
    out = {}
    for k, v in data.items():
        if dtype is not None and v.is_floating_point():
            out[k] = v.to(device=device, dtype=dtype)
        else:
            out[k] = v.to(device=device)
    return out


def check_batch(data: Mapping[str, torch.Tensor]) -> None:
    """Raise a clear error if a batch is malformed.

    Checks: positions present with shape ``(n, 3)`` and finite; ``batch`` a long
    vector of length ``n`` agreeing with ``num_nodes``; ``edge_index`` of shape
    ``(2, E)`` with indices in range; every floating node field finite; periodic
    fields, when present, one per graph: ``cell`` float ``(G, 3, 3)``, ``pbc`` bool ``(G, 3)``.
    """
    if K.POS not in data:
        raise KeyError(f"batch has no {K.POS!r} field (positions of shape (n, 3)); fields present: {sorted(data)}")
    pos = data[K.POS]
    if pos.dim() != 2 or pos.shape[1] != 3:
        raise ValueError(
            f"{K.POS!r} must have shape (n_nodes, 3), got {tuple(pos.shape)}; pad 2-D coordinates with a zero z column"
        )
    n = pos.shape[0]
    for name, v in data.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).sum())
            raise ValueError(f"field {name!r} contains {bad} NaN or Inf values; clean the input before passing it in")
    if K.BATCH in data:
        b = data[K.BATCH]
        if b.dtype != torch.long or b.shape != (n,):
            raise ValueError(f"{K.BATCH!r} must be a long tensor of shape ({n},), got {b.dtype} {tuple(b.shape)}")
        if K.NUM_NODES in data:
            nn_ = data[K.NUM_NODES]
            if int(nn_.sum()) != n:
                raise ValueError(f"{K.NUM_NODES!r} sums to {int(nn_.sum())} but there are {n} nodes")
    g = num_graphs(data)
    if K.CELL in data and (not data[K.CELL].is_floating_point() or data[K.CELL].shape != (g, 3, 3)):
        c = data[K.CELL]
        raise ValueError(
            f"{K.CELL!r} must be a float tensor of shape ({g}, 3, 3), lattice vectors as rows (a sample's is "
            f"(1, 3, 3)), got {c.dtype} {tuple(c.shape)}"
        )
    if K.PBC in data and (data[K.PBC].dtype != torch.bool or data[K.PBC].shape != (g, 3)):
        p = data[K.PBC]
        raise ValueError(f"{K.PBC!r} must be a bool tensor of shape ({g}, 3), got {p.dtype} {tuple(p.shape)}")
    if K.EDGE_INDEX in data:
        ei = data[K.EDGE_INDEX]
        if ei.dim() != 2 or ei.shape[0] != 2 or ei.dtype != torch.long:
            raise ValueError(
                f"{K.EDGE_INDEX!r} must be a long tensor of shape (2, E), got {ei.dtype} {tuple(ei.shape)}"
            )
        if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
            raise ValueError(f"{K.EDGE_INDEX!r} has indices outside [0, {n}); was it built for another batch?")
