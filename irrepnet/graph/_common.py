"""Shared pieces of graph construction: input checks, backends, canonical edge order.

Every builder funnels its pairs through :func:`canonical_edges`, so all backends
return the same tensor for the same edge set, and through :func:`sq_dist`, so the
``|x_i - x_j| < r`` test is one arithmetic expression whatever found the candidate.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from ..batch import batch_from_counts
from ..optional import MissingDependencyError

RADIUS_BACKENDS = ("auto", "torch", "torch_cluster", "vesin")
KNN_BACKENDS = ("auto", "torch", "torch_cluster")

_MODULES = {"torch_cluster": "torch_cluster", "vesin": "vesin_torch"}
_INSTALL = {
    "torch_cluster": "`pip install --no-build-isolation torch-cluster` (compiles against the installed torch) "
    "or `pip install 'irrepnet[pyg]'`",
    "vesin": "`pip install vesin-torch` or `pip install 'irrepnet[vesin]'`",
}

# Candidate searches of the compiled backends use a slightly larger radius; the
# exact test is then redone with sq_dist, so a pair at the cutoff is decided by
# the same float expression whichever backend proposed it.
SEARCH_MARGIN = 1e-4


@functools.cache  # a failed import is slow to retry on every call
def backend_module(name: str):
    """The module behind an optional backend, or ``None`` when it does not import."""
    try:
        return importlib.import_module(_MODULES[name])
    except (ImportError, OSError):  # OSError: compiled against another torch
        return None


def available(name: str) -> bool:
    return name == "torch" or backend_module(name) is not None


def require(name: str, choices: tuple[str, ...], what: str) -> str:
    """Check a backend name is known and installed; return it."""
    if name not in choices:
        raise ValueError(f"unknown {what} backend {name!r}; choose one of {', '.join(choices)}")
    if name not in ("auto", "torch") and backend_module(name) is None:
        raise MissingDependencyError(
            f"{what} backend {name!r} was requested but {_MODULES[name]} is not importable; "
            f"install it with {_INSTALL[name]}",
            package=_MODULES[name].replace("_", "-"),
            install=_INSTALL[name].split("`")[1],  # the first command of the hint
        )
    return name


def check_pos(pos: torch.Tensor) -> None:
    if not isinstance(pos, torch.Tensor):
        raise TypeError(f"pos must be a torch.Tensor of shape (n, 3), got {type(pos).__name__}")
    if pos.dim() != 2 or pos.shape[1] != 3:
        raise ValueError(
            f"pos must have shape (n, 3), got {tuple(pos.shape)}; pad 2-D coordinates with a zero z column"
        )
    if not pos.is_floating_point():
        raise TypeError(f"pos must be a floating-point tensor, got {pos.dtype}")
    finite = torch.isfinite(pos)
    if not bool(finite.all()):
        bad_nodes = int((~finite.all(dim=1)).sum())
        raise ValueError(
            f"pos contains {int((~finite).sum())} NaN/Inf values in {bad_nodes} of {pos.shape[0]} nodes; "
            "clean the positions before building a graph"
        )


def check_radius(r: float) -> float:
    r = float(r)
    if not (math.isfinite(r) and r > 0):
        raise ValueError(f"the cutoff radius r must be a finite number > 0, got {r}")
    return r


def resolve_batch(
    n: int, batch: torch.Tensor | None, num_nodes: torch.Tensor | int | None, device: torch.device
) -> tuple[torch.Tensor, int]:
    """Return ``(batch, G)`` for ``n`` nodes, checking ``batch`` and ``num_nodes`` agree.

    Neither given: one graph. Only ``num_nodes``: graphs are contiguous runs of nodes
    (the :func:`irrepnet.batch.collate` layout). Only ``batch``: ``G = batch.max() + 1``.
    """
    if isinstance(num_nodes, int):
        num_nodes = torch.tensor([num_nodes], dtype=torch.long, device=device)
    if num_nodes is not None:
        if num_nodes.dim() != 1 or num_nodes.dtype != torch.long:
            raise ValueError(f"num_nodes must be a 1-D long tensor, got {num_nodes.dtype} {tuple(num_nodes.shape)}")
        if num_nodes.numel() and int(num_nodes.min()) < 0:
            raise ValueError("num_nodes must be >= 0 for every graph")
        if int(num_nodes.sum()) != n:
            raise ValueError(f"num_nodes sums to {int(num_nodes.sum())} but pos has {n} nodes")
    if batch is None:
        if num_nodes is None:
            return torch.zeros(n, dtype=torch.long, device=device), 1
        return batch_from_counts(num_nodes.to(device)), num_nodes.numel()
    if batch.dim() != 1 or batch.dtype != torch.long:
        raise ValueError(f"batch must be a 1-D long tensor, got {batch.dtype} {tuple(batch.shape)}")
    if batch.shape[0] != n:
        raise ValueError(f"batch has {batch.shape[0]} entries but pos has {n} nodes")
    if n and int(batch.min()) < 0:
        raise ValueError(f"batch contains negative graph ids ({int(batch.min())})")
    if num_nodes is None:
        return batch, (int(batch.max()) + 1 if n else 0)
    g = num_nodes.numel()
    if n and int(batch.max()) >= g:
        raise ValueError(f"batch contains graph id {int(batch.max())} but num_nodes has only {g} graphs")
    if not torch.equal(torch.bincount(batch, minlength=g).cpu(), num_nodes.cpu()):
        raise ValueError("batch and num_nodes disagree: bincount(batch) != num_nodes")
    return batch, g


def sq_dist(pos: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """Squared distances ``|pos[i] - pos[j]|^2``, in the dtype of ``pos`` (at least float32).

    The single definition of the cutoff arithmetic: every radius backend decides
    ``sq_dist < r**2`` with it, so all agree on pairs at distance ``r`` up to rounding.
    """
    d = pos.index_select(0, i) - pos.index_select(0, j)
    d = d * d
    return d[:, 0] + d[:, 1] + d[:, 2]  # faster than .sum(1) over a dim of 3


def as_float(pos: torch.Tensor) -> torch.Tensor:
    """Half precision cannot resolve a cutoff reliably; compute in float32 at least."""
    return pos.float() if pos.dtype in (torch.float16, torch.bfloat16) else pos


def sort_(keys: torch.Tensor) -> torch.Tensor:
    """Sort a contiguous 1-D int64 tensor ascending (in place on CPU); return the result.

    On CPU numpy's in-place sort is used: it dispatches to vectorised (x86-simd-sort)
    kernels and is several times faster than ``torch.sort`` on the millions of packed
    edge keys of a large radius graph. The result is the same.
    """
    if keys.device.type == "cpu":
        keys.numpy().sort()
        return keys
    return torch.sort(keys).values


def canonical_edges(recv: torch.Tensor, send: torch.Tensor, n: int, symmetric: bool = False) -> torch.Tensor:
    """Edges ``send -> recv`` as ``edge_index``, sorted by receiver, then sender.

    With ``symmetric=True`` each unordered pair is given once and both directions are
    returned. Pairs are packed as ``recv * n + send`` int64 keys (exact for
    ``n < 3e9``) so that sorting values alone orders them.

    Shapes
    ------
    ``recv, send (P,)`` -> ``(2, P)``, or ``(2, 2P)`` when ``symmetric``
    """
    p = recv.numel()
    keys = torch.empty(2 * p if symmetric else p, dtype=torch.long, device=recv.device)
    torch.mul(recv, n, out=keys[:p]).add_(send)
    degree = torch.bincount(recv, minlength=n)
    if symmetric:
        torch.mul(send, n, out=keys[p:]).add_(recv)
        degree += torch.bincount(send, minlength=n)
    keys = sort_(keys)
    # receivers of sorted keys are runs of equal ids: rebuild them from the degrees
    # instead of dividing every key by n
    out = torch.empty(2, keys.numel(), dtype=torch.long, device=recv.device)
    segment_ids(degree, out=out[1])
    torch.sub(keys, torch.mul(out[1], n, out=out[0]), out=out[0])
    return out


def segment_ids(counts: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Write ``i`` repeated ``counts[i]`` times into ``out`` (``repeat_interleave(arange)``).

    Marks where each segment ends and takes a running sum: about 3x faster than
    ``repeat_interleave`` on CPU for millions of entries. ``out`` must have
    ``counts.sum()`` elements.
    """
    out.zero_()
    ends = torch.cumsum(counts, 0)[:-1]
    ends = ends[ends < out.numel()]  # empty trailing segments end at the very end
    out.index_add_(0, ends, torch.ones_like(ends))  # empty segments: several ends, several +1
    return torch.cumsum(out, 0, out=out)


