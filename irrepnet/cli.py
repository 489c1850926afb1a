"""The ``irrepnet`` command line (also ``python -m irrepnet``).

Subcommands
-----------
``models``     the registry: each model's irreps in/out, claimed symmetry, parameters.
``simulate``   write a dataset with the built-in simulators (polymer, nbody).
``baselines``  physical baselines (zero, constant velocity/acceleration, Linear) on a task.
``audit``      the equivariance audit of a model (fresh or from a checkpoint), in float32 and float64.
``train``      train one model on a task (checkpoints, resumable, a per-epoch log).
``bench``      train, evaluate, audit and time several models: results.json/csv, report.md, plots.
``report``     re-render a bench folder's report, CSV and plots from its results.json.
``demo``       simulate, score the baselines, audit every model (no training).
``export``     a checkpoint as a torch.export/AOTInductor package that runs without irrepnet.

Errors in what the user gave (a missing file, an unknown model, bad options, a missing
optional package) end with a one-line ``irrepnet: error: ...`` and exit status 2, not a
traceback.

Progress goes through :mod:`logging` (loggers under ``irrepnet.``): the CLI puts one
handler on the ``irrepnet`` logger, INFO to stderr by default, ``-v`` DEBUG, ``-q``
WARNING only. Results stay on stdout and errors on stderr whatever the level.

Starting is cheap: torch, e3nn and the heavy modules are imported inside the commands
that need them, so ``irrepnet --help``, ``irrepnet CMD --help`` and ``--version`` answer
at once. Keep it so: import nothing heavy at the top of this file (a test checks).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import cli_logging
from .cli_args import (
    check_scatter_backend,
    file_options,
    history_of,
    import_plugins,
    parse_seeds,
    parse_sets,
    set_threads,
    spec_from_args,
    task_from_args,
    train_overrides,
    write_extxyz,
)
from .cli_out import fresh_dir, lock_out, prepare_out
from .cli_parser import build_parser
from .optional import MissingDependencyError
from .task_names import ENERGY_TASKS, PROPERTY_TASKS

USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, MissingDependencyError, FloatingPointError)
# (ConfigError, CheckpointError and SchemaError are ValueErrors, UnknownModelError a KeyError; a
# FloatingPointError is a loss gone non-finite, from the data's scale or the options: its message says which)


def _count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def cmd_models(args) -> int:
    """``irrepnet models``: list the registered models."""
    from .registry import ConfigError, build_model, get_model_entry, list_models

    spec = spec_from_args(args)
    print(f"models for task {spec.name} (inputs: {', '.join(f'{k} {v}' for k, v in spec.inputs.items())})")
    print(f"{'name':<24} {'symmetry':<9} {'params':>8}  irreps in -> out")
    peers = []
    for name in list_models():
        entry = get_model_entry(name)
        if entry.peer:
            peers.append(name)
        if not entry.available:  # an optional package is missing: say how to install it
            print(f"{name:<24} {'-':<9} {'-':>8}  not installed: {entry.install_command}")
            continue
        try:
            m = build_model(name, spec)
        except ConfigError as exc:
            print(f"{name:<24} {'-':<9} {'-':>8}  not available: {exc}")
            continue
        ins = ", ".join(f"{k}: {v}" for k, v in m.irreps_in.items())
        outs = ", ".join(f"{k}: {v}" for k, v in m.irreps_out.items())
        print(f"{name:<24} {m.symmetry.value:<9} {_count_params(m):>8}  {ins} -> {outs}")
        if args.verbosity > 0:
            print(f"{'':<24} {entry.description}")
    if peers:
        print(f"peers (other projects' implementations, for comparison): {', '.join(peers)}")
    return 0


def cmd_simulate(args) -> int:
    """``irrepnet simulate``: write a dataset with a built-in simulator."""
    from . import data as D

    out = Path(args.out)
    if args.system == "polymer":
        target = out if out.suffix == ".npz" else out.with_name(out.name + ".npz")  # as save_trajectory names it
        if target.exists() and not args.overwrite:  # before simulating, and in the CLI's words
            raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
        cfg = D.PolymerConfig(n_beads=args.beads, dim=args.dim, n_frames=args.frames, seed=args.seed, gamma=args.gamma)
        traj = D.simulate_polymer(cfg)
        D.save_trajectory(out, traj, overwrite=args.overwrite)
        stats = D.trajectory_stats(traj)
        print(
            f"wrote {out}: {traj.shape[0]} frames of {traj.shape[1]} beads in {args.dim}-D; "
            f"mean |dx| {stats['mean_abs_dx']:.4g}, bond length {stats['bond_mean']:.3f}"
        )
        return 0
    import numpy as np

    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    arrays = {}
    for split in ("train", "valid", "test"):
        ds = D.nbody(split, n_train=args.n_train)
        for k, v in ds.arrays().items():
            arrays[f"{split}_{k}"] = v
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out}: nbody train/valid/test ({args.n_train} training samples); arrays: {sorted(arrays)}")
    return 0


def _baseline_rows(task) -> dict:
    from .data import evaluate_baselines

    rows = {"test": evaluate_baselines(task.test)}
    if task.valid is not None:
        rows["valid"] = evaluate_baselines(task.valid)
    return rows


def cmd_baselines(args) -> int:
    """``irrepnet baselines``: score the physical baselines on a task."""
    if args.task in ENERGY_TASKS + PROPERTY_TASKS:
        raise ValueError(
            f"the physical baselines extrapolate trajectories; task {args.task!r} has none (it is "
            "scored on energies or a molecular property): train a model on it instead"
        )
    task = task_from_args(args)
    rows = _baseline_rows(task)
    print(
        f"physical baselines on {args.task} ({getattr(task.train, 'source', 'simulated')}); "
        f"MSE of the displacement per coordinate"
    )
    for split, res in rows.items():
        for name, mse in res.items():
            print(f"  {split:<6} {name:<24} {mse:.3e}")
    return 0


def _audit_batch(task, n_graphs: int = 4):
    n = min(n_graphs, len(task.test))
    from .batch import check_batch

    data = task.test.batch(list(range(n)))
    check_batch(data)
    return data


def cmd_audit(args) -> int:
    """``irrepnet audit``: the equivariance audit of a model (or of a checkpoint)."""
    from .equivariance import audit_all
    from .registry import build_model

    if args.checkpoint:
        from .train import load_trained

        model, ck = load_trained(args.checkpoint)
        meta = ck["meta"]
        if args.model and args.model != meta["model"]:
            raise ValueError(f"{args.checkpoint} holds model {meta['model']!r}, not {args.model!r}; drop --model")
        if args.task_given and args.task != meta["task"]["name"]:
            raise ValueError(f"{args.checkpoint} was trained on {meta['task']['name']!r}, not {args.task!r}")
        args.task = meta["task"]["name"]
        args.history = meta["task"]["history"]
        args.bonds = bool(meta["task"].get("bonds", False))
        if args.task == "qm9":
            args.target, args.pooling = meta["task"].get("target"), meta["task"].get("pooling", "sum")
        print(
            f"audit of {meta['model']} from {args.checkpoint} (trained on {args.task}, history {args.history}"
            f"{', bonds' if args.bonds else ''})"
        )
        from .train.data_record import task_of_checkpoint

        # the data it was trained on (one log line says which), unless --data chooses other data
        task = task_of_checkpoint(ck, args.checkpoint, data=args.data)
    else:
        if not args.model:
            raise ValueError("give --model NAME (a fresh model) or --checkpoint FILE (a trained one)")
        task = task_from_args(args)
        model = build_model(args.model, task.spec)
    write_extxyz(args, model, task)
    ok = True
    for report in audit_all(model, _audit_batch(task), trials=args.trials, seed=args.seed):
        print(report)
        ok &= report.passed
    return 0 if ok else 1


def cmd_train(args) -> int:
    """``irrepnet train``: train one registered model on a task."""
    from . import keys as K
    from . import metrics as M
    from .registry import get_model_entry
    from .train import TrainingInterrupted, distributed, read_run_config, train_config, train_registered

    set_threads(args)
    file_train, file_model = read_run_config(args.config) if args.config else ({}, {})
    cfg = train_config({**file_train, **train_overrides(args)})
    model_cfg = {**file_model, **parse_sets(args.model_set)}
    get_model_entry(args.model).make_config(model_cfg)  # fail before loading data
    if cfg.tensorboard is not None:  # likewise a missing tensorboard package
        from .train.tensorboard_log import summary_writer_class

        summary_writer_class(cfg.tensorboard)
    ctx = distributed.init_from_env(cfg.device)  # under torchrun: join its process group (DDP training)
    if not ctx.is_main:  # the other ranks' progress would repeat rank 0's
        cli_logging.quiet_below_warning()
    say = print if ctx.is_main else (lambda *a, **k: None)
    if args.write_extxyz:  # a task that cannot be written is refused before loading and training, not after
        from .ase_out import check_writable

        check_writable(spec_from_args(args))
    lock_out(Path(args.out))  # before loading data: a second run into this folder stops at once
    task = task_from_args(args)
    out = prepare_out(Path(args.out), resume=args.resume, overwrite=args.overwrite, what="training run")
    ranks = f" on {ctx.world_size} ranks (DistributedDataParallel)" if ctx.active else ""
    say(f"training {args.model} on {args.task} (history {history_of(args)}) into {out}{ranks}")
    try:
        result = train_registered(args.model, task, cfg, model_cfg, out_dir=out, resume=args.resume)
    except TrainingInterrupted as exc:
        print(f"irrepnet: {exc}", file=sys.stderr)
        return 130
    energy, prop = task.spec.target == K.ENERGY, task.spec.target == K.PROPERTY
    if energy:  # molecules: energy and force errors in eV and eV/Angstrom
        acc = {f"test_{k}": v for k, v in M.energy_force_errors(result.model, task.test).items()}
    elif prop:  # qm9: the property's MAE in its unit (meV, D, bohr^3...)
        acc = {f"test_{k}": v for k, v in M.property_errors(result.model, task.test).items()}
        acc.update(
            target=task.spec.extras["target"], unit=task.spec.extras["unit"], pooling=task.spec.extras["pooling"]
        )
    else:
        pred, true = M.predict(result.model, task.test)
        acc = M.accuracy(pred, true)
    summary = {
        "model": args.model,
        "task": args.task,
        "history": history_of(args),
        "bonds": args.bonds,
        "epochs": len(result.history),
        "steps": result.steps,
        "best_epoch": result.best_epoch,
        "stopped": result.stopped,
        "train_time_s": result.train_time_s,
        "train_step_ms": result.train_step_ms,
        **acc,
    }
    if result.notices:  # options capped or changed, as announced on stderr
        summary["notices"] = result.notices
    if ctx.active:
        summary["ranks"] = ctx.world_size
    if ctx.is_main:
        (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    if energy:
        say(
            f"done: {result.steps} steps ({result.stopped}), best epoch {result.best_epoch}; test MAE energy "
            f"{acc['test_energy_mae']:.4g} eV ({acc['test_energy_per_atom_mae']:.4g} eV/atom), forces "
            f"{acc['test_forces_mae']:.4g} eV/Å"
        )
    elif prop:
        say(
            f"done: {result.steps} steps ({result.stopped}), best epoch {result.best_epoch}; test MAE "
            f"{acc['target']} {acc['test_property_mae']:.4g} {acc['unit']} (RMSE {acc['test_property_rmse']:.4g})"
        )
    else:
        say(
            f"done: {result.steps} steps ({result.stopped}), best epoch {result.best_epoch}; test MSE "
            f"{acc['test_mse']:.3e} ({_times_zero(acc['mse_vs_zero'])}), R2 {acc['r2']:.4f}"
        )
    say(f"wrote {out / 'best.pt'}, {out / 'log.jsonl'}, {out / 'metrics.json'}")
    if ctx.is_main:
        write_extxyz(args, result.model, task, say)
    return 0


def _times_zero(ratio: float | None) -> str:
    """The MSE relative to predicting no motion; ``None`` where the truth is no motion."""
    return "no motion to predict" if ratio is None else f"{ratio:.3g} x zero displacement"


def cmd_bench(args) -> int:
    """``irrepnet bench``: run a benchmark suite (or list the suites)."""
    if args.list_suites:  # before the heavy imports below: listing reads TOML only
        from .suites import format_suites, list_suites

        print(format_suites(list_suites()))
        return 0
    from .bench import adhoc_suite, load_suite, run_suite
    from .registry import get_model_entry
    from .train import TrainingInterrupted

    set_threads(args)
    if args.suite and args.task_given:
        raise ValueError("give either --suite NAME or --task with --models, not both")
    if args.suite and args.bonds:
        raise ValueError(
            "--bonds goes with --task/--models; a suite says it per variant: bonds = true in its [[variant]]"
        )
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    if args.suite:
        suite = load_suite(args.suite)
    else:
        if not models:
            raise ValueError(
                "give --suite NAME (quick, dmol, nbody, molecules or a .toml file) or --task T --models a,b,c"
            )
        suite = adhoc_suite(args.task, models, history=history_of(args), bonds=args.bonds)
    if args.time_step is not None:
        raise ValueError("--time-step is kept for rollouts written by train/audit --write-extxyz; bench writes none")
    suite_files = {("split_seed" if k == "seed" else k): v for k, v in file_options(args).items()}
    if suite_files:  # the energy task's keys and split; the suite refuses them on other tasks
        import dataclasses

        suite = dataclasses.replace(suite, **suite_files)
    for m in models or []:
        get_model_entry(m)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    if seeds and args.seed is not None:
        raise ValueError("give either --seeds a,b,c or --seed S, not both")
    shard = None
    if args.shard:
        from .bench.shard import parse_shard

        shard = parse_shard(args.shard)
    from .train import distributed

    ctx = distributed.init_from_env(args.device or "auto")  # under torchrun: every training is data-parallel
    if not ctx.is_main:  # the other ranks' progress would repeat rank 0's
        cli_logging.quiet_below_warning()
    if ctx.active and not args.out:
        raise ValueError("under torchrun give --out: every rank must use the same folder")
    out = Path(args.out) if args.out else fresh_dir(Path("runs") / f"bench-{suite.name}")
    out = prepare_out(out, resume=args.resume, overwrite=args.overwrite, what="benchmark")
    say = print if ctx.is_main else (lambda *a, **k: None)
    say(
        f"benchmark {suite.name} into {out}"
        + (f" on {ctx.world_size} ranks (DistributedDataParallel)" if ctx.active else "")
    )
    try:
        run_suite(
            suite,
            out,
            data=args.data,
            resume=args.resume,
            models=models,
            extra_train=train_overrides(args),
            device=args.device,
            seeds=seeds,
            shard=shard,
        )  # its progress goes through logging (irrepnet.bench.*), to the CLI's one handler
    except TrainingInterrupted as exc:
        print(f"irrepnet: {exc}; continue the benchmark with --resume --out {out}", file=sys.stderr)
        return 130
    say(f"wrote {out / 'results.json'}, {out / 'results.csv'}, {out / 'report.md'}")
    return 0


def cmd_report(args) -> int:
    """``irrepnet report``: render the report and plots of a run's ``results.json``."""
    from .bench.report import load_results, write_all

    if args.merge:
        from .bench.shard import merge_shards
        from .runlock import RunLock

        out = Path(args.folder)
        RunLock(out, option="the merge folder").acquire()  # released by main
        merged = merge_shards(out, [Path(f) for f in args.merge])
        rows = sum(len(g["rows"]) for g in merged["groups"])
        print(f"merged {len(args.merge)} shards into {out / 'results.json'} ({rows} rows), {out / 'report.md'}")
        return 0
    folder = Path(args.folder)
    results = load_results(folder / "results.json" if folder.is_dir() else folder)
    paths = write_all(results, folder if folder.is_dir() else folder.parent)
    print(f"wrote {paths['report']}, {paths['csv']} and {len(paths['plots'])} plots")
    return 0


