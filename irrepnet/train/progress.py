"""Training progress for whoever watches: a tqdm bar on a terminal, log lines anywhere else.

A bar redrawn in place suits a terminal; in a file (``irrepnet train ... > log.txt 2>&1``,
a batch job, CI) it leaves one line at the start and one at the end. So when standard
error (the bar's stream) is not a terminal, :class:`ProgressLines` logs an INFO line on
the logger ``irrepnet.train.progress`` at the end of every epoch and, within an epoch
longer than :data:`LOG_INTERVAL_S`, every :data:`LOG_INTERVAL_S` seconds: epoch, step,
training loss, the last validation metrics, the time elapsed and an estimate of the time
left. The library adds no handler (see :mod:`irrepnet`): the lines reach whatever the
application configured, the CLI's stderr handler or a ``logging.basicConfig``.

Shapes
------
no tensors: the loop passes its state dict (``step``, ``epoch``, ``epoch_loss``,
``epoch_count``) and each epoch's log record (``log.jsonl`` fields).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from ..durations import duration

logger = logging.getLogger(__name__)

#: longest wait between two progress lines within one epoch, in seconds
LOG_INTERVAL_S = 30.0


def _metrics(record: dict[str, Any]) -> str:
    """The validation numbers of an epoch record (loss, MSE, MAEs), those that are set."""
    return " ".join(
        f"{k} {v:.4g}"
        for k, v in record.items()
        if k.startswith("valid_") and isinstance(v, (int, float)) and not isinstance(v, bool)
    )


class ProgressLines:
    """INFO lines at the end of each epoch and at most every ``interval_s`` within one.

    Parameters
    ----------
    total_steps, total_epochs : int
        the run's step budget and the epochs it plans (early stopping may end it sooner).
    start_step : int
        the step the run starts (or resumes) from; the time left is estimated from the
        speed of the steps taken since.
    interval_s : float
        the longest silence within an epoch.
    clock : callable
        seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        total_steps: int,
        total_epochs: int,
        start_step: int = 0,
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total_steps, self.total_epochs, self.start_step = total_steps, total_epochs, start_step
        self.interval_s, self.clock = interval_s, clock
        self.t0 = self.last = clock()
        self.valid = ""  # the last epoch's validation metrics, shown until the next

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def step(self, state: dict[str, Any]) -> None:
        now = self.clock()
        if now - self.last >= self.interval_s:
            train = state["epoch_loss"] / max(1, state["epoch_count"])
            self._line(state["epoch"] + 1, state["step"], f"train_loss {train:.4g} (epoch so far)", now)

    def epoch(self, record: dict[str, Any], state: dict[str, Any]) -> None:
        self.valid = _metrics(record)
        train = record.get("train_loss")
        self._line(record["epoch"], state["step"], f"train_loss {train:.4g}" if train is not None else "", self.clock())

    def _line(self, epoch: int, step: int, train: str, now: float) -> None:
        self.last = now
        elapsed = now - self.t0
        done = step - self.start_step
        eta = duration(elapsed / done * max(0, self.total_steps - step), compact=True) if done > 0 else "?"
        parts = [f"epoch {epoch}/{self.total_epochs}", f"step {step}/{self.total_steps}", train, self.valid]
        parts += [f"elapsed {duration(elapsed, compact=True)}", f"eta {eta}"]
        logger.info("%s", " ".join(p for p in parts if p))


class ProgressBar:
    """A tqdm bar over the epochs, with the last losses beside it."""

    def __init__(self, total_epochs: int, initial_epoch: int):
        from tqdm.auto import tqdm  # imported only here: its notebook flavour warns when ipywidgets is missing

        self.bar = tqdm(unit="epoch", leave=False, total=total_epochs, initial=initial_epoch)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()
        return False

    def step(self, state: dict[str, Any]) -> None:
        pass

    def epoch(self, record: dict[str, Any], state: dict[str, Any]) -> None:
        self.bar.update(1)
        valid = record["valid_loss"]
        self.bar.set_postfix(train=f"{record['train_loss']:.3g}", valid=f"{valid:.3g}")


class NoProgress:
    """Silence: ``progress = false`` (the benchmark's tuning trials), and ranks other than 0."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def step(self, state: dict[str, Any]) -> None:
        pass

    def epoch(self, record: dict[str, Any], state: dict[str, Any]) -> None:
        pass


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def progress_reporter(enabled: bool, *, total_epochs: int, total_steps: int, state: dict[str, Any]):
    """The bar on a terminal, :class:`ProgressLines` elsewhere, nothing when not ``enabled``."""
    if not enabled:
        return NoProgress()
    if _is_terminal(sys.stderr):
        return ProgressBar(total_epochs, state["epoch"])
    return ProgressLines(total_steps, total_epochs, start_step=state["step"])
