"""A small, fake but schema-valid ``irrepnet bench`` run for the report and plot tests.

:func:`synthetic_results` writes the artifacts (``log.jsonl``, ``predictions.npz``) and
``results.json`` into a folder and returns the results dict. It has two groups:

``history-2`` (twelve_body, 12 beads in 2-D padded with z = 0, rollout horizons 1, 5, 10, 50)
    baselines zero, constant_velocity, constant_acceleration (the last with predictions
    and a rollout); models egnn (best, beats every baseline), tfn (fails its float32
    audit), mlp (worse than zero displacement, no predictions, a truncated last log
    line); se3-transformer skipped, e3nn-reference errored.
``nbody`` (5 particles in 3-D, no rollout)
    baselines zero, linear; models egnn (log and predictions), mlp (its artifacts
    name files that were never written).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

COMMIT = "0123456789abcdef0123456789abcdef01234567"
HORIZONS = [1, 5, 10, 50]


def _equivariance(claims: dict[str, bool], rel32: float, passed32: bool = True) -> dict[str, Any]:
    """Audit result: claimed checks at ``rel32`` (float32) / 1e-15 (float64), unclaimed ones at O(1)."""

    def level(rel: float, passed: bool) -> dict[str, Any]:
        checks = {
            name: {
                "rel_error": rel if claimed else 0.9,
                "abs_error": rel * 1e-2 if claimed else 1e-2,
                "claimed": claimed,
                "passed": passed if claimed else True,
            }
            for name, claimed in claims.items()
        }
        return {"passed": passed, "checks": checks}

    return {"float32": level(rel32, passed32), "float64": level(1e-15, True)}


def _speed(step_ms: float, train_s: float, to_target: float | None) -> dict[str, Any]:
    return {
        "train_step_ms": step_ms,
        "epoch_s": train_s / 20,
        "train_time_s": train_s,
        "infer_graphs_per_s": 1000.0 / step_ms,
        "infer_latency_ms": step_ms / 3,
        "peak_memory_mb": 312.5,
        "memory_kind": "rss",
        "time_to_target_s": to_target,
    }


def _row(
    name: str,
    kind: str,
    symmetry: str,
    test_mse: float,
    zero_mse: float,
    *,
    task: str,
    params: int = 0,
    rollout: list[float] | None = None,
    artifacts: dict[str, str] | None = None,
    equivariance=None,
    speed=None,
) -> dict[str, Any]:
    corr = None
    if task == "twelve_body":
        r = float(np.sqrt(max(0.0, 1 - test_mse / zero_mse)))
        corr = {"com": r, "particle0": r, "particle6_x": r, "last_y": r}
    model = kind == "model"
    return {
        "name": name,
        "kind": kind,
        "status": "ok",
        "symmetry": symmetry,
        "parameters": params,
        "config": {"hidden": 32} if model else None,
        "train": {"lr": 1e-3, "epochs": 20} if model else None,
        "metrics": {
            "test_mse": test_mse,
            "mse_vs_zero": test_mse / zero_mse,
            "r2": 1 - test_mse / zero_mse,
            "valid_mse": test_mse * 1.1,
            "correlations": corr,
        },
        "rollout": {"horizons": list(HORIZONS), "mse": rollout} if rollout is not None else None,
        "equivariance": equivariance,
        "speed": speed,
        "training": {"epochs": 20, "steps": 800, "best_epoch": 18, "stopped": "epochs"} if model else None,
        "artifacts": artifacts or {},
    }


def _not_run(name: str, status: str, reason: str) -> dict[str, Any]:
    row = {k: None for k in ("config", "train", "metrics", "rollout", "equivariance", "speed", "training")}
    row.update(name=name, kind="model", status=status, symmetry="SE(3)", parameters=0, artifacts={}, reason=reason)
    return row


def _write_log(path: Path, final_mse: float, truncated: bool = False) -> None:
    """20 epochs of exponentially falling losses ending at ``final_mse``; optionally a cut-off last line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for epoch in range(1, 21):
        mse = final_mse * 10 ** (2 * (20 - epoch) / 19)
        lines.append(
            json.dumps(
                {
                    "epoch": epoch,
                    "train_loss": mse * 0.9 / 1e-5,
                    "valid_loss": mse / 1e-5,
                    "valid_mse": mse,
                    "lr": 1e-3,
                    "time_s": 0.5 * epoch,
                }
            )
        )
    text = "\n".join(lines) + "\n"
    if truncated:  # a run killed while writing its log
        text += '{"epoch": 21, "train_lo'
    path.write_text(text)


