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

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__, cli_logging
from .optional import MissingDependencyError
from .task_names import ENERGY_TASKS, PROPERTY_TASKS, TASKS

USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, MissingDependencyError, FloatingPointError)
# (ConfigError, CheckpointError and SchemaError are ValueErrors, UnknownModelError a KeyError; a
# FloatingPointError is a loss gone non-finite, from the data's scale or the options: its message says which)


def _add_task_args(p: argparse.ArgumentParser, default_history: int = 0) -> None:
    p.add_argument(
        "--task",
        choices=TASKS,
        default="twelve_body",
        help="molecules: small molecules with EMT energies and forces (needs ASE: pip install ase); "
        "qm9: one QM9 property, read from --data",
    )
    p.add_argument(
        "--data",
        help="twelve_body: trajectory file in the dmol format (npz with key 'arr'); "
        "default: the shipped reference trajectory (one stored run of the polymer simulator, "
        "sha256-checked: the same bytes on every machine). qm9: the folder of PyG's raw QM9 files "
        "(gdb9.sdf, gdb9.sdf.csv, uncharacterized.txt; never downloaded). nbody: 'egnn-generator' "
        "replays the published EGNN generator's initial states (default: irrepnet's draws)",
    )
    p.add_argument("--target", help="qm9: the property (mu alpha homo lumo gap r2 zpve U0 U H G Cv; default homo)")
    p.add_argument(
        "--pooling",
        choices=("sum", "mean"),
        default="sum",
        help="qm9: pool the per-atom outputs by their sum (default, as EGNN) or mean",
    )
    p.add_argument(
        "--history",
        type=int,
        default=None,
        help=f"twelve_body: frames of velocity history given to the models (default {default_history})",
    )
    p.add_argument(
        "--bonds",
        action="store_true",
        help="twelve_body: tell the models that the beads are bonded in chain order (each edge gets "
        "its chain separation: bonded, angle partners, other)",
    )
    p.set_defaults(default_history=default_history)


def _add_import_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        metavar="MODULE|FILE.py",
        help="import this first (repeatable): models it registers become available",
    )


def _add_resume_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--resume", action="store_true", help=f"continue the interrupted {what} in --out")
    p.add_argument("--overwrite", action="store_true", help=f"replace an earlier {what} in --out")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training options (override the config/suite)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--max-steps", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--patience", type=int, help="early stopping after this many epochs without improvement")
    g.add_argument("--seed", type=int)
    g.add_argument("--dtype", choices=("float32", "float64"))
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    g.add_argument(
        "--residual",
        metavar="NAME",
        # checked by the training config (irrepnet.train.config.RESIDUALS), not by choices=:
        # that list lives beside torch code; a test keeps this help in step with it
        help="learn a correction to this physical extrapolation: constant_velocity, constant_acceleration "
        "or force_difference (default none)",
    )
    g.add_argument(
        "--start-at-baseline",
        action="store_true",
        default=None,
        help="scale the correction by a learnable gate initialised at 0: training starts at the baseline",
    )
    g.add_argument(
        "--input-noise",
        type=float,
        metavar="SIGMA",
        help="random-walk input noise for stable rollouts, in units of the target RMS (default 0: off)",
    )
    g.add_argument(
        "--unroll-steps",
        type=int,
        metavar="K",
        help="k-step unrolled loss on trajectory tasks (default 1: one-step training)",
    )
    g.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="train with torch.compile (irrepnet.compile; compilation takes 10 s to minutes on a CPU)",
    )
    g.add_argument("--set", action="append", metavar="KEY=VALUE", help="any training option (repeatable)")
    g.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's choice; 1 is steadiest on a busy machine)"
    )


def _import_plugins(args) -> None:
    """``--import`` modules or .py files, so that models registered in the user's own code are known."""
    import importlib
    import importlib.util

    for item in getattr(args, "imports", None) or []:
        path = Path(item)
        if item.endswith(".py"):
            if not path.is_file():
                raise FileNotFoundError(f"--import file {path} not found")
            name = f"irrepnet_plugin_{abs(hash(str(path.resolve())))}"
            if name in sys.modules:  # imported once per process: registering twice is an error
                continue
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(item)
            except ModuleNotFoundError as exc:
                raise ValueError(f"--import {item}: {exc}; give an importable module or a .py file") from None


