"""Run a benchmark suite: train, evaluate, audit and time every model; write results.

For each task variant of the suite, the physical baselines are scored first (they are
rows of every table), then each model is trained with the one training loop and
measured the same way: test accuracy in physical units, a multi-step rollout on
twelve_body, the equivariance audit of the *trained* model in float32 and float64,
and speed (step and epoch time, inference throughput and latency, peak memory, time
to a validation target). Each model's run lives in ``OUT/<variant>/<model>/``
(``log.jsonl``, ``best.pt``, ``last.pt``, ``predictions.npz``, ``row.json``) and
``results.json`` is rewritten after every model, so an interrupted benchmark keeps
what it finished and ``--resume`` picks up where it stopped: finished rows are kept,
an interrupted training continues from its ``last.pt``.

The file formats are in :mod:`irrepnet.bench.schema`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from .. import keys as K
from .. import metrics as M
from ..equivariance import audit
from ..models.physical import PhysicalBaseline
from ..provenance import provenance
from ..registry import ConfigError, build_model, get_model_entry
from ..tasks import Task, load_task
from ..train import TrainingInterrupted, make_trainer, split_validation
from ..train.device import peak_memory_mb, pick_device, reset_peak_memory
from ..train.config import train_config
from ..train.normalization import rms
from .schema import SCHEMA, SCHEMA_VERSION, validate
from .suite import PARAMETER_FREE, Suite, is_parameter_free

AUDIT_GRAPHS = 4


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finite(x):
    """JSON has no NaN/Inf: they become null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def write_json(obj: Any, path: Path) -> None:
    """Atomic JSON write (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_finite(obj), indent=2) + "\n")
    tmp.replace(path)


# --- one group (task variant) ------------------------------------------------------
@dataclasses.dataclass
class Group:
    """A task variant with its held-out validation split and the numbers every row is compared to."""

    id: str
    task: Task
    history: int
    zero_mse: float
    valid_zero_mse: float
    starts: List[int]

    @property
    def spec(self):
        return self.task.spec


def prepare_group(suite: Suite, variant, data: Optional[str], valid_fraction: float) -> Group:
    task = load_task(suite.task, data=data, history=variant.history)
    if task.valid is None:  # twelve_body: hold out the end of the training frames
        train, valid = split_validation(task.train, valid_fraction)
        task = Task(task.spec, train, task.test, valid)
    zero = float(task.test.arrays()[K.TARGET_DISP].double().pow(2).mean())
    valid_zero = float(task.valid.arrays()[K.TARGET_DISP].double().pow(2).mean())
    starts: List[int] = []
    if suite.task == "twelve_body" and suite.rollout_horizons:
        starts = M.rollout_starts(task.test.frames, max(suite.rollout_horizons), variant.history,
                                  count=suite.rollout_starts)
    return Group(variant.id, task, variant.history, zero, valid_zero, starts)


def _audit_dict(model, batch, trials: int) -> Dict[str, Any]:
    out = {}
    for dtype in (torch.float32, torch.float64):
        rep = audit(model, batch, dtype=dtype, trials=trials)
        out[str(dtype).replace("torch.", "")] = {
            "passed": rep.passed,
            "checks": {c.check: {"rel_error": c.rel_error, "abs_error": c.abs_error, "claimed": c.claimed,
                                 "passed": c.passed} for c in rep.checks}}
    return out


def _evaluate(model, group: Group, suite: Suite, run_dir: Optional[Path], device, dtype) -> Dict[str, Any]:
    """Metrics, rollout and audit of a model in physical units; writes ``predictions.npz``."""
    pred, true = M.predict(model, group.task.test, device=device, dtype=dtype)
    metrics = M.accuracy(pred, true, zero_mse=group.zero_mse)
    vpred, vtrue = M.predict(model, group.task.valid, device=device, dtype=dtype)
    metrics["valid_mse"] = M.mse(vpred, vtrue)
    arrays = {"pred": pred.astype(np.float32), "true": true.astype(np.float32)}
    roll = None
    if group.starts:
        horizons = sorted(suite.rollout_horizons)
        traj = group.task.test.trajectory
        positions = M.rollout(model, traj, group.starts, horizons[-1], group.history, device=device, dtype=dtype)
        roll = {"horizons": horizons, "mse": M.rollout_errors(positions, traj, group.starts, horizons),
                "starts": group.starts}
        t0 = group.starts[0]
        arrays["rollout_pred"] = positions[0].astype(np.float32)
        arrays["rollout_true"] = traj[t0:t0 + positions.shape[1]].astype(np.float32)
    batch = group.task.test.batch(range(min(AUDIT_GRAPHS, len(group.task.test))))
    result = {"metrics": metrics, "rollout": roll, "equivariance": _audit_dict(model, batch, suite.audit_trials)}
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(run_dir / "predictions.npz", **arrays)
    return result


def _row(name: str, kind: str, **fields) -> Dict[str, Any]:
    row = {"name": name, "kind": kind, "status": "ok", "symmetry": None, "parameters": 0, "config": None,
           "train": None, "metrics": None, "rollout": None, "equivariance": None, "speed": None, "training": None,
           "artifacts": {}}
    row.update(fields)
    return row


def baseline_rows(group: Group, suite: Suite, out: Path) -> List[Dict[str, Any]]:
    """The physical baselines that the variant supports, plus EGNN's Linear with a fitted time step on nbody."""
    from ..data import fit_linear_delta_t

    rows = []
    models = []
    for name in PARAMETER_FREE:
        try:
            models.append((name, build_model(name, group.spec)))
        except ConfigError:
            continue  # e.g. constant acceleration without a velocity history
    if K.VEL in group.spec.inputs and group.spec.name == "nbody":
        dt = fit_linear_delta_t(group.task.train)
        models.append((f"linear (fitted dt={dt:.4f})",
                       PhysicalBaseline("linear", {K.VEL: group.spec.inputs[K.VEL]}, dt)))
    for name, model in models:
        run_dir = out / group.id / _slug(name)
        ev = _evaluate(model.double(), group, suite, run_dir, torch.device("cpu"), torch.float64)
        rows.append(_row(name, "baseline", symmetry=model.symmetry.value, **ev,
                         artifacts={"predictions": str((run_dir / "predictions.npz").relative_to(out))}))
    return rows


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_")