def _write_predictions(path: Path, rng, n_nodes: int, dim: int, mse: float, scale: float, rollout: bool) -> None:
    """Test displacements ``(40, N, 3)`` with noise of variance ``mse``; 2-D data keep z = 0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    true = np.zeros((40, n_nodes, 3))
    true[..., :dim] = rng.normal(0, scale, (40, n_nodes, dim))
    pred = true.copy()
    pred[..., :dim] += rng.normal(0, np.sqrt(mse), (40, n_nodes, dim))
    arrays = {"pred": pred.astype(np.float32), "true": true.astype(np.float32)}
    if rollout:
        chain = np.zeros((51, n_nodes, 3))
        angles = np.cumsum(rng.normal(0, 0.8, n_nodes))  # a coiled chain of unit bonds, then random walks
        chain[0, 1:, 0], chain[0, 1:, 1] = np.cumsum(np.cos(angles[1:])), np.cumsum(np.sin(angles[1:]))
        chain[1:, :, :dim] = rng.normal(0, 0.05, (50, n_nodes, dim))
        chain = np.cumsum(chain, axis=0)
        drift = np.zeros_like(chain)
        drift[..., :dim] = np.linspace(0, 0.3, 51)[:, None, None] * rng.normal(0, 1, (1, n_nodes, dim))
        arrays.update(rollout_true=chain, rollout_pred=chain + drift)
    np.savez(path, **arrays)


def _twelve_body(root: Path, rng) -> dict[str, Any]:
    zero, scale, task = 2.43e-5, np.sqrt(2.43e-5), "twelve_body"
    runs = "runs/history-2"

    def roll(mse):  # error growing with the horizon
        return [mse * h**2 for h in HORIZONS]

    egnn_art = {
        "log": f"{runs}/egnn/log.jsonl",
        "checkpoint": f"{runs}/egnn/best.pt",
        "predictions": f"{runs}/egnn/predictions.npz",
    }
    tfn_art = {"log": f"{runs}/tfn/log.jsonl", "predictions": f"{runs}/tfn/predictions.npz"}
    mlp_art = {"log": f"{runs}/mlp/log.jsonl"}
    ca_art = {"predictions": f"{runs}/constant_acceleration/predictions.npz"}
    _write_log(root / egnn_art["log"], 3.1e-9)
    _write_log(root / tfn_art["log"], 8.2e-8)
    _write_log(root / mlp_art["log"], 3.0e-5, truncated=True)
    _write_predictions(root / egnn_art["predictions"], rng, 12, 2, 3.1e-9, scale, rollout=True)
    _write_predictions(root / tfn_art["predictions"], rng, 12, 2, 8.2e-8, scale, rollout=True)
    _write_predictions(root / ca_art["predictions"], rng, 12, 2, 5.6e-9, scale, rollout=True)
    e3 = {"rotation": True, "translation": True, "reflection": True}
    se3 = {"rotation": True, "translation": True, "reflection": False}
    none = {"rotation": False, "translation": False, "reflection": False}
    rows = [
        _row("zero", "baseline", "E(3)", zero, zero, task=task, rollout=roll(zero)),
        _row("constant_velocity", "baseline", "E(3)", 1.65e-7, zero, task=task, rollout=roll(1.65e-7)),
        _row(
            "constant_acceleration", "baseline", "E(3)", 5.6e-9, zero, task=task, rollout=roll(5.6e-9), artifacts=ca_art
        ),
        _row(
            "mlp",
            "model",
            "none",
            3.0e-5,
            zero,
            task=task,
            params=20_000,
            rollout=roll(3.0e-5),
            artifacts=mlp_art,
            equivariance=_equivariance(none, 0.0),
            speed=_speed(1.2, 15.0, None),
        ),
        _row(
            "tfn",
            "model",
            "SE(3)",
            8.2e-8,
            zero,
            task=task,
            params=133_645,
            rollout=roll(8.2e-8),
            artifacts=tfn_art,
            equivariance=_equivariance(se3, 2.0e-3, passed32=False),
            speed=_speed(45.0, 420.0, 300.0),
        ),
        _row(
            "egnn",
            "model",
            "E(3)",
            3.1e-9,
            zero,
            task=task,
            params=116_992,
            rollout=roll(3.1e-9),
            artifacts=egnn_art,
            equivariance=_equivariance(e3, 3.2e-7),
            speed=_speed(8.5, 95.0, 40.0),
        ),
        _not_run("se3-transformer", "skipped", "needs a velocity history of at least 3 frames"),
        _not_run("e3nn-reference", "error", "RuntimeError: CUDA out of memory | tried to allocate 2 GiB"),
    ]
    return {
        "id": "history-2",
        "task": task,
        "history": 2,
        "data": {"file": None, "source": "simulate_polymer(seed=0)", "sha256": None},
        "sizes": {"train": 1300, "valid": 300, "test": 40},
        "target_scale": float(scale),
        "zero_mse": zero,
        "target_valid_mse": 1e-7,
        "rollout_horizons": list(HORIZONS),
        "rows": rows,
    }


def _nbody(root: Path, rng) -> dict[str, Any]:
    zero, scale, task = 0.25, 0.5, "nbody"
    egnn_art = {"log": "runs/nbody/egnn/log.jsonl", "predictions": "runs/nbody/egnn/predictions.npz"}
    # artifacts named but never written: the report must cope
    mlp_art = {"log": "runs/nbody/mlp/log.jsonl", "predictions": "runs/nbody/mlp/predictions.npz"}
    _write_log(root / egnn_art["log"], 0.0071)
    _write_predictions(root / egnn_art["predictions"], rng, 5, 3, 0.0071, scale, rollout=False)
    e3 = {"rotation": True, "translation": True, "reflection": True}
    rows = [
        _row("zero", "baseline", "E(3)", zero, zero, task=task),
        _row("linear", "baseline", "E(3)", 0.0819, zero, task=task),
        _row(
            "egnn",
            "model",
            "E(3)",
            0.0071,
            zero,
            task=task,
            params=134_000,
            artifacts=egnn_art,
            equivariance=_equivariance(e3, 5.0e-7),
            speed=_speed(20.0, 200.0, None),
        ),
        _row(
            "mlp",
            "model",
            "none",
            0.0334,
            zero,
            task=task,
            params=30_000,
            artifacts=mlp_art,
            equivariance=None,
            speed=_speed(2.0, 30.0, None),
        ),
    ]
    return {
        "id": "nbody",
        "task": task,
        "history": 0,
        "data": {"simulator": "charged 5-body, 3-D", "seed": 0},
        "sizes": {"train": 3000, "valid": 2000, "test": 2000},
        "target_scale": scale,
        "zero_mse": zero,
        "target_valid_mse": None,
        "rollout_horizons": [],
        "rows": rows,
    }


def synthetic_results(tmp_dir) -> dict[str, Any]:
    """Write the fake run's artifacts and ``results.json`` under ``tmp_dir``; return the results dict."""
    root = Path(tmp_dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    results = {
        "schema": "irrepnet.bench.results",
        "schema_version": 1,
        "suite": {"name": "smoke", "description": "A tiny fake suite for the tests.", "file": None},
        "provenance": {
            "irrepnet": "0.1.0",
            "commit": COMMIT,
            "dirty": True,
            "machine": "Test CPU, 2 cores, Linux",
            "device": "cpu",
            "python": "3.11.7",
            "torch": "2.13.0+cpu",
            "e3nn": "0.6.0",
            "torch_threads": 1,
            "date": "2026-01-01T00:00:00Z",
        },
        "started": "2026-01-01T00:00:00Z",
        "finished": "2026-01-01T00:30:00Z",
        "groups": [_twelve_body(root, rng), _nbody(root, rng)],
    }
    (root / "results.json").write_text(json.dumps(results, indent=1))
    return results
