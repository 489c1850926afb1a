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

A unit (variant x model x seed) that raises does not end the run: its row becomes
``status = "error"``, the traceback goes to ``error.txt`` in the unit's folder, the
other units go on, and the run ends with :class:`~irrepnet.bench.failures.RowsFailed`
(``N of M rows failed ...``) once everything is written; ``--resume`` re-runs only
the failed and unfinished units (:mod:`irrepnet.bench.failures`). Progress, one line
when a unit starts and one when it ends with its result, time and the ETA of the run,
goes to the logger ``irrepnet.bench.runner`` (:mod:`irrepnet.bench.progress`).

The file formats are in :mod:`irrepnet.bench.schema`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import keys as K
from .. import metrics as M
from ..provenance import provenance
from ..registry import ConfigError, build_model, get_model_entry
from ..train import TrainingInterrupted, make_trainer
from ..train.config import train_config
from ..train.data_record import check_folder_data
from ..train.device import peak_memory_mb, pick_device, reset_peak_memory
from ..train.normalization import model_task_spec, rms
from . import energy as E
from .compare import finalize_group
from .failures import Phase, RowsFailed, clear_failure, failed_rows, final_line, record_failure
from .failures import reason as failure_reason
from .groups import Group, audit_batch, audit_dict, baseline_rows, prepare_group, reference_row, score, slug  # noqa: F401
from .progress import UnitProgress, forwarded_to
from .records import aggregate_seeds, budget, finite, new_row, now, write_json, writes
from .schema import SCHEMA, SCHEMA_VERSION, validate
from .shard import shard_units
from .suite import Suite, is_parameter_free

logger = logging.getLogger(__name__)


def _log(level: int, message: str) -> None:
    """Log on rank 0 alone under torchrun (the other ranks train along and would repeat every line)."""
    if writes():
        logger.log(level, message)


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
) -> dict[str, Any] | None:
    """Train each point of the suite's grid for ``[tune] steps`` steps; pick the lowest validation MSE.

    Returns ``{"steps", "seed", "trials": [{"lr", "config", "valid_mse"}], "chosen": {"lr", "config"}}``
    (written to ``tune.json``), or ``None`` when the suite has no grid.
    """
    if not suite.tune.active:
        return None
    path = out / group.id / slug(name) / "tune.json"
    if resume and path.exists():
        return json.loads(path.read_text())
    trials = []
    for trial in suite.tune.trials(name, base_cfg.lr):
        cfg = dataclasses.replace(
            base_cfg, lr=trial["lr"], max_steps=suite.tune.steps, seed=seed, patience=None, progress=False
        )
        try:
            result = make_trainer(suite.registered_name(name), group.task, cfg, {**model_cfg, **trial["config"]}).fit()
            best = min((r["valid_mse"] for r in result.history if r.get("valid_mse") is not None), default=math.inf)
        except FloatingPointError:  # a learning rate that diverges is a bad choice, not an error
            best = math.inf
        trials.append({**trial, "valid_mse": best})
        _log(logging.INFO, f"  {name}: tune lr {trial['lr']:g} {trial['config'] or ''} -> valid MSE {best:.3e}")
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
def _seed_dir(out: Path, group: Group, name: str, seed: int) -> Path:
    return out / group.id / slug(name) / f"seed-{seed}"