def empty_edges(device: torch.device) -> torch.Tensor:
    return torch.zeros(2, 0, dtype=torch.long, device=device)


T = TypeVar("T")
_threads_lock = threading.Lock()
_threads_users = 0
_threads_saved = 1


@contextlib.contextmanager
def _one_intra_op_thread():
    """Run torch CPU ops on one intra-op thread inside the block (nesting/thread safe)."""
    global _threads_users, _threads_saved
    with _threads_lock:
        if _threads_users == 0:
            _threads_saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_users += 1
    try:
        yield _threads_saved
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_saved)


def map_chunks(work: Callable[..., T], ranges: Sequence[tuple], device: torch.device) -> list[T]:
    """``[work(*r) for r in ranges]``, spread over the CPU cores as independent tasks.

    Each chunk is ~25 small tensor ops. Left to torch's intra-op threads, every op is
    a parallel region that waits for its slowest thread: on a machine where other
    processes hold the cores that wait is a scheduler slice per op, and a 200k-point
    radius graph measured 12-40 s instead of 0.5 s. Running the chunks as separate
    tasks on single-threaded ops keeps both cores busy without that coupling. Torch's
    thread count is restored afterwards.
    """
    if device.type != "cpu" or len(ranges) < 2 or torch.get_num_threads() < 2:
        return [work(*r) for r in ranges]
    with _one_intra_op_thread() as cores:
        with ThreadPoolExecutor(cores) as pool:
            return list(pool.map(lambda r: work(*r), ranges))
