"""Run-time helpers of the training loop: dtypes and devices of batches, the validation
hold-out and the stop signals (SIGINT/SIGTERM -> checkpoint after the step). The progress
bar and lines are in :mod:`irrepnet.train.progress`.

Shapes/irreps
-------------
batches are dicts of tensors; :func:`move` keeps each field's shape and irreps.
"""

from __future__ import annotations

import logging
import signal
import threading

import torch

logger = logging.getLogger(__name__)


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype named ``float32`` or ``float64``."""
    return {"float32": torch.float32, "float64": torch.float64}[name]


def move(batch: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Batch on ``device`` with floating fields in ``dtype`` (targets too: the loss is taken in ``dtype``)."""
    return {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in batch.items()}


def split_validation(train_set, fraction: float):
    """``(train, valid)``: the last ``fraction`` of ``train_set`` (in its order) is held out.

    Trajectory datasets are in frame order, so this is a chronological hold-out that
    keeps validation frames after every training frame, as the test split is.
    """
    n = len(train_set)
    n_valid = max(1, int(round(fraction * n)))
    if n - n_valid < 1:
        raise ValueError(f"a training set of {n} samples is too small to hold out a validation split")
    return train_set.subset(range(n - n_valid)), train_set.subset(range(n - n_valid, n))


class _StopRequests:
    """SIGINT/SIGTERM handlers that ask the loop to stop after the current step.

    A second Ctrl-C raises ``KeyboardInterrupt`` at once, for a loop stuck elsewhere.
    Handlers are only installed from the main thread (Python's rule) and restored after.
    """

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        # a warning, so that it shows at the CLI's default level and under -q
        logger.warning(
            "%s received; saving a checkpoint after this step (Ctrl-C again to abort at once)",
            signal.Signals(signum).name,
        )

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False
