"""What a failed unit of a benchmark leaves behind, and how a run that had failures ends.

An exception while a model's row is built or tuned, or while one of its seeds trains,
is scored, audited or timed, must not end the suite: the runner catches it, writes the
full traceback to ``error.txt`` in the folder of that unit (the seed's, or the model's
for build and tuning), marks the row ``status = "error"`` with a one-line ``reason``
and the list ``errors`` (:mod:`irrepnet.bench.schema`), and goes on. At the end it
raises :class:`RowsFailed`, after ``results.json`` and the report are written, so that
the command exits non-zero and a CI job notices. ``--resume`` re-runs exactly the units
that failed: a failed unit writes no ``seed.json`` and its row no ``row.json``.

``KeyboardInterrupt`` and ``SystemExit`` are not ``Exception`` and are never caught;
neither is :class:`~irrepnet.train.TrainingInterrupted` (Ctrl-C inside training).
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

#: phases of a unit, in the order they run (``build`` and ``tune`` belong to the model's row)
PHASES = ("build", "tune", "train", "score", "audit", "speed")
#: longest one-line message kept in ``results.json`` (the traceback file has all of it)
MAX_MESSAGE = 300


class RowsFailed(ValueError):
    """Some rows of a finished benchmark failed; ``results`` is what was written (``results.json``).

    A ``ValueError``, so that ``irrepnet bench`` prints its one line and exits non-zero
    instead of showing a traceback.
    """

    def __init__(self, message: str, results: dict[str, Any]):
        super().__init__(message)
        self.results = results


class Phase:
    """The phase a unit is in; the runner moves it along so that an error can say where it happened."""

    def __init__(self, name: str = "build"):
        self.name = name


def one_line(exc: BaseException) -> str:
    """``"RuntimeError: the message"`` on one line, at most :data:`MAX_MESSAGE` characters."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def record_failure(exc: BaseException, phase: str, folder: Path, out: Path, *, write: bool, **where) -> dict[str, Any]:
    """Write the traceback of ``exc`` to ``folder/error.txt``; returns the row's note of the failure.

    The note is ``{"phase", "error", "traceback", **where}`` (``where``: e.g. ``seed=1``),
    the traceback path relative to ``out`` like every artifact path.
    """
    path = folder / "error.txt"
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return {**where, "phase": phase, "error": one_line(exc), "traceback": str(path.relative_to(out))}


def clear_failure(folder: Path) -> None:
    """Remove a stale ``error.txt`` of a unit that has now finished."""
    (folder / "error.txt").unlink(missing_ok=True)


def reason(failures: list[dict[str, Any]]) -> str:
    """The row's one-line ``reason``: the first failure, where it happened, and how many more."""
    first = failures[0]
    where = f"seed {first['seed']}, {first['phase']}" if "seed" in first else first["phase"]
    more = f"; {len(failures) - 1} more failed unit(s)" if len(failures) > 1 else ""
    return f"{first['error']} ({where}; traceback in {first['traceback']}{more})"


def failed_rows(results: dict[str, Any]) -> tuple[list[str], int]:
    """``(["group/name", ...] of the rows in error, number of rows)`` of a results dict."""
    failed, total = [], 0
    for group in results.get("groups", []):
        for row in group.get("rows", []):
            total += 1
            if row.get("status") == "error":
                failed.append(f"{group.get('id')}/{row.get('name')}")
    return failed, total


def final_line(failed: list[str], total: int, out: Path) -> str:
    """``N of M rows failed (...); see OUT/report.md ...``: the last line of a run with failures."""
    names = ", ".join(failed[:5]) + (", ..." if len(failed) > 5 else "")
    return (
        f"{len(failed)} of {total} rows failed ({names}); see {out / 'report.md'} and the error.txt files it names; "
        "re-run only those with --resume"
    )
