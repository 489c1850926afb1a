"""From the parsed command line to what the commands use: plugins, the task, training overrides.

Helpers shared by the subcommands of :mod:`irrepnet.cli`, kept apart so that the command
module holds the commands. Like the CLI, this module imports nothing heavy at the top
(torch, e3nn and the data modules are imported inside the functions that need them), so
that ``irrepnet --help`` stays instant.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def import_plugins(args) -> None:
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


def history_of(args) -> int:
    """``--history`` if given; else the command's default on twelve_body and 0 on nbody (no history)."""
    if args.history is not None:
        return args.history
    return args.default_history if args.task == "twelve_body" else 0


def qm9_options(args) -> dict:
    """``target`` and ``pooling`` for the qm9 task; refused on the others."""
    if args.task == "qm9":
        return {"target": args.target, "pooling": args.pooling}
    if args.target is not None or args.pooling != "sum":
        raise ValueError(f"--target/--pooling choose the qm9 task's property; drop them for --task {args.task}")
    return {}


def spec_from_args(args) -> object:
    """The task spec (inputs, outputs, sizes) of ``--task``, ``--history``, ``--bonds``, without loading data."""
    from .tasks import task_spec

    return task_spec(args.task, history=history_of(args), bonds=args.bonds, **qm9_options(args))


def file_options(args) -> dict:
    """The options of data read through ASE that were given (``--time-step``, ``--energy-key``...)."""
    from .cli_parser import FILE_OPTIONS

    out = {k: getattr(args, k) for k in FILE_OPTIONS if getattr(args, k, None) is not None}
    if getattr(args, "split_seed", None) is not None:
        out["seed"] = args.split_seed
    return out


def task_from_args(args):
    """The task of ``--task``, ``--data``, ``--history``, ``--bonds`` (and qm9's ``--target``, ``--pooling``;
    the energy task's keys and splits)."""
    from .tasks import load_task

    return load_task(
        args.task, data=args.data, history=history_of(args), bonds=args.bonds, **qm9_options(args), **file_options(args)
    )


def write_extxyz(args, model, task, say=print) -> None:
    """``--write-extxyz PATH``: the model's test predictions or rollout as extended XYZ (:mod:`irrepnet.ase_out`)."""
    if getattr(args, "write_extxyz", None):
        from .ase_out import write_predictions

        say(f"wrote {write_predictions(model, task, args.write_extxyz)}")


def parse_sets(items) -> dict:
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


def set_threads(args) -> None:
    """``--threads N``: torch's CPU threads for this process (1 is steadiest on a busy machine)."""
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)


def check_scatter_backend() -> None:
    """A scatter backend named in ``$IRREPNET_SCATTER_BACKEND`` must be known and import.

    Checked before any data is loaded: otherwise a missing torch-scatter surfaces only at
    the first message passing of an irregular graph, after minutes of data generation.
    """
    if os.environ.get("IRREPNET_SCATTER_BACKEND"):  # irrepnet.scatter.ENV_VAR, read without importing torch
        from .scatter import resolve_backend

        resolve_backend()  # MissingDependencyError (one line, exit 2) for a named backend that does not import


def train_overrides(args) -> dict:
    """Training options given on the command line: ``--set key=value`` pairs, then the named flags (which win)."""
    over = parse_sets(getattr(args, "set", None))
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


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` as distinct integers; anything else is a one-line error."""
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--seeds expects comma-separated integers such as 0,1,2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds expects distinct integers such as 0,1,2, got {text!r}")
    return seeds