def _history(args) -> int:
    """``--history`` if given; else the command's default on twelve_body and 0 on nbody (no history)."""
    if args.history is not None:
        return args.history
    return args.default_history if args.task == "twelve_body" else 0


def _qm9_args(args) -> dict:
    """``target`` and ``pooling`` for the qm9 task; refused on the others."""
    if args.task == "qm9":
        return {"target": args.target, "pooling": args.pooling}
    if args.target is not None or args.pooling != "sum":
        raise ValueError(f"--target/--pooling choose the qm9 task's property; drop them for --task {args.task}")
    return {}


def _spec_for(args) -> object:
    from .tasks import task_spec

    return task_spec(args.task, history=_history(args), bonds=args.bonds, **_qm9_args(args))


def _load_task(args):
    """The task of ``--task``, ``--data``, ``--history``, ``--bonds`` (and qm9's ``--target``, ``--pooling``)."""
    from .tasks import load_task

    return load_task(args.task, data=args.data, history=_history(args), bonds=args.bonds, **_qm9_args(args))


def _count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def cmd_models(args) -> int:
    """``irrepnet models``: list the registered models."""
    from .registry import ConfigError, build_model, get_model_entry, list_models

    spec = _spec_for(args)
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
    task = _load_task(args)
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
        task = _load_task(args)
        model = build_model(args.model, task.spec)
    ok = True
    for report in audit_all(model, _audit_batch(task), trials=args.trials, seed=args.seed):
        print(report)
        ok &= report.passed
    return 0 if ok else 1


def _fresh_dir(path: Path) -> Path:
    """``path`` if unused, else ``path-1``, ``path-2``...: a run never overwrites an earlier one."""
    if not path.exists() or not any(path.iterdir()):
        return path
    i = 1
    while (path.parent / f"{path.name}-{i}").exists():
        i += 1
    return path.parent / f"{path.name}-{i}"


def _parse_sets(items) -> dict:
    """``--set key=value`` pairs, values read as TOML (``lr=3e-3``, ``schedule="plateau"``, ``patience=5``)."""
    from .train.config import tomllib

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value  # a bare word: a string
    return out


def _set_threads(args) -> None:
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)


def _check_scatter_backend() -> None:
    """A scatter backend named in ``$IRREPNET_SCATTER_BACKEND`` must be known and import.

    Checked before any data is loaded: otherwise a missing torch-scatter surfaces only at
    the first message passing of an irregular graph, after minutes of data generation.
    """
    if os.environ.get("IRREPNET_SCATTER_BACKEND"):  # irrepnet.scatter.ENV_VAR, read without importing torch
        from .scatter import resolve_backend

        resolve_backend()  # MissingDependencyError (one line, exit 2) for a named backend that does not import


def _train_overrides(args) -> dict:
    over = _parse_sets(getattr(args, "set", None))
    for key in (
        "epochs",
        "max_steps",
        "batch_size",
        "lr",
        "seed",
        "dtype",
        "device",
        "patience",
        "residual",
        "start_at_baseline",
        "input_noise",
        "unroll_steps",
        "compile",
        "tensorboard",  # train only: bench has no such flag, its runs would share the folder
    ):
        value = getattr(args, key, None)
        if value is not None:
            over[key] = value
    return over


def _lock_out(path: Path) -> None:
    """Take ``--out``'s run lock (:mod:`irrepnet.runlock`; again: a no-op); ``main`` releases it.

    Under torchrun rank 0 takes it, and a refusal ends every rank.
    """
    from .runlock import FolderLocked, RunLock
    from .train import distributed

    ctx = distributed.current()
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"--out {path} is a file, not a folder; give a folder path for --out")
    refused = None
    if ctx.is_main:
        try:
            RunLock(path).acquire()
        except FileExistsError as exc:
            refused = exc
    if ctx.any(refused is not None):
        raise refused or FolderLocked(f"--out {path} is in use by another run (see rank 0's error)")


