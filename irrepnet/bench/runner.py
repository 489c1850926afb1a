"""Run a benchmark suite: tune, train, evaluate, audit and time every model; write results.

For each task variant of the suite, the physical baselines are scored first (they are
rows of every table; on an energy task the atom-energy reference instead,
:mod:`irrepnet.bench.energy`), then each model is (optionally) tuned on a small learning-rate
or size grid on the validation split, trained once per seed with the one training
loop, and measured the same way: test accuracy in physical units, a multi-step
rollout on twelve_body, the equivariance audit of the *trained* model in float32 and
float64, and speed. A model's row aggregates its seeds (mean, spread, every seed
kept); every figure gets a 95% interval from a block bootstrap over test frames and
each model is compared with the best baseline and the best other model on the same
resamples (:mod:`irrepnet.stats`).

Layout of ``OUT``: ``<variant>/<model>/tune.json`` (the grid and its choice),
``<variant>/<model>/seed-<s>/`` (``log.jsonl``, ``best.pt``, ``last.pt``,
``predictions.npz``, ``seed.json``) and ``<variant>/<model>/row.json``.
``results.json`` is rewritten after every seed, so an interrupted benchmark keeps
what it finished and ``--resume`` picks up where it stopped: finished seeds are
kept, an interrupted training continues from its ``last.pt``.

The file formats are in :mod:`irrepnet.bench.schema`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import keys as K
from .. import metrics as M
from ..equivariance import audit
from ..models.physical import PhysicalBaseline
from ..provenance import provenance
from ..registry import ConfigError, build_model, get_model_entry
from ..stats import per_unit_mse
from ..tasks import Task, load_task
from ..train import TrainingInterrupted, make_trainer, split_validation
from ..train.config import train_config
from ..train.device import peak_memory_mb, pick_device, reset_peak_memory
from ..train.normalization import model_task_spec, rms
from . import energy as E
from .compare import finalize_group
from .records import aggregate_seeds, budget, finite, new_row, now, write_json, writes
from .schema import SCHEMA, SCHEMA_VERSION, validate
from .shard import shard_units
from .suite import PARAMETER_FREE, Suite, Variant, is_parameter_free

AUDIT_GRAPHS = 4


# --- one group (task variant) ------------------------------------------------------
@dataclasses.dataclass
class Group:
    """A task variant with its held-out validation split and the numbers every row is compared to."""

    id: str
    task: Task
    history: int
    zero_mse: float
    valid_zero_mse: float
    starts: list[int]
    variant: Variant = dataclasses.field(default_factory=lambda: Variant("default"))
    atom_energies: list[float] | None = None  # energy tasks: the reference's fitted per-element energies

    @property
    def spec(self):
        return self.task.spec

    @property
    def energy(self) -> bool:
        """An energy task: no displacement, no zero baseline, no rollout (``zero_mse`` etc. are ``None``)."""
        return self.atom_energies is not None


def prepare_group(suite: Suite, variant, data: str | None, valid_fraction: float) -> Group:
    if suite.energy:  # generated splits of their own sizes; the reference is fitted on the training split
        task = load_task(suite.task, **suite.sizes)
        return Group(variant.id, task, 0, None, None, [], variant, atom_energies=E.fit_reference(task.train))
    task = load_task(suite.task, data=data, history=variant.history, bonds=variant.bonds, **suite.sizes)
    if task.valid is None:  # twelve_body: hold out the end of the training frames
        train, valid = split_validation(task.train, valid_fraction)
        task = Task(task.spec, train, task.test, valid)
    zero = float(task.test.arrays()[K.TARGET_DISP].double().pow(2).mean())
    valid_zero = float(task.valid.arrays()[K.TARGET_DISP].double().pow(2).mean())
    starts: list[int] = []
    if suite.task == "twelve_body" and suite.rollout_horizons:
        starts = M.rollout_starts(
            task.test.frames, max(suite.rollout_horizons), variant.history, count=suite.rollout_starts
        )
    return Group(variant.id, task, variant.history, zero, valid_zero, starts, variant)


def _audit_dict(model, batch, trials: int) -> dict[str, Any]:
    out = {}
    for dtype in (torch.float32, torch.float64):
        rep = audit(model, batch, dtype=dtype, trials=trials)
        out[str(dtype).replace("torch.", "")] = {
            "passed": rep.passed,
            "checks": {
                c.check: {"rel_error": c.rel_error, "abs_error": c.abs_error, "claimed": c.claimed, "passed": c.passed}
                for c in rep.checks
            },
        }
    return out


def _evaluate(
    model, group: Group, suite: Suite, run_dir: Path, device, dtype, valid: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Metrics, rollout and audit of a model in physical units; writes ``predictions.npz``.

    ``predictions.npz`` keeps the per-test-frame MSE (``frame_mse``, float64), which the
    block bootstrap of :mod:`irrepnet.bench.compare` resamples; on an energy task the
    per-molecule errors instead (:mod:`irrepnet.bench.energy`; ``valid``: the kept
    epoch's validation MAEs).
    """
    if group.energy:
        result = E.evaluate_model(model, group.task, valid or {}, run_dir, device, dtype, write=writes())
        return {**result, "equivariance": _audit_dict(model, _audit_batch(group), suite.audit_trials)}
    pred, true = M.predict(model, group.task.test, device=device, dtype=dtype)
    metrics = M.accuracy(pred, true, zero_mse=group.zero_mse)
    vpred, vtrue = M.predict(model, group.task.valid, device=device, dtype=dtype)
    metrics["valid_mse"] = M.mse(vpred, vtrue)
    arrays = {"pred": pred.astype(np.float32), "true": true.astype(np.float32), "frame_mse": per_unit_mse(pred, true)}
    roll = None
    if group.starts:
        horizons = sorted(suite.rollout_horizons)
        traj = group.task.test.trajectory
        positions = M.rollout(model, traj, group.starts, horizons[-1], group.history, device=device, dtype=dtype)
        per_start = M.rollout_errors_per_start(positions, traj, group.starts, horizons)
        roll = {
            "horizons": horizons,
            "mse": [float(np.mean(per_start[:, j])) for j in range(len(horizons))],
            "starts": group.starts,
            "mse_per_start": per_start.tolist(),
        }
        t0 = group.starts[0]
        arrays["rollout_pred"] = positions[0].astype(np.float32)
        arrays["rollout_true"] = traj[t0 : t0 + positions.shape[1]].astype(np.float32)
    result = {
        "metrics": metrics,
        "rollout": roll,
        "equivariance": _audit_dict(model, _audit_batch(group), suite.audit_trials),
    }
    if writes():
        run_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(run_dir / "predictions.npz", **arrays)
    return result


