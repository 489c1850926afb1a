"""Progress of a benchmark over its units: ``[3/12] egnn seed 1: training``, then its result, time and ETA.

A unit is one (variant, model, seed) that a run trains (:func:`irrepnet.bench.shard.all_units`;
a shard counts only its own). The estimate of the time left is the mean time of the units
finished *in this process* times the units left: units kept from an earlier run
(``--resume``) count as done but not in the mean, as they took no time here. Tuning and
the baselines run between units and are not in the mean, so the first estimate of a
suite with a learning-rate grid is low by about one grid.

:class:`UnitProgress` only formats the lines; :mod:`irrepnet.bench.runner` logs them
(logger ``irrepnet.bench.runner``); :func:`forwarded_to` hands them to a callable as well.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from ..durations import duration


class UnitProgress:
    """Counts the units of a run and times them.

    Parameters
    ----------
    total : int
        the units this run has to account for (kept ones included).
    clock : callable, optional
        seconds as a float; default :func:`time.monotonic` (tests pass a fake one).
    """

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic):
        self.total = int(total)
        self.done = 0  # units accounted for: finished, failed or kept
        self.times: list[float] = []  # seconds of the units run (finished or failed) here
        self._clock = clock
        self._started: float | None = None
        self._label = ""

    def _position(self) -> str:
        return f"[{self.done + 1}/{self.total}]"

    def start(self, label: str, what: str = "training") -> str:
        """Begin the next unit (``label`` such as ``"egnn seed 1"``); returns its start line."""
        self._label, self._started = label, self._clock()
        return f"{self._position()} {label}: {what}"

    def finish(self, result: str) -> str:
        """End the unit begun last (finished or failed alike); returns ``[k/N] label: result; took T; ETA ...``."""
        elapsed = self._clock() - (self._started if self._started is not None else self._clock())
        line = f"{self._position()} {self._label}: {result}; took {duration(elapsed)}"
        self.times.append(elapsed)
        self.done += 1
        self._started = None
        return f"{line}; {self.eta()}"

    def skip(self, label: str, count: int = 1, why: str = "finished earlier, kept") -> str:
        """Account for ``count`` units not run here (kept from an earlier run, or their row skipped or failed
        before them); returns the line that says so. They do not enter the mean time."""
        first = self.done + 1
        self.done += count
        where = f"[{first}/{self.total}]" if count == 1 else f"[{first}-{self.done}/{self.total}]"
        return f"{where} {label}: {why}"

    def eta(self) -> str:
        """``ETA 1 min 40 s (9 units left, 11.1 s each)``, ``all N units done`` or ``ETA unknown``."""
        left = max(self.total - self.done, 0)
        if not left:
            return f"all {self.total} unit{'s' if self.total != 1 else ''} done"
        if not self.times:
            return f"ETA unknown ({left} units left)"
        mean = sum(self.times) / len(self.times)
        return f"ETA {duration(mean * left)} ({left} unit{'s' if left != 1 else ''} left, {duration(mean)} each)"


class _Forward(logging.Handler):
    """Hands each message of the bench loggers to a callable, as ``run_suite(log=...)`` asks."""

    def __init__(self, fn: Callable[[str], None]):
        super().__init__(logging.INFO)
        self.fn = fn

    def emit(self, record: logging.LogRecord) -> None:
        self.fn(record.getMessage())


@contextlib.contextmanager
def forwarded_to(fn: Callable[[str], None] | None, name: str = "irrepnet.bench"):
    """While inside, the INFO and higher messages of logger ``name`` (and its children) also go to ``fn``.

    For callers that want the lines as strings (a notebook cell, a test, a GUI) without
    configuring :mod:`logging`; ``None`` changes nothing. The logger is opened to INFO
    for the time being if it was quieter, or ``fn`` would never hear of progress.
    """
    if fn is None:
        yield
        return
    logger = logging.getLogger(name)
    handler, level = _Forward(fn), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
