"""Data-parallel training on PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

``torchrun --nproc-per-node K -m irrepnet train ...`` starts K processes with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; :func:`init_from_env` joins them in
``torch.distributed``'s process group (gloo on the CPU, nccl on CUDA, one GPU per
local rank). The :class:`~irrepnet.train.loop.Trainer` then

- draws the same permutation of the training set on every rank (same seed) and gives
  rank ``r`` the ``r``-th contiguous part of every global batch (:func:`local_part`);
- wraps the network in :class:`torch.nn.parallel.DistributedDataParallel`, which
  broadcasts rank 0's weights at the start and averages gradients in the backward
  pass. Each rank's loss is weighted by ``K n_r / n`` (``n_r`` of the batch's ``n``
  nodes are its own), so that the average of the K gradients is the gradient of the
  mean loss over the whole global batch: K ranks take the same steps as one process
  on the same global batch (tested to 1e-10 in float64);
- evaluates validation on every rank (the same numbers, so that every rank makes the
  same checkpoint and stopping decisions without messages), and writes logs and
  checkpoints from rank 0 only, atomically as in one process;
- agrees on stopping: a SIGINT/SIGTERM seen by any rank stops all of them after the
  same step, rank 0 saves ``last.pt``, and ``--resume`` (under torchrun again, with the
  same K or another) continues from it.

Input noise is drawn per rank, so a noisy run is statistically, not bitwise, the same
as one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` (``1``: not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def all_sum(self, value: float) -> float:
        """Sum of ``value`` over the ranks (``value`` itself when not distributed)."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def mean(self, value: float) -> float:
        """Mean of ``value`` over the ranks."""
        return self.all_sum(value) / self.world_size

    def share(self, local: float) -> float:
        """``K local / sum(local)``: the loss weight of a rank holding ``local`` of a global batch's units.

        DistributedDataParallel averages the K ranks' gradients; with each rank's mean loss
        weighted so, that average is the gradient of the mean loss over the whole batch.
        """
        return self.world_size * local / self.all_sum(local)

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)


def _collective_device() -> torch.device:
    """The device collectives of this process group use (nccl only moves CUDA tensors)."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def current() -> DistributedContext:
    """The context of the initialised process group, or a single process."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size())
    return DistributedContext()


def launched_by_torchrun() -> bool:
    """Whether this process is one rank of several started by ``torchrun``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device: str = "auto") -> DistributedContext:
    """Join the process group that ``torchrun`` set up (idempotent); a single process otherwise.

    ``device``: the training device option; CUDA (``auto`` with a GPU, or ``cuda``) uses
    nccl and binds each process to GPU ``LOCAL_RANK``, anything else gloo.
    """
    if not launched_by_torchrun():
        return current()
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run in one process")
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or str(device).startswith("cuda:")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return current()


def local_device(device: torch.device) -> torch.device:
    """Under torchrun on CUDA, this process's own GPU (``cuda:LOCAL_RANK``); ``device`` otherwise."""
    if device.type == "cuda" and launched_by_torchrun():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


class TrainingForward(torch.nn.Module):
    """The normalised forward of a training step as a module, for DistributedDataParallel to wrap.

    ``runner`` (a compiled copy sharing the parameters) is kept outside the module tree,
    so that DDP sees each parameter once.
    """

    def __init__(self, model: torch.nn.Module, runner=None):
        super().__init__()
        self.model = model
        self.__dict__["runner"] = runner

    def forward(self, batch):
        return self.model.forward_normalized(batch, self.runner)


def data_parallel(model: torch.nn.Module, runner, device: torch.device):
    """``model.forward_normalized`` (through ``runner`` if given) wrapped in DistributedDataParallel."""
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(TrainingForward(model, runner), device_ids=ids)


def local_part(idx: torch.Tensor, ctx: DistributedContext | None = None) -> torch.Tensor:
    """This rank's contiguous part of a global batch of sample indices (parts differ by at most one)."""
    ctx = ctx or current()
    if not ctx.active:
        return idx
    return torch.tensor_split(idx, ctx.world_size)[ctx.rank]
