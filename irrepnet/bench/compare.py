"""Intervals and paired comparisons of a benchmark group, stored in its ``results.json``.

After every row a group's statistics are recomputed from the per-unit errors that
the rows left on disk: the per-test-frame MSE of each seed (``frame_mse`` in each
``predictions.npz``) and the per-start rollout MSE (``rollout.mse_per_start``).
One :class:`~irrepnet.stats.Bootstrap` per group draws the resamples, so that
every row and every comparison of the group uses the *same* resampled frames
(paired comparisons). Test frames of one trajectory are resampled in blocks
(``bootstrap_block`` frames); the independent trajectories of nbody one by one;
rollout start frames one by one (they are ~40 frames apart).

What is written
---------------
``group["bootstrap"]``, ``group["rollout_bootstrap"]``
    the resampling schemes (:meth:`Bootstrap.describe`), or null.
``row["intervals"]``
    ``test_mse`` (seed mean, 95% interval, seed std), ``mse_vs_zero`` (paired ratio
    to the zero-displacement baseline with its interval), ``rollout`` per horizon.
``row["comparisons"]`` (models only)
    ``best_baseline`` and ``best_other_model``: :meth:`Bootstrap.compare` of the row
    against the lowest-MSE baseline and the lowest-MSE other model, with ``other``
    naming it; ``rollout``: per horizon, against the zero-displacement and
    constant-velocity baselines.

Energy groups (``target`` ``"energy"``) have figures of their own, resampled over test
molecules: :func:`irrepnet.bench.energy.finalize_energy_group`.

The report turns these into sentences (:func:`irrepnet.stats.verdict_sentence`);
it never compares point estimates itself.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..stats import Bootstrap

#: baselines every model's rollout is compared with (when the group has them)
ROLLOUT_REFERENCES = ("zero-displacement", "constant-velocity")
_CACHE: dict[tuple[str, float], np.ndarray] = {}


def _frame_mse(path: Path) -> np.ndarray | None:
    """``frame_mse`` of a ``predictions.npz`` (cached by path and modification time), or ``None``."""
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError:
        return None
    if key not in _CACHE:
        try:
            with np.load(path, allow_pickle=False) as data:
                if "frame_mse" not in data.files:
                    return None
                _CACHE[key] = np.asarray(data["frame_mse"], dtype=np.float64)
        except (OSError, ValueError, EOFError):
            return None
    return _CACHE[key]


def _records(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-seed records of a model row; a baseline row is its own single record."""
    return row.get("seeds") or [row]


def unit_errors(row: dict[str, Any], out: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(frames (seeds, S), rollout (seeds, B, H))`` per-unit errors of a row, ``None`` where not on disk."""
    frames, rolls = [], []
    for rec in _records(row):
        rel = (rec.get("artifacts") or {}).get("predictions")
        fm = _frame_mse(Path(out) / rel) if rel else None
        frames.append(fm)
        per_start = (rec.get("rollout") or {}).get("mse_per_start")
        rolls.append(
            None
            if per_start is None
            else np.array([[np.inf if v is None else v for v in r] for r in per_start], dtype=np.float64)
        )
    f = (
        np.stack(frames)
        if frames and all(x is not None for x in frames) and len({x.shape for x in frames}) == 1
        else None
    )
    r = np.stack(rolls) if rolls and all(x is not None for x in rolls) and len({x.shape for x in rolls}) == 1 else None
    return f, r


def _point(row: dict[str, Any]) -> float:
    v = (row.get("metrics") or {}).get("test_mse")
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.inf


def finalize_group(entry: dict[str, Any], out: Path, suite) -> None:
    """Recompute ``intervals`` and ``comparisons`` of every ok row of ``entry`` (see the module docstring)."""
    if entry.get("target") == "energy":  # MAEs over test molecules against the atom-energy reference
        from .energy import finalize_energy_group

        return finalize_energy_group(entry, out, suite)
    rows = [r for r in entry.get("rows", []) if r.get("status") == "ok"]
    errs = {id(r): unit_errors(r, out) for r in rows}
    frame_rows = [r for r in rows if errs[id(r)][0] is not None]
    if not frame_rows:
        return
    n = errs[id(frame_rows[0])][0].shape[-1]
    block = suite.bootstrap_block if entry.get("task") == "twelve_body" else 1
    block = max(1, min(block, n // 2))
    boot = Bootstrap(n, block_length=block, resamples=suite.bootstrap_resamples, seed=0)
    entry["bootstrap"] = boot.describe()
    rboot = None
    roll_rows = [r for r in rows if errs[id(r)][1] is not None]
    if roll_rows and errs[id(roll_rows[0])][1].shape[1] >= 2:
        rboot = Bootstrap(
            errs[id(roll_rows[0])][1].shape[1], block_length=1, resamples=suite.bootstrap_resamples, seed=1
        )
        entry["rollout_bootstrap"] = rboot.describe()
    by_name = {r["name"]: r for r in rows}
    zero = by_name.get("zero-displacement")
    zero_f = errs[id(zero)][0] if zero is not None else None
    baselines = sorted((r for r in frame_rows if r.get("kind") == "baseline"), key=_point)
    models = sorted((r for r in frame_rows if r.get("kind") == "model"), key=_point)
    horizons = entry.get("rollout_horizons") or []
    for row in rows:
        f, ro = errs[id(row)]
        iv: dict[str, Any] = {}
        if f is not None:
            iv["test_mse"] = boot.interval(f)
            if zero_f is not None:
                c = boot.compare(f, zero_f)
                iv["mse_vs_zero"] = {"value": c["ratio"], "lo": c["lo"], "hi": c["hi"]}
        if ro is not None and rboot is not None and ro.shape[2] == len(horizons):
            iv["rollout"] = {str(h): rboot.interval(ro[:, :, j]) for j, h in enumerate(horizons)}
        row["intervals"] = iv
        if row.get("kind") != "model" or f is None:
            continue
        comps: dict[str, Any] = {}
        if baselines:
            best = baselines[0]
            comps["best_baseline"] = {"other": best["name"], **boot.compare(f, errs[id(best)][0])}
        others = [m for m in models if m is not row]
        if others:
            comps["best_other_model"] = {"other": others[0]["name"], **boot.compare(f, errs[id(others[0])][0])}
        if ro is not None and rboot is not None and ro.shape[2] == len(horizons):
            roll = {}
            for j, h in enumerate(horizons):
                roll[str(h)] = {
                    ref: rboot.compare(ro[:, :, j], errs[id(by_name[ref])][1][:, :, j])
                    for ref in ROLLOUT_REFERENCES
                    if ref in by_name and errs[id(by_name[ref])][1] is not None
                }
            comps["rollout"] = roll
        row["comparisons"] = comps