def cmd_demo(args) -> int:
    """``irrepnet demo``: simulate a polymer, score the baselines, audit every model."""
    from . import data as D
    from .equivariance import audit_all
    from .registry import ConfigError, build_model, list_models
    from .tasks import load_task

    out = fresh_dir(Path(args.out))
    out.mkdir(parents=True, exist_ok=True)
    traj_file = out / "polymer.npz"
    D.save_trajectory(traj_file, D.simulate_polymer(D.PolymerConfig(seed=args.seed)))
    print(f"simulated a 12-bead polymer: {traj_file}")
    summary = {"trajectory": str(traj_file), "baselines": {}, "audit": {}}
    for history in (0, 2):
        task = load_task("twelve_body", data=str(traj_file), history=history)
        res = _baseline_rows(task)["test"]
        summary["baselines"][f"history={history}"] = res
        print(f"baselines, history {history}: " + ", ".join(f"{k} {v:.3e}" for k, v in res.items()))
    batch = _audit_batch(task)
    for name in args.models.split(",") if args.models else list_models():
        try:
            model = build_model(name, task.spec)
        except ConfigError as exc:
            print(f"audit {name:<24} skipped: {exc}")
            continue
        reports = audit_all(model, batch)
        summary["audit"][name] = [r.to_dict() for r in reports]
        worst = max((c.rel_error for r in reports for c in r.checks if c.claimed), default=0.0)  # mlp claims nothing
        print(
            f"audit {name:<24} claims {model.symmetry.value:<6} "
            f"{'pass' if all(r.passed for r in reports) else 'FAIL'} (worst relative error {worst:.1e})"
        )
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'demo.json'}")
    return 0