def run_model(name: str, group: Group, suite: Suite, out: Path, *, resume: bool, extra_train: Dict[str, Any],
              device_name: Optional[str], log: Callable[[str], None]) -> Dict[str, Any]:
    run_dir = out / group.id / _slug(name)
    row_file = run_dir / "row.json"
    if resume and row_file.exists():
        log(f"  {name}: finished earlier, kept")
        return json.loads(row_file.read_text())
    extra = dict(extra_train)
    if device_name:
        extra["device"] = device_name
    cfg = suite.train_config_for(name, extra)
    try:
        trainer = make_trainer(name, group.task, cfg, suite.model_config_for(name), out_dir=run_dir)
    except ConfigError as exc:
        log(f"  {name}: skipped ({exc})")
        return _row(name, "model", status="skipped", reason=str(exc))
    model_cfg = trainer.meta["model_config"]
    inner = trainer.model.model
    base = dict(symmetry=inner.symmetry.value, parameters=sum(p.numel() for p in inner.parameters()),
                config=model_cfg, train=cfg.to_dict())
    device = trainer.device
    try:
        reset_peak_memory(device)
        result = trainer.fit(resume=resume and (run_dir / "last.pt").exists())
        peak, kind = peak_memory_mb(device)
        ev = _evaluate(result.model, group, suite, run_dir, device, trainer.dtype)
        speed = M.inference_speed(result.model, group.task.test, device=device, dtype=trainer.dtype)
    except (TrainingInterrupted, KeyboardInterrupt):
        raise
    except Exception as exc:  # one broken model must not take the others' results with it
        (run_dir / "error.txt").parent.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(traceback.format_exc())
        log(f"  {name}: ERROR {type(exc).__name__}: {exc} (traceback in {run_dir / 'error.txt'})")
        return _row(name, "model", status="error", reason=f"{type(exc).__name__}: {exc}", **base)
    target = suite.target_valid_ratio * group.valid_zero_mse
    speed.update(train_step_ms=result.train_step_ms, epoch_s=result.epoch_s, train_time_s=result.train_time_s,
                 peak_memory_mb=peak, memory_kind=kind, time_to_target_s=M.time_to_target(result.history, target))
    rel = lambda p: str((run_dir / p).relative_to(out))  # noqa: E731
    row = _row(name, "model", **base, **ev, speed=speed,
               training={"epochs": len(result.history), "steps": result.steps, "best_epoch": result.best_epoch,
                         "stopped": result.stopped},
               artifacts={"log": rel("log.jsonl"), "checkpoint": rel("best.pt"), "predictions": rel("predictions.npz")})
    write_json(row, row_file)
    m = row["metrics"]
    verdicts = ", ".join(f"{d} {'pass' if v['passed'] is not False else 'FAIL'}"
                         for d, v in row["equivariance"].items())
    log(f"  {name}: test MSE {m['test_mse']:.3e} ({m['mse_vs_zero']:.3g} x zero), R2 {m['r2']:.3f}, "
        f"{result.steps} steps in {result.train_time_s:.1f} s; audit {verdicts}")
    return row