def run_seed(
    name: str,
    group: Group,
    suite: Suite,
    out: Path,
    cfg,
    model_cfg: dict[str, Any],
    *,
    resume: bool,
    phase: Phase | None = None,
) -> tuple[dict[str, Any], str]:
    """Train, score, audit and time one seed; returns its record (also ``seed.json``) and a one-line summary.

    ``phase`` follows the unit through ``build``, ``train``, ``score``, ``audit`` and
    ``speed``, so that the caller can say where an exception came from. With ``resume``
    a training that saved ``last.pt`` continues from it; a seed folder without one (a
    unit that failed before its first checkpoint) holds nothing to continue and starts afresh.
    """
    phase = phase or Phase()
    run_dir = _seed_dir(out, group, name, cfg.seed)
    can_continue = (run_dir / "last.pt").exists()
    if resume and not can_continue and run_dir.exists() and writes():
        shutil.rmtree(run_dir)  # e.g. a log.jsonl of a failed first epoch would refuse a fresh training
    phase.name = "build"
    trainer = make_trainer(suite.registered_name(name), group.task, cfg, model_cfg, out_dir=run_dir)
    device = trainer.device
    reset_peak_memory(device)
    phase.name = "train"
    result = trainer.fit(resume=resume and can_continue)
    peak, kind = peak_memory_mb(device)
    phase.name = "score"
    valid = E.best_valid_figures(result.history, result.best_epoch) if group.energy else None
    ev = score(result.model, group, suite, run_dir, device, trainer.dtype, valid)
    phase.name = "audit"
    ev["equivariance"] = audit_dict(result.model, audit_batch(group), suite.audit_trials)
    phase.name = "speed"
    speed = M.inference_speed(
        result.model, group.task.test, batch_size=suite.speed_graphs, device=device, dtype=trainer.dtype
    )
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
            **({"notices": result.notices} if result.notices else {}),  # options capped, as announced
        },
        "artifacts": {"log": rel("log.jsonl"), "checkpoint": rel("best.pt"), "predictions": rel("predictions.npz")},
    }
    write_json(record, run_dir / "seed.json")
    if writes():
        clear_failure(run_dir)
    m = record["metrics"]
    verdicts = ", ".join(
        f"{d} {'pass' if v['passed'] is not False else 'FAIL'}" for d, v in record["equivariance"].items()
    )
    figures = E.result_text(m) if group.energy else f"test MSE {m['test_mse']:.3e} ({m['mse_vs_zero']:.3g} x zero)"
    summary = f"{figures}, {result.steps} steps, best epoch {result.best_epoch}; audit {verdicts}"
    return json.loads(json.dumps(finite(record))), summary


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
    tune_seed: int | None = None,
    progress: UnitProgress | None = None,
) -> dict[str, Any]:
    """Tune (on ``suite.tune.seed``, else ``tune_seed``, else the first of ``seeds``), train every seed, one row.

    A shard passes the suite's first seed as ``tune_seed``, so that every shard of a model
    makes the same choice as an unsharded run. An exception while the row is built or
    tuned makes it a row in error at once; one in a seed is noted, and the other seeds
    still run (:mod:`irrepnet.bench.failures`). ``progress`` counts each seed as a unit.
    """
    progress = progress or UnitProgress(len(seeds))
    model_dir = out / group.id / slug(name)
    row_file = model_dir / "row.json"
    if resume and row_file.exists():
        _log(logging.INFO, progress.skip(name, len(seeds)))
        return json.loads(row_file.read_text())
    extra = dict(extra_train)
    if device_name:
        extra["device"] = device_name
    phase = Phase("build")
    base: dict[str, Any] = {}
    try:
        base_cfg = suite.train_config_for(name, extra, group.variant)
        model_cfg = suite.model_config_for(name)
        try:
            trainer = make_trainer(
                suite.registered_name(name), group.task, base_cfg, model_cfg
            )  # checks model, task and residual
        except ConfigError as exc:
            _log(logging.INFO, progress.skip(name, len(seeds), f"skipped ({exc})"))
            return new_row(name, "model", status="skipped", reason=str(exc))
        base.update(symmetry=trainer.model.model.symmetry.value, train=base_cfg.to_dict())
        del trainer
        phase.name = "tune"
        chosen_seed = (
            suite.tune.seed if suite.tune.seed is not None else (tune_seed if tune_seed is not None else seeds[0])
        )
        tuning = tune_model(name, group, suite, out, base_cfg, model_cfg, chosen_seed, resume=resume)
        if tuning is not None:
            base_cfg = dataclasses.replace(base_cfg, lr=tuning["chosen"]["lr"])
            model_cfg = {**model_cfg, **tuning["chosen"]["config"]}
            base["train"] = base_cfg.to_dict()
        phase.name = "build"
        full_cfg = get_model_entry(suite.registered_name(name)).make_config(model_cfg)
        spec = model_task_spec(group.spec, base_cfg.residual)
        params = sum(p.numel() for p in build_model(suite.registered_name(name), spec, full_cfg).parameters())
        base.update(parameters=params, config=dataclasses.asdict(full_cfg), tuning=tuning)
    except (TrainingInterrupted, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - one broken model must not take the others' results with it
        note = record_failure(exc, phase.name, model_dir, out, write=writes())
        _log(logging.ERROR, progress.skip(name, len(seeds), f"FAILED while in {phase.name}: {note['error']}"))
        return new_row(name, "model", status="error", reason=failure_reason([note]), errors=[note], **base)
    records: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for seed in seeds:
        label = f"{name} seed {seed}"
        if resume and (_seed_dir(out, group, name, seed) / "seed.json").exists():
            _log(logging.INFO, progress.skip(label))
            records.append(json.loads((_seed_dir(out, group, name, seed) / "seed.json").read_text()))
            continue
        _log(logging.INFO, progress.start(label))
        unit = Phase()
        try:
            record, summary = run_seed(
                name, group, suite, out, dataclasses.replace(base_cfg, seed=seed), model_cfg, resume=resume, phase=unit
            )
        except (TrainingInterrupted, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the other seeds and models still run
            folder = _seed_dir(out, group, name, seed)
            failures.append(record_failure(exc, unit.name, folder, out, write=writes(), seed=seed))
            where = f"traceback in {folder / 'error.txt'}"
            _log(logging.ERROR, progress.finish(f"FAILED while in {unit.name}: {failures[-1]['error']} ({where})"))
            continue
        records.append(record)
        _log(logging.INFO, progress.finish(summary))
    if failures:
        return new_row(
            name, "model", status="error", reason=failure_reason(failures), errors=failures, seeds=records, **base
        )
    if writes():
        clear_failure(model_dir)
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
    log: Callable[[str], None] | None = None,
    report: bool = True,
    seeds: list[int] | None = None,
    shard: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Run ``suite`` into folder ``out``; returns the results dict (also written as ``out/results.json``).

    ``seeds`` replaces the suite's seeds; a ``seed`` in ``extra_train`` means ``seeds=[seed]``.
    ``shard=(i, n)`` runs only the i-th of n deterministic parts of the (variant, model,
    seed) units (:mod:`irrepnet.bench.shard`; every shard scores the baselines);
    :func:`~irrepnet.bench.shard.merge_shards` joins the parts.

    Progress goes to the logger ``irrepnet.bench.runner`` (INFO: each unit's start, and
    its result, time and the ETA; ERROR: failures); ``log``, a callable, receives the
    same lines as well (:func:`irrepnet.bench.progress.forwarded_to`).

    Raises
    ------
    irrepnet.bench.failures.RowsFailed
        after ``results.json`` and the report are written, when any row is in error
        (its ``results`` attribute holds them); the message is the run's last line,
        ``N of M rows failed ...``. ``--resume`` re-runs only the failed units.
    """
    with forwarded_to(log):
        return _run_suite(
            suite,
            Path(out),
            data=data,
            resume=resume,
            models=models,
            extra_train=extra_train,
            device=device,
            report=report,
            seeds=seeds,
            shard=shard,
        )


def _run_suite(
    suite: Suite,
    out: Path,
    *,
    data: str | None,
    resume: bool,
    models: list[str] | None,
    extra_train: dict[str, Any] | None,
    device: str | None,
    report: bool,
    seeds: list[int] | None,
    shard: tuple[int, int] | None,
) -> dict[str, Any]:
    if suite.data == "required" and data is None:
        raise ValueError(
            f"suite {suite.name!r} needs its data file: pass --data PATH (for dmol, the dmol-book "
            "data/paths.npz, CC BY-NC, not shipped; see the data guide, docs/guide/data.md)"
        )
    if suite.data == "egnn-generator":  # a named draw of the simulated task, not a file
        if data not in (None, "egnn-generator"):
            raise ValueError(f"suite {suite.name!r} simulates its data from the EGNN generator's draws; drop --data")
        data = "egnn-generator"
    out.mkdir(parents=True, exist_ok=True)
    for n in models or []:
        get_model_entry(suite.registered_name(n))
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
        _log(logging.INFO, f"[{suite.name}] shard {shard[0]}/{shard[1]}: {len(mine)} (variant, model, seed) units")

    def seeds_of(variant_id: str, name: str) -> list[int]:
        return seeds if mine is None else [s for s in seeds if (variant_id, name, s) in mine]

    progress = UnitProgress(sum(len(seeds_of(v.id, n)) for v in suite.variants for n in names))
    for variant in suite.variants:
        valid_fraction = train_config({**suite.train, **variant.train, **extra_train}).valid_fraction
        group = prepare_group(suite, variant, data, valid_fraction)
        if resume:  # the finished rows are kept as they are: they must come from this data
            check_folder_data(out / group.id, group.task.identity)
        source = (
            E.data_description(group.task.train)["source"]
            if group.energy
            else getattr(group.task.train, "source", "simulated")
        )
        _log(
            logging.INFO,
            f"[{suite.name}] {suite.task} {variant.id}: {len(group.task.train)} train / {len(group.task.valid)} valid / "
            f"{len(group.task.test)} test samples; {source}",
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
            if m is None:  # a baseline in error, logged as it failed
                continue
            _log(
                logging.INFO,
                f"  {row['name']}: "
                + (
                    f"test MAE energy {m['energy_mae']:.4g} eV, forces {m['forces_mae']:.4g} eV/Å (reference)"
                    if group.energy
                    else f"test MSE {m['test_mse']:.3e} (baseline)"
                ),
            )
        if writes():
            finalize_group(entry, out, suite)
        write_json(results, results_file)
        for name in names:
            model_seeds = seeds_of(variant.id, name)
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
                    tune_seed=seeds[0],
                    progress=progress,
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
    failed, total = failed_rows(on_disk)
    if failed:
        raise RowsFailed(final_line(failed, total, out), on_disk)
    return on_disk