def cmd_export(args) -> int:
    """``irrepnet export``: a checkpoint as a ``.pt2`` package (AOTInductor or ExportedProgram)."""
    from .export import export_model

    set_threads(args)
    result = export_model(args.checkpoint, args.out, aoti=args.aoti, dtype=args.dtype, periodic=args.periodic)
    meta = result.metadata
    graph = meta["graph"]
    how = f"AOTInductor, compiled in {result.compile_s:.0f} s" if meta["aoti"] else "ExportedProgram"
    if meta.get("aoti_fallback"):
        how += f"; AOTInductor failed: {meta['aoti_fallback']}"
    edges = f"radius graph, cutoff {graph['cutoff']:.6g}" if graph["kind"] == "radius" else f"{graph['kind']} graph"
    print(
        f"exported {meta['model']} ({meta['task']}, {meta['dtype']}) to {result.path} ({how}; traced in "
        f"{result.trace_s:.0f} s)"
    )
    print(f"  inputs {', '.join(meta['inputs'])} -> outputs {', '.join(meta['outputs'])}; {edges}")
    print(
        f"  metadata {result.path.with_suffix('.json')}, torch-only runtime {result.path.with_name(result.path.stem + '_runtime.py')}"
    )
    return 0


COMMANDS = {
    "models": cmd_models,
    "simulate": cmd_simulate,
    "baselines": cmd_baselines,
    "audit": cmd_audit,
    "train": cmd_train,
    "bench": cmd_bench,
    "report": cmd_report,
    "demo": cmd_demo,
    "export": cmd_export,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``irrepnet`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.task_given = any(a == "--task" or a.startswith("--task=") for a in argv)
    args.verbosity = getattr(args, "verbosity", 0)
    cli_logging.configure(args.verbosity)
    try:
        import_plugins(args)
        check_scatter_backend()
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"irrepnet: error: {msg}", file=sys.stderr)
        return 2
    finally:
        runlock = sys.modules.get("irrepnet.runlock")  # a command that took its output folder gives it back
        if runlock is not None:
            runlock.release_all()
        dist = sys.modules.get("torch.distributed")  # only a command that imported it can have joined
        if dist is not None and dist.is_available() and dist.is_initialized():  # under torchrun: leave cleanly
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