def _audit_batch(group: Group):
    """The first :data:`AUDIT_GRAPHS` test samples as one batch: what the equivariance audit runs on."""
    return group.task.test.batch(range(min(AUDIT_GRAPHS, len(group.task.test))))


def baseline_rows(group: Group, suite: Suite, out: Path) -> list[dict[str, Any]]:
    """The physical baselines that the variant supports, plus EGNN's Linear with a fitted time step on nbody."""
    from ..data import fit_linear_delta_t

    if group.energy:
        return [reference_row(group, out)]
    rows = []
    models = []
    for name in PARAMETER_FREE:
        try:
            models.append((name, build_model(name, group.spec)))
        except ConfigError:
            continue  # e.g. constant acceleration without a velocity history
    if K.VEL in group.spec.inputs and group.spec.name == "nbody":
        dt = fit_linear_delta_t(group.task.train)
        models.append(
            (f"linear (fitted dt={dt:.4f})", PhysicalBaseline("linear", {K.VEL: group.spec.inputs[K.VEL]}, dt))
        )
    for name, model in models:
        run_dir = out / group.id / _slug(name)
        ev = _evaluate(model.double(), group, suite, run_dir, torch.device("cpu"), torch.float64)
        rows.append(
            new_row(
                name,
                "baseline",
                symmetry=model.symmetry.value,
                **ev,
                artifacts={"predictions": str((run_dir / "predictions.npz").relative_to(out))},
            )
        )
    return rows


def reference_row(group: Group, out: Path) -> dict[str, Any]:
    """The atom-energy reference of an energy group (fitted on the training split; no audit, no speed)."""
    run_dir = out / group.id / _slug(E.REFERENCE)
    ev = E.evaluate_reference(group.task, group.atom_energies, run_dir, write=writes())
    return new_row(
        E.REFERENCE,
        "baseline",
        symmetry="E(3)",
        parameters=len(group.atom_energies),
        config=E.reference_config(group.task.train.species, group.atom_energies),
        **ev,
        artifacts={"predictions": str((run_dir / "predictions.npz").relative_to(out))},
    )


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_")


