"""Reading a bench run back for plots: its usable rows and the files they name (logs, predictions).

Artifact paths in ``results.json`` are relative to the folder of ``results.json``
(:mod:`irrepnet.bench.schema`). A file that was never written, or was cut short by a
killed run, reads as missing (``None`` or skipped lines), never as an error: every plot
is optional. :mod:`irrepnet.bench.plots` and :mod:`irrepnet.bench.plots_energy` both
read through these; this module imports neither.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

PathLike = Any


def ok_rows(group: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``group`` with status ``ok`` (and of ``kind`` if given), in file order.

    Skipped and failed rows (``status`` ``"skipped"`` / ``"error"``) have nothing to draw.
    """
    return [r for r in group.get("rows", []) if r.get("status") == "ok" and (kind is None or r.get("kind") == kind)]


def artifact_path(results_dir: PathLike, row: dict[str, Any], key: str) -> Path | None:
    """The existing file named by ``row["artifacts"][key]``, or ``None`` (not written, or gone)."""
    rel = (row.get("artifacts") or {}).get(key)
    if not rel:
        return None
    path = Path(results_dir) / rel
    return path if path.is_file() else None


def read_log(path: Path) -> list[dict[str, Any]]:
    """Records of a ``log.jsonl``; blank or truncated lines (a run killed mid-write) are skipped."""
    records = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
    return records


def load_predictions(results_dir: PathLike, row: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays of the row's ``predictions.npz`` as a dict, or ``None`` if it was not written."""
    path = artifact_path(results_dir, row, "predictions")
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # a truncated file (run killed while writing) counts as not written
        warnings.warn(f"cannot read {path}: {exc}", RuntimeWarning, stacklevel=2)
        return None
