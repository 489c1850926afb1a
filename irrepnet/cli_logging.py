"""The CLI's one logging handler on the ``irrepnet`` logger (``-v``/``-q``).

The library logs under ``irrepnet.`` and, as a library should, configures no output:
``irrepnet/__init__.py`` gives its logger a ``NullHandler`` at most. An application
decides where messages go; for the ``irrepnet`` command that is this module: progress
at INFO to stderr by default, DEBUG with ``-v``, WARNING and above with ``-q``. Results
are printed to stdout by the commands themselves and do not pass through here, so
``-q`` never hides them.

Imports only :mod:`logging` and :mod:`sys`: it runs before torch is loaded.
"""

from __future__ import annotations

import logging
import sys

LOGGER = "irrepnet"
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


class _Formatter(logging.Formatter):
    """Progress as it is written; warnings and errors prefixed like the CLI's own errors."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"irrepnet: {record.levelname.lower()}: {text}"
        if record.levelno < logging.INFO:
            return f"[{record.name}] {text}"  # -v: which module said it
        return text


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler that looks ``sys.stderr`` up at each message.

    A handler bound to the stderr of the moment it was made would keep writing to a
    stream that pytest's capture (or a caller's redirect) has since replaced.
    """

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the getter ignores it
        pass


def configure(verbosity: int = 0) -> logging.Handler:
    """Put the CLI's handler on the ``irrepnet`` logger at the level of ``verbosity``.

    Parameters
    ----------
    verbosity : int
        -1 (``-q``: WARNING and above), 0 (default: INFO), 1 (``-v``: DEBUG); values
        beyond are clipped.

    Returns
    -------
    logging.Handler
        The handler, which replaces one that an earlier call installed (``main`` may run
        many times in one process, as in the tests), so nothing is printed twice.
    """
    logger = logging.getLogger(LOGGER)
    for h in list(logger.handlers):
        if isinstance(h, _StderrHandler):
            logger.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(LEVELS[max(-1, min(1, verbosity))])
    return handler


def quiet_below_warning() -> None:
    """Only warnings and errors from here on: for the ranks other than 0 under torchrun,
    whose progress would repeat rank 0's line for line."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