# --- tuning ------------------------------------------------------------------------
def tune_model(
    name: str,
    group: Group,
    suite: Suite,
    out: Path,
    base_cfg,
    model_cfg: dict[str, Any],
    seed: int,
    *,
    resume: bool,
    log: Callable[[str], None],
) -> dict[str, Any] | None:
    """Train each point of the suite's grid for ``[tune] steps`` steps; pick the lowest validation MSE.

    Returns ``{"steps", "seed", "trials": [{"lr", "config", "valid_mse"}], "chosen": {"lr", "config"}}``
    (written to ``tune.json``), or ``None`` when the suite has no grid.
    """
    if not suite.tune.active:
        return None
    path = out / group.id / _slug(name) / "tune.json"
    if resume and path.exists():
        return json.loads(path.read_text())
    trials = []
    for trial in suite.tune.trials(name, base_cfg.lr):
        cfg = dataclasses.replace(
            base_cfg, lr=trial["lr"], max_steps=suite.tune.steps, seed=seed, patience=None, progress=False
        )
        try:
            result = make_trainer(name, group.task, cfg, {**model_cfg, **trial["config"]}).fit()
            best = min((r["valid_mse"] for r in result.history if r.get("valid_mse") is not None), default=math.inf)
        except FloatingPointError:  # a learning rate that diverges is a bad choice, not an error
            best = math.inf
        trials.append({**trial, "valid_mse": best})
        log(f"  {name}: tune lr {trial['lr']:g} {trial['config'] or ''} -> valid MSE {best:.3e}")
    chosen = min(trials, key=lambda t: (not math.isfinite(t["valid_mse"]), t["valid_mse"]))
    tuning = {
        "steps": suite.tune.steps,
        "seed": seed,
        "trials": trials,
        "chosen": {"lr": chosen["lr"], "config": chosen["config"]},
    }
    write_json(tuning, path)
    return tuning


