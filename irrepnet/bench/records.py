"""The records of ``results.json``: a row, a model row's aggregate over its seeds, a group's budget,
and the atomic JSON write that every record goes through.

:mod:`irrepnet.bench.runner` makes these while it runs a suite and
:mod:`irrepnet.bench.shard` remakes them when it merges shards; this module imports
neither, so both can use it. The formats are in :mod:`irrepnet.bench.schema`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from ..train import distributed
from . import energy as E
from .suite import BUDGET_KEYS


def now() -> str:
    """The UTC time to the second, as ``results.json`` stamps ``started`` and ``finished``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def finite(x):
    """JSON has no NaN/Inf: they become null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def writes() -> bool:
    """Whether this process writes files: always, except the ranks other than 0 under torchrun."""
    return distributed.current().is_main


def write_json(obj: Any, path: Path) -> None:
    """Atomic JSON write (temporary file, then rename); rank 0 alone writes under torchrun."""
    if not writes():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(finite(obj), indent=2) + "\n")
    tmp.replace(path)


def new_row(name: str, kind: str, **fields) -> dict[str, Any]:
    """A row of ``results.json`` with every key the schema names (status ``ok``), ``fields`` set over the defaults."""
    row = {
        "name": name,
        "kind": kind,
        "status": "ok",
        "symmetry": None,
        "parameters": 0,
        "config": None,
        "train": None,
        "metrics": None,
        "rollout": None,
        "equivariance": None,
        "speed": None,
        "training": None,
        "artifacts": {},
        "seeds": [],
        "tuning": None,
        "intervals": {},
        "comparisons": {},
    }
    row.update(fields)
    return row


def _mean(values):
    vals = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(vals) != len(values) or not vals:
        return None
    return float(np.mean(vals))


def aggregate_seeds(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's ``metrics``, ``rollout``, ``equivariance``, ``speed``, ``training`` and ``artifacts`` over its seeds.

    Accuracy: the mean over seeds (``metrics_std`` has the standard deviation). Rollout:
    the mean per horizon, ``null`` (diverged) if any seed diverged. Equivariance: the
    worst seed per check. Speed: the median over seeds. Artifacts: the first seed's.
    """
    ms = [r["metrics"] for r in records]
    if "energy_mae" in ms[0]:  # an energy task: its own figures (irrepnet.bench.energy)
        agg = E.aggregate_metrics(ms)
        metrics, std = agg["metrics"], agg["metrics_std"]
    else:
        metrics, std = _displacement_metrics(ms)
    rollout = None
    if all(r.get("rollout") for r in records):
        first = records[0]["rollout"]
        per_h = list(zip(*[r["rollout"]["mse"] for r in records]))
        rollout = {
            "horizons": first["horizons"],
            "starts": first["starts"],
            "mse": [None if any(v is None for v in vals) else float(np.mean(vals)) for vals in per_h],
        }
    equivariance = {}
    for dtype in records[0].get("equivariance") or {}:
        checks = {}
        for check in records[0]["equivariance"][dtype]["checks"]:
            per = [r["equivariance"][dtype]["checks"][check] for r in records]
            worst = max(per, key=lambda c: c.get("rel_error") if c.get("rel_error") is not None else math.inf)
            checks[check] = {**worst, "passed": all(c.get("passed") is not False for c in per)}
        equivariance[dtype] = {"passed": all(r["equivariance"][dtype]["passed"] for r in records), "checks": checks}
    speed = {}
    for key in records[0]["speed"]:
        vals = [r["speed"].get(key) for r in records]
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        speed[key] = (
            statistics.median(nums)
            if len(nums) == len(vals) and nums
            else (vals[0] if isinstance(vals[0], str) else None)
        )
    steps = [r["training"]["steps"] for r in records]
    training = {
        "epochs": records[0]["training"]["epochs"],
        "steps": steps[0] if len(set(steps)) == 1 else steps,
        "best_epoch": [r["training"]["best_epoch"] for r in records],
        "stopped": records[0]["training"]["stopped"],
    }
    return {
        "metrics": metrics,
        "metrics_std": std,
        "rollout": rollout,
        "equivariance": equivariance or None,
        "speed": speed,
        "training": training,
        "artifacts": dict(records[0]["artifacts"]),
    }


def _displacement_metrics(ms: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metrics, metrics_std)`` of a displacement row: seed means, and the std of two of them."""
    metrics = {k: _mean([m.get(k) for m in ms]) for k in ("test_mse", "mse_vs_zero", "r2", "valid_mse")}
    corr = [m.get("correlations") for m in ms]
    metrics["correlations"] = (
        {k: _mean([c.get(k) for c in corr]) for k in corr[0]} if all(isinstance(c, dict) for c in corr) else None
    )
    std = {
        k: (
            float(np.std([m[k] for m in ms], ddof=1)) if len(ms) > 1 and all(m.get(k) is not None for m in ms) else None
        )
        for k in ("test_mse", "mse_vs_zero")
    }
    return metrics, std


def budget(entry: dict[str, Any]) -> dict[str, Any]:
    """Optimiser steps and training options that set the budget, per model row, and whether they are equal."""
    per = {}
    for row in entry["rows"]:
        if row.get("kind") == "model" and row.get("status") == "ok":
            per[row["name"]] = {
                "steps": (row.get("training") or {}).get("steps"),
                **{k: (row.get("train") or {}).get(k) for k in BUDGET_KEYS},
                "lr": (row.get("train") or {}).get("lr"),
            }
    steps = {json.dumps(p["steps"]) for p in per.values()}
    return {
        "per_model": per,
        "equal_steps": len(steps) <= 1,
        "steps": (next(iter(per.values()))["steps"] if len(steps) == 1 else None),
    }
