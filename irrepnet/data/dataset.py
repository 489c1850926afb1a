"""A dataset of same-sized graphs stored as stacked arrays.

Both tasks produce samples whose node fields all have the same number of nodes
``N`` (12 beads, 5 charges), so the whole dataset is a handful of ``(S, N, ...)``
tensors. Indexing slices one row; :meth:`GraphArrayDataset.batch` slices many and
lays them out exactly as :func:`irrepnet.batch.collate` would, without building
``S`` small dicts first (which dominates the cost of a training step on CPU).

Shapes
------
stored: every field ``(S, N, ...)``; ``S`` samples of ``N`` nodes.
``dataset[i]``: node fields ``(N, ...)`` (a sample for :func:`~irrepnet.batch.collate`).
``dataset.batch(idx)``: node fields ``(B*N, ...)`` plus ``batch (B*N,)`` and
``num_nodes (B,)``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch

from .. import keys as K

Sample = dict[str, torch.Tensor]
Index = Sequence[int] | np.ndarray | torch.Tensor | slice


class GraphArrayDataset:
    """Map-style dataset (``len`` and ``[i]``, usable by ``torch.utils.data.DataLoader``).

    Parameters
    ----------
    fields : mapping of str to array
        node fields, each of shape ``(S, N, ...)`` with the same ``S`` and ``N``.
        Floating fields are cast to ``dtype``; integer fields become ``torch.long``.
    dtype : torch.dtype
        floating dtype of the returned tensors; float64 by default so that tiny
        targets (dmol ``dx`` has MSE ~1e-9 against good baselines) keep their digits.
    """

    def __init__(self, fields: Mapping[str, np.ndarray | torch.Tensor], *, dtype: torch.dtype = torch.float64):
        if not fields:
            raise ValueError("a dataset needs at least one field")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype such as torch.float64 or torch.float32, got {dtype}")
        self.dtype = dtype
        self._fields: dict[str, torch.Tensor] = {}
        shape0 = None
        for name, value in fields.items():
            if K.field_kind(name) != K.NODE:
                raise ValueError(f"field {name!r} is not a node field; GraphArrayDataset stores node fields only")
            if not isinstance(value, torch.Tensor):
                value = np.asarray(value)
                if not value.flags.writeable:  # e.g. np.broadcast_to views; torch wants writable memory
                    value = value.copy()
            t = torch.as_tensor(value)
            t = t.to(dtype) if t.is_floating_point() else t.long()
            if t.dim() < 2:
                raise ValueError(f"field {name!r} must have shape (S, N, ...), got {tuple(t.shape)}")
            if shape0 is None:
                shape0 = tuple(t.shape[:2])
            elif tuple(t.shape[:2]) != shape0:
                raise ValueError(
                    f"field {name!r} has (samples, nodes) = {tuple(t.shape[:2])} but the first field has {shape0}"
                )
            self._fields[name] = t.contiguous()
        self.num_samples, self.num_nodes = shape0

    # --- map-style dataset --------------------------------------------------
    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> Sample:
        if not isinstance(i, (int, np.integer)) and not (isinstance(i, torch.Tensor) and i.dim() == 0):
            raise TypeError(f"index a dataset with one integer; use .batch(indices) for many, got {type(i).__name__}")
        i = int(i)
        if not -self.num_samples <= i < self.num_samples:
            raise IndexError(f"sample index {i} out of range for a dataset of {self.num_samples} samples")
        # clone: a caller that edits a sample in place must not edit the dataset
        return {name: t[i].clone() for name, t in self._fields.items()}

    def __iter__(self) -> Iterator[Sample]:
        for i in range(self.num_samples):
            yield self[i]

    @property
    def fields(self) -> Sequence[str]:
        return tuple(self._fields)

    def arrays(self) -> dict[str, torch.Tensor]:
        """The stored ``(S, N, ...)`` tensors (read-only by convention)."""
        return dict(self._fields)

    def subset(self, indices: Index) -> GraphArrayDataset:
        """The samples ``indices`` as a dataset of the same type (a copy; attributes kept).

        Per-sample attributes (``frames`` of a trajectory dataset) are indexed too.
        """
        idx = (
            torch.arange(self.num_samples)[indices]
            if isinstance(indices, slice)
            else torch.as_tensor(np.asarray(indices)).long().reshape(-1)
        )
        if idx.numel() == 0:
            raise ValueError("a subset needs at least one sample")
        if int(idx.max()) >= self.num_samples or int(idx.min()) < -self.num_samples:
            raise IndexError(f"subset indices out of range for a dataset of {self.num_samples} samples")
        out = copy.copy(self)
        out._fields = {name: t[idx].contiguous() for name, t in self._fields.items()}
        out.num_samples = idx.numel()
        frames = getattr(self, "frames", None)
        if isinstance(frames, np.ndarray) and frames.shape[:1] == (self.num_samples,):
            out.frames = frames[idx.numpy()]
        return out

    def batch(self, indices: Index | None = None) -> Sample:
        """Samples ``indices`` (all if ``None``) collated into one batch.

        Equal to ``irrepnet.batch.collate([self[i] for i in indices])``.
        """
        if indices is None:
            idx = torch.arange(self.num_samples)
        elif isinstance(indices, slice):
            idx = torch.arange(self.num_samples)[indices]
        else:
            idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices).long()
        if idx.numel() == 0:
            raise ValueError("cannot build a batch from zero samples")
        if int(idx.max()) >= self.num_samples or int(idx.min()) < -self.num_samples:
            raise IndexError(f"batch indices out of range for a dataset of {self.num_samples} samples")
        B, N = idx.numel(), self.num_nodes
        out: Sample = {name: t[idx].reshape(B * N, *t.shape[2:]) for name, t in self._fields.items()}
        out[K.NUM_NODES] = torch.full((B,), N, dtype=torch.long)
        out[K.BATCH] = torch.arange(B).repeat_interleave(N)
        return out

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{tuple(v.shape[2:])}" for k, v in self._fields.items())
        return f"{type(self).__name__}({self.num_samples} samples x {self.num_nodes} nodes: {shapes}, {self.dtype})"