def _prepare_out(path: Path, *, resume: bool, overwrite: bool, what: str) -> Path:
    """The output folder of a run: locked, then new, resumed, or replaced only when asked.

    The lock (:mod:`irrepnet.runlock`) comes first, so that of two runs started together
    into one folder the second stops here, before it can replace or write anything; ``main``
    releases it when the command ends. Under torchrun rank 0 takes it and every rank checks
    the folder (so that a refusal ends all of them alike) before rank 0 alone replaces or
    creates it.
    """
    import shutil

    from .runlock import LOCK_NAME
    from .train import distributed

    ctx = distributed.current()
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other; pick one")
    _lock_out(path)
    others = [p for p in path.iterdir() if p.name != LOCK_NAME]
    replace = False
    if others:
        if resume:
            return path
        if not overwrite:
            raise FileExistsError(
                f"{path} already holds a {what}; pass --resume to continue it, --overwrite to "
                f"replace it, or choose another --out"
            )
        replace = True
    elif resume:
        raise FileNotFoundError(f"nothing to resume in {path}; run without --resume first")
    ctx.barrier()
    if ctx.is_main and replace:
        for item in others:  # everything but the lock
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    ctx.barrier()
    return path


def cmd_train(args) -> int:
    """``irrepnet train``: train one registered model on a task."""
    from . import keys as K
    from . import metrics as M
    from .registry import get_model_entry
    from .train import TrainingInterrupted, distributed, read_run_config, train_config, train_registered

    _set_threads(args)
    file_train, file_model = read_run_config(args.config) if args.config else ({}, {})
    cfg = train_config({**file_train, **_train_overrides(args)})
    model_cfg = {**file_model, **_parse_sets(args.model_set)}
    get_model_entry(args.model).make_config(model_cfg)  # fail before loading data
    if cfg.tensorboard is not None:  # likewise a missing tensorboard package
        from .train.tensorboard_log import summary_writer_class

        summary_writer_class(cfg.tensorboard)
    ctx = distributed.init_from_env(cfg.device)  # under torchrun: join its process group (DDP training)
    if not ctx.is_main:  # the other ranks' progress would repeat rank 0's
        cli_logging.quiet_below_warning()
    say = print if ctx.is_main else (lambda *a, **k: None)
    _lock_out(Path(args.out))  # before loading data: a second run into this folder stops at once
    task = _load_task(args)
    out = _prepare_out(Path(args.out), resume=args.resume, overwrite=args.overwrite, what="training run")
    ranks = f" on {ctx.world_size} ranks (DistributedDataParallel)" if ctx.active else ""
    say(f"training {args.model} on {args.task} (history {_history(args)}) into {out}{ranks}")
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
        "history": _history(args),
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

    _set_threads(args)
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
        suite = adhoc_suite(args.task, models, history=_history(args), bonds=args.bonds)
    for m in models or []:
        get_model_entry(m)
    seeds = _parse_seeds(args.seeds) if args.seeds else None
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
    out = Path(args.out) if args.out else _fresh_dir(Path("runs") / f"bench-{suite.name}")
    out = _prepare_out(out, resume=args.resume, overwrite=args.overwrite, what="benchmark")
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
            extra_train=_train_overrides(args),
            device=args.device,
            seeds=seeds,
            shard=shard,
        )  # its progress goes through logging (irrepnet.bench.*), to the CLI's one handler
    except TrainingInterrupted as exc:
        print(f"irrepnet: {exc}; continue the benchmark with --resume --out {out}", file=sys.stderr)
        return 130
    say(f"wrote {out / 'results.json'}, {out / 'results.csv'}, {out / 'report.md'}")
    return 0


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--seeds expects comma-separated integers such as 0,1,2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds expects distinct integers such as 0,1,2, got {text!r}")
    return seeds


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

    out = _fresh_dir(Path(args.out))
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