def run_suite(suite: Suite, out: Path, *, data: Optional[str] = None, resume: bool = False,
              models: Optional[List[str]] = None, extra_train: Optional[Dict[str, Any]] = None,
              device: Optional[str] = None, log: Callable[[str], None] = print, report: bool = True) -> Dict[str, Any]:
    """Run ``suite`` into folder ``out``; returns the results dict (also written as ``out/results.json``)."""
    if suite.data == "required" and data is None:
        raise ValueError(f"suite {suite.name!r} needs its data file: pass --data PATH (for dmol, the dmol-book "
                         "data/paths.npz; see the README's Data section)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for n in models or []:
        get_model_entry(n)
    names = [n for n in models if not is_parameter_free(n)] if models else suite.model_names()
    extra_train = dict(extra_train or {})
    dev = pick_device(device or extra_train.get("device") or suite.train.get("device", "auto"))
    results_file = out / "results.json"
    started = _now()
    if resume and results_file.exists():
        started = json.loads(results_file.read_text()).get("started", started)
    description = suite.description
    if models or extra_train:  # the suite file's description would misdescribe this run
        description += (f" [run with overrides: models {', '.join(names)}" if models else " [run with overrides:") + \
            (f"; training {extra_train}]" if extra_train else "]")
    results = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
               "suite": {"name": suite.name, "description": description, "file": suite.file,
                         "models": names, "train": suite.train, "variants": [dataclasses.asdict(v) for v in suite.variants]},
               "provenance": provenance(str(dev)), "started": started, "finished": None, "groups": []}
    valid_fraction = train_config({**suite.train, **extra_train}).valid_fraction
    for variant in suite.variants:
        group = prepare_group(suite, variant, data, valid_fraction)
        log(f"[{suite.name}] {suite.task} {variant.id}: {len(group.task.train)} train / {len(group.task.valid)} valid / "
            f"{len(group.task.test)} test samples; {getattr(group.task.train, 'source', 'simulated')}")
        entry = {"id": group.id, "task": suite.task, "history": group.history,
                 "data": getattr(group.task.train, "source", None) or repr(group.task.train),
                 "sizes": {"train": len(group.task.train), "valid": len(group.task.valid), "test": len(group.task.test)},
                 "target_scale": rms(group.task.train.arrays()[K.TARGET_DISP]), "zero_mse": group.zero_mse,
                 "target_valid_mse": suite.target_valid_ratio * group.valid_zero_mse,
                 "rollout_horizons": sorted(suite.rollout_horizons) if group.starts else [], "rows": []}
        results["groups"].append(entry)
        entry["rows"] = baseline_rows(group, suite, out)
        for row in entry["rows"]:
            log(f"  {row['name']}: test MSE {row['metrics']['test_mse']:.3e} (baseline)")
        write_json(results, results_file)
        for name in names:
            entry["rows"].append(run_model(name, group, suite, out, resume=resume, extra_train=extra_train,
                                           device_name=device, log=log))
            write_json(results, results_file)
    results["finished"] = _now()
    validate(json.loads(json.dumps(_finite(results))))
    write_json(results, results_file)
    on_disk = json.loads(results_file.read_text())  # as written: non-finite numbers are null there too
    if report:
        from .report import write_all

        write_all(on_disk, out)
    return on_disk
