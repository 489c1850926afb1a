"""TensorBoard scalars of a training run (``TrainConfig.tensorboard = "DIR"``).

PyTorch's own :class:`torch.utils.tensorboard.SummaryWriter` writes the event files; it
needs the ``tensorboard`` package (``pip install tensorboard``, or the extra
``irrepnet[tensorboard]``), which irrepnet does not otherwise require. Watch a run with
``tensorboard --logdir DIR``.

Scalars, all against the optimiser step (the number of steps taken):

- every step: ``train/loss`` (the batch's normalised loss), ``train/lr``,
  ``train/step_time_s`` (forward, backward and optimiser step, synchronised on a GPU);
- every epoch: ``train/epoch_loss`` (the epoch's mean), ``epoch/time_s``, and each
  validation field of the epoch's ``log.jsonl`` record as ``valid/NAME``
  (``valid/loss``, ``valid/mse``, ``valid/energy_mae``...). With ``start_at_baseline``
  the untrained model's validation is logged at step 0.

A resumed run purges the events at and after its resume step, so a run that crashed
after its last checkpoint shows no doubled steps.

Shapes
------
no tensors: Python floats from the loop's state and log records.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..optional import require

logger = logging.getLogger(__name__)


def summary_writer_class(log_dir):
    """:class:`torch.utils.tensorboard.SummaryWriter`; without the tensorboard package a one-line
    :class:`~irrepnet.optional.MissingDependencyError` that ends in ``pip install tensorboard``."""
    module = require("torch.utils.tensorboard", feature=f"tensorboard = {str(log_dir)!r}", package="tensorboard")
    return module.SummaryWriter


class TensorBoardLog:
    """Scalars of one run in the TensorBoard folder ``log_dir``.

    Parameters
    ----------
    log_dir : path or None
        created if missing; runs that share it appear as one run in TensorBoard, so give
        each run its own folder. ``None``: log nothing (the loop calls it all the same).
    purge_step : int, optional
        hide earlier events at and after this step (a resumed run's start).
    """

    def __init__(self, log_dir, purge_step: int | None = None):
        self.log_dir = self.writer = None
        if log_dir is None:
            return
        writer = summary_writer_class(log_dir)
        self.log_dir = Path(log_dir)
        self.writer = writer(log_dir=str(self.log_dir), purge_step=purge_step)
        logger.info("TensorBoard scalars in %s (tensorboard --logdir %s)", self.log_dir, self.log_dir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.writer is not None:
            self.writer.close()  # flushes: an interrupted run keeps its scalars up to the interruption
        return False

    def step(self, step: int, loss: float, lr: float, step_time_s: float) -> None:
        if self.writer is None:
            return
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)
        self.writer.add_scalar("train/step_time_s", step_time_s, step)

    def epoch(self, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = record["step"]
        if record.get("train_loss") is not None:
            self.writer.add_scalar("train/epoch_loss", record["train_loss"], step)
        if record.get("epoch_s") is not None and record["epoch"] > 0:
            self.writer.add_scalar("epoch/time_s", record["epoch_s"], step)
        for key, value in record.items():
            if key.startswith("valid_") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar("valid/" + key[len("valid_") :], value, step)