# --- one model -----------------------------------------------------------------------
def run_seed(
    name: str,
    group: Group,
    suite: Suite,
    out: Path,
    cfg,
    model_cfg: dict[str, Any],
    *,
    resume: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Train and evaluate one seed; returns the seed record (also ``seed.json``)."""
    run_dir = out / group.id / _slug(name) / f"seed-{cfg.seed}"
    record_file = run_dir / "seed.json"
    if resume and record_file.exists():
        log(f"  {name} seed {cfg.seed}: finished earlier, kept")
        return json.loads(record_file.read_text())
    trainer = make_trainer(name, group.task, cfg, model_cfg, out_dir=run_dir)
    device = trainer.device
    reset_peak_memory(device)
    result = trainer.fit(resume=resume and (run_dir / "last.pt").exists())
    peak, kind = peak_memory_mb(device)
    valid = E.best_valid_figures(result.history, result.best_epoch) if group.energy else None
    ev = _evaluate(result.model, group, suite, run_dir, device, trainer.dtype, valid)
    speed = M.inference_speed(result.model, group.task.test, device=device, dtype=trainer.dtype)
    target = None if group.energy else suite.target_valid_ratio * group.valid_zero_mse  # no zero baseline
    speed.update(
        train_step_ms=result.train_step_ms,
        epoch_s=result.epoch_s,
        train_time_s=result.train_time_s,
        peak_memory_mb=peak,
        memory_kind=kind,
        time_to_target_s=M.time_to_target(result.history, target),
    )
    rel = lambda p: str((run_dir / p).relative_to(out))  # noqa: E731
    record = {
        "seed": cfg.seed,
        **ev,
        "speed": speed,
        "training": {
            "epochs": sum(1 for r in result.history if r.get("epoch", 0) > 0),
            "steps": result.steps,
            "best_epoch": result.best_epoch,
            "stopped": result.stopped,
        },
        "artifacts": {"log": rel("log.jsonl"), "checkpoint": rel("best.pt"), "predictions": rel("predictions.npz")},
    }
    write_json(record, record_file)
    m = record["metrics"]
    verdicts = ", ".join(
        f"{d} {'pass' if v['passed'] is not False else 'FAIL'}" for d, v in record["equivariance"].items()
    )
    head = (
        E.log_line(name, cfg.seed, m)
        if group.energy
        else f"  {name} seed {cfg.seed}: test MSE {m['test_mse']:.3e} ({m['mse_vs_zero']:.3g} x zero)"
    )
    log(
        f"{head}, {result.steps} steps in {result.train_time_s:.1f} s, best epoch {result.best_epoch}; audit {verdicts}"
    )
    return json.loads(json.dumps(finite(record)))


def run_model(
    name: str,
    group: Group,
    suite: Suite,
    out: Path,
    *,
    seeds: list[int],
    resume: bool,
    extra_train: dict[str, Any],
    device_name: str | None,
    log: Callable[[str], None],
    tune_seed: int | None = None,
) -> dict[str, Any]:
    """Tune (on ``suite.tune.seed``, else ``tune_seed``, else the first of ``seeds``), train every seed, one row.

    A shard passes the suite's first seed as ``tune_seed``, so that every shard of a model
    makes the same choice as an unsharded run.
    """
    model_dir = out / group.id / _slug(name)
    row_file = model_dir / "row.json"
    if resume and row_file.exists():
        log(f"  {name}: finished earlier, kept")
        return json.loads(row_file.read_text())
    extra = dict(extra_train)
    if device_name:
        extra["device"] = device_name
    base_cfg = suite.train_config_for(name, extra, group.variant)
    model_cfg = suite.model_config_for(name)
    try:
        trainer = make_trainer(name, group.task, base_cfg, model_cfg)  # checks model, task and residual
    except ConfigError as exc:
        log(f"  {name}: skipped ({exc})")
        return new_row(name, "model", status="skipped", reason=str(exc))
    inner = trainer.model.model
    base = dict(symmetry=inner.symmetry.value, train=base_cfg.to_dict())
    del trainer
    records: list[dict[str, Any]] = []
    try:
        chosen_seed = (
            suite.tune.seed if suite.tune.seed is not None else (tune_seed if tune_seed is not None else seeds[0])
        )
        tuning = tune_model(name, group, suite, out, base_cfg, model_cfg, chosen_seed, resume=resume, log=log)
        if tuning is not None:
            base_cfg = dataclasses.replace(base_cfg, lr=tuning["chosen"]["lr"])
            model_cfg = {**model_cfg, **tuning["chosen"]["config"]}
            base["train"] = base_cfg.to_dict()
        full_cfg = get_model_entry(name).make_config(model_cfg)
        spec = model_task_spec(group.spec, base_cfg.residual)
        params = sum(p.numel() for p in build_model(name, spec, full_cfg).parameters())
        base.update(parameters=params, config=dataclasses.asdict(full_cfg), tuning=tuning)
        for seed in seeds:
            records.append(
                run_seed(
                    name, group, suite, out, dataclasses.replace(base_cfg, seed=seed), model_cfg, resume=resume, log=log
                )
            )
    except (TrainingInterrupted, KeyboardInterrupt):
        raise
    except Exception as exc:  # one broken model must not take the others' results with it
        err = model_dir / "error.txt"
        if writes():
            err.parent.mkdir(parents=True, exist_ok=True)
            err.write_text(traceback.format_exc())
        log(f"  {name}: ERROR {type(exc).__name__}: {exc} (traceback in {err})")
        return new_row(name, "model", status="error", reason=f"{type(exc).__name__}: {exc}", seeds=records, **base)
    row = new_row(name, "model", **base, **aggregate_seeds(records), seeds=records)
    write_json(row, row_file)
    return json.loads(json.dumps(finite(row)))


def _displacement_entry(suite: Suite, group: Group, variant_train, seeds: list[int]) -> dict[str, Any]:
    """A new displacement group of ``results.json`` (rows, intervals and budget are filled in later)."""
    variant = group.variant
    return {
        "id": group.id,
        "task": suite.task,
        "history": group.history,
        "bonds": variant.bonds,
        "data": getattr(group.task.train, "source", None) or repr(group.task.train),
        "sizes": {"train": len(group.task.train), "valid": len(group.task.valid), "test": len(group.task.test)},
        "target_scale": rms(group.task.train.arrays()[K.TARGET_DISP]),
        "zero_mse": group.zero_mse,
        "target_valid_mse": suite.target_valid_ratio * group.valid_zero_mse,
        "rollout_horizons": sorted(suite.rollout_horizons) if group.starts else [],
        "residual": variant_train.residual,
        "input_noise": variant_train.input_noise,
        "start_at_baseline": variant_train.start_at_baseline,
        "variant_train": dict(variant.train),
        "seeds": seeds,
        "bootstrap": None,
        "rollout_bootstrap": None,
        "budget": None,
        "rows": [],
    }


def run_suite(
    suite: Suite,
    out: Path,
    *,
    data: str | None = None,
    resume: bool = False,
    models: list[str] | None = None,
    extra_train: dict[str, Any] | None = None,
    device: str | None = None,
    log: Callable[[str], None] = print,
    report: bool = True,
    seeds: list[int] | None = None,
    shard: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Run ``suite`` into folder ``out``; returns the results dict (also written as ``out/results.json``).

    ``seeds`` replaces the suite's seeds; a ``seed`` in ``extra_train`` means ``seeds=[seed]``.
    ``shard=(i, n)`` runs only the i-th of n deterministic parts of the (variant, model,
    seed) units (:mod:`irrepnet.bench.shard`; every shard scores the baselines);
    :func:`~irrepnet.bench.shard.merge_shards` joins the parts.
    """
    if suite.data == "required" and data is None:
        raise ValueError(
            f"suite {suite.name!r} needs its data file: pass --data PATH (for dmol, the dmol-book "
            "data/paths.npz; see the README's Data section)"
        )
    if suite.data == "egnn-generator":  # a named draw of the simulated task, not a file
        if data not in (None, "egnn-generator"):
            raise ValueError(f"suite {suite.name!r} simulates its data from the EGNN generator's draws; drop --data")
        data = "egnn-generator"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for n in models or []:
        get_model_entry(n)
    names = [n for n in models if not is_parameter_free(n)] if models else suite.model_names()
    extra_train = dict(extra_train or {})
    if "seed" in extra_train:
        seeds = [int(extra_train.pop("seed"))]
    seeds = list(seeds or suite.seeds)
    dev = pick_device(device or extra_train.get("device") or suite.train.get("device", "auto"))
    results_file = out / "results.json"
    started = now()
    if resume and results_file.exists():
        started = json.loads(results_file.read_text()).get("started", started)
    description = suite.description
    if models or extra_train or seeds != suite.seeds:  # the suite file's description would misdescribe this run
        parts = (
            ([f"models {', '.join(names)}"] if models else [])
            + ([f"training {extra_train}"] if extra_train else [])
            + ([f"seeds {seeds}"] if seeds != suite.seeds else [])
        )
        description += f" [run with overrides: {'; '.join(parts)}]"
    results = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "suite": {
            "name": suite.name,
            "description": description,
            "file": suite.file,
            "models": names,
            "train": suite.train,
            "variants": [dataclasses.asdict(v) for v in suite.variants],
            "seeds": seeds,
            "tune": dataclasses.asdict(suite.tune),
            "bootstrap_block": suite.bootstrap_block,
            "bootstrap_resamples": suite.bootstrap_resamples,
            **({"sizes": suite.sizes} if suite.sizes else {}),
        },
        "provenance": provenance(str(dev)),
        "started": started,
        "finished": None,
        "groups": [],
    }
    mine = None
    if shard is not None:
        mine = shard_units(suite.variants, names, seeds, shard)
        results["shard"] = {"index": shard[0], "count": shard[1], "units": [list(u) for u in mine]}
        mine = set(mine)
        log(f"[{suite.name}] shard {shard[0]}/{shard[1]}: {len(mine)} (variant, model, seed) units")
    for variant in suite.variants:
        valid_fraction = train_config({**suite.train, **variant.train, **extra_train}).valid_fraction
        group = prepare_group(suite, variant, data, valid_fraction)
        source = (
            E.data_description(group.task.train)["source"]
            if group.energy
            else getattr(group.task.train, "source", "simulated")
        )
        log(
            f"[{suite.name}] {suite.task} {variant.id}: {len(group.task.train)} train / {len(group.task.valid)} valid / "
            f"{len(group.task.test)} test samples; {source}"
        )
        variant_train = train_config({**suite.train, **variant.train, **extra_train})
        entry = (
            E.group_entry(group, variant_train, seeds)
            if group.energy
            else _displacement_entry(suite, group, variant_train, seeds)
        )
        results["groups"].append(entry)
        entry["rows"] = baseline_rows(group, suite, out)
        for row in entry["rows"]:
            m = row["metrics"]
            log(
                f"  {row['name']}: "
                + (
                    f"test MAE energy {m['energy_mae']:.4g} eV, forces {m['forces_mae']:.4g} eV/Å (reference)"
                    if group.energy
                    else f"test MSE {m['test_mse']:.3e} (baseline)"
                )
            )
        if writes():
            finalize_group(entry, out, suite)
        write_json(results, results_file)
        for name in names:
            model_seeds = seeds if mine is None else [s for s in seeds if (variant.id, name, s) in mine]
            if not model_seeds:
                continue  # another shard's
            entry["rows"].append(
                run_model(
                    name,
                    group,
                    suite,
                    out,
                    seeds=model_seeds,
                    resume=resume,
                    extra_train=extra_train,
                    device_name=device,
                    log=log,
                    tune_seed=seeds[0],
                )
            )
            entry["budget"] = budget(entry)
            if writes():  # the other ranks only train along (they read no predictions)
                finalize_group(entry, out, suite)
            write_json(results, results_file)
    results["finished"] = now()
    if not writes():
        return results  # under torchrun, rank 0's results.json is the benchmark's
    validate(json.loads(json.dumps(finite(results))))
    write_json(results, results_file)
    on_disk = json.loads(results_file.read_text())  # as written: non-finite numbers are null there too
    if report:
        from .report import write_all

        write_all(on_disk, out)
    return on_disk