def _add_verbosity_args(p: argparse.ArgumentParser) -> None:
    """``-v``/``-q``, before or after the subcommand (``irrepnet -q train ...`` = ``irrepnet train ... -q``).

    SUPPRESS as default: a subcommand's parser that does not see the flag must not reset
    what the main parser read.
    """
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=1,
        default=argparse.SUPPRESS,
        help="debug messages too (models: each model's description)",
    )
    g.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        default=argparse.SUPPRESS,
        help="warnings and errors only; results are still printed",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``irrepnet`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(prog="irrepnet", description="E(3)-equivariant networks: build, audit, compare")
    parser.add_argument("--version", action="version", version=f"irrepnet {__version__}")
    _add_verbosity_args(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list registered models")
    _add_import_arg(p)
    _add_task_args(p, default_history=2)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("simulate", help="write a dataset with a built-in simulator")
    p.add_argument("system", choices=["polymer", "nbody"])
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--beads", type=int, default=12)
    p.add_argument("--dim", type=int, choices=[2, 3], default=2)
    p.add_argument("--frames", type=int, default=2048)
    p.add_argument("--gamma", type=float, default=0.0, help="Langevin friction while recording (0: constant energy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=3000, help="nbody: training samples")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("baselines", help="score the physical baselines on a task")
    _add_task_args(p, default_history=2)
    p.set_defaults(func=cmd_baselines)

    p = sub.add_parser("audit", help="equivariance audit of a model")
    _add_import_arg(p)
    p.add_argument("--model", help="a registered model (fresh weights)")
    p.add_argument(
        "--checkpoint",
        help="a best.pt/last.pt of irrepnet train or bench (trained weights); audited on the data it "
        "was trained on (recorded in it) unless --data names other data",
    )
    _add_task_args(p, default_history=2)
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("train", help="train one model on a task")
    _add_import_arg(p)
    p.add_argument("--model", required=True)
    _add_task_args(p, default_history=2)
    p.add_argument("--config", help="TOML file with [train] (training options) and [model] (model options)")
    p.add_argument("--out", required=True, help="output folder (checkpoints, log.jsonl, metrics.json)")
    _add_resume_args(p, "run")
    _add_train_args(p)
    p.add_argument("--model-set", action="append", metavar="KEY=VALUE", help="a model config option (repeatable)")
    p.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="write TensorBoard scalars (loss, learning rate, validation) to DIR (needs: pip install tensorboard)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="train and compare models: results.json/csv, report.md, plots")
    _add_import_arg(p)
    p.add_argument("--suite", help="quick, dmol, nbody, molecules (see --list-suites) or the path of a suite file")
    p.add_argument("--list-suites", action="store_true", help="list the packaged suites, their descriptions and folder")
    p.add_argument("--models", help="comma-separated models (default: the suite's)")
    _add_task_args(p, default_history=2)
    p.add_argument("--out", help="output folder (default: a new runs/bench-SUITE)")
    p.add_argument("--seeds", help="comma-separated training seeds (default: the suite's seeds)")
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="run the I-th of N parts of the suite's (variant, model, seed) "
        "units; join the parts with 'irrepnet report --merge'",
    )
    _add_resume_args(p, "benchmark")
    _add_train_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "report", help="re-render report.md, results.csv and plots from a results.json; or merge the shards of a suite"
    )
    p.add_argument(
        "folder",
        help="a bench output folder (or its results.json); with --merge, the new folder for the merged results",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="SHARD_DIR",
        help="the output folders of 'irrepnet bench --shard I/N' (all N of them) to merge into FOLDER",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="simulate a polymer, score baselines, audit every model")
    p.add_argument("--out", default="runs/demo", help="output folder (a new one is made if it is in use)")
    p.add_argument("--models", help="comma-separated models to audit (default: every registered model)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    for p in sub.choices.values():
        _add_verbosity_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``irrepnet`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.task_given = any(a == "--task" or a.startswith("--task=") for a in argv)
    args.verbosity = getattr(args, "verbosity", 0)
    cli_logging.configure(args.verbosity)
    try:
        _import_plugins(args)
        _check_scatter_backend()
        return args.func(args)
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
