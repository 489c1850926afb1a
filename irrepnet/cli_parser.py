"""The ``irrepnet`` command line's argument parser: subcommands, their options and help.

Kept apart from the commands (:mod:`irrepnet.cli`) so that building the parser, and so
``irrepnet --help`` and ``--version``, imports nothing heavy: no torch, no e3nn. The
parser only names the subcommand (``args.command``); :func:`irrepnet.cli.main` runs it.
"""

from __future__ import annotations

import argparse

from . import __version__
from .task_names import TASKS


def add_task_args(p: argparse.ArgumentParser, default_history: int = 0) -> None:
    """``--task`` and the options that choose its data (``--data``, ``--target``, ``--pooling``, ``--history``, ``--bonds``)."""
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
    g = p.add_argument_group("data files read through ASE (pip install 'irrepnet[ase]')")
    g.add_argument(
        "--time-step",
        type=float,
        metavar="DT",
        help="twelve_body with a file ase.io reads: the time between frames in the file's unit (default: "
        "the file's 'time' or 'dt' info); written rollouts carry it",
    )
    g.add_argument("--energy-key", help="energy: the info key of each frame's energy (default 'energy')")
    g.add_argument("--forces-key", help="energy: the per-atom array of the forces (default 'forces')")
    g.add_argument("--stress-key", help="energy: the info key of a stress to carry (default: none)")
    g.add_argument(
        "--valid-fraction", type=float, help="energy: share of --data's frames drawn for validation (default 0.1)"
    )
    g.add_argument("--test-fraction", type=float, help="energy: share of --data's frames drawn for test (default 0.1)")
    g.add_argument("--valid-data", metavar="FILE", help="energy: validation frames from this file instead")
    g.add_argument("--test-data", metavar="FILE", help="energy: test frames from this file instead")
    g.add_argument("--split-seed", type=int, help="energy: seed of the random split of --data (default 0)")
    p.set_defaults(default_history=default_history)


#: ``add_task_args`` options that :func:`irrepnet.tasks.load_task` takes under the same name
FILE_OPTIONS = (
    "time_step",
    "energy_key",
    "forces_key",
    "stress_key",
    "valid_fraction",
    "test_fraction",
    "valid_data",
    "test_data",
)


def add_write_extxyz_arg(p: argparse.ArgumentParser, what: str) -> None:
    """``--write-extxyz PATH``: predictions (energy tasks) or a rollout (trajectory tasks) as extended XYZ."""
    p.add_argument(
        "--write-extxyz",
        metavar="PATH",
        help=f"write {what} on the test split as extended XYZ for ASE/OVITO/VMD: energies and forces on "
        "energy tasks, a rollout of positions over the test frames on twelve_body (needs ASE)",
    )


def add_import_arg(p: argparse.ArgumentParser) -> None:
    """``--import MODULE|FILE.py`` (repeatable): models it registers become available."""
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        metavar="MODULE|FILE.py",
        help="import this first (repeatable): models it registers become available",
    )


def add_resume_args(p: argparse.ArgumentParser, what: str) -> None:
    """``--resume`` and ``--overwrite`` for the output folder of ``what`` (a run, a benchmark)."""
    p.add_argument("--resume", action="store_true", help=f"continue the interrupted {what} in --out")
    p.add_argument("--overwrite", action="store_true", help=f"replace an earlier {what} in --out")


def add_train_args(p: argparse.ArgumentParser) -> None:
    """The training options that override a config or suite (epochs, steps, learning rate...)."""
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


def add_verbosity_args(p: argparse.ArgumentParser) -> None:
    """``-v``/``-q``, before or after the subcommand (``irrepnet -q train`` is ``irrepnet train -q``).

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
    add_verbosity_args(parser)
    sub = parser.add_subparsers(dest="command", required=True)  # main() runs COMMANDS[command]

    p = sub.add_parser("models", help="list registered models")
    add_import_arg(p)
    add_task_args(p, default_history=2)

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

    p = sub.add_parser("baselines", help="score the physical baselines on a task")
    add_task_args(p, default_history=2)

    p = sub.add_parser("audit", help="equivariance audit of a model")
    add_import_arg(p)
    p.add_argument("--model", help="a registered model (fresh weights)")
    p.add_argument(
        "--checkpoint",
        help="a best.pt/last.pt of irrepnet train or bench (trained weights); audited on the data it "
        "was trained on (recorded in it) unless --data names other data",
    )
    add_task_args(p, default_history=2)
    add_write_extxyz_arg(p, "the checkpoint's predictions")
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train", help="train one model on a task")
    add_import_arg(p)
    p.add_argument("--model", required=True)
    add_task_args(p, default_history=2)
    p.add_argument("--config", help="TOML file with [train] (training options) and [model] (model options)")
    p.add_argument("--out", required=True, help="output folder (checkpoints, log.jsonl, metrics.json)")
    add_resume_args(p, "run")
    add_train_args(p)
    p.add_argument("--model-set", action="append", metavar="KEY=VALUE", help="a model config option (repeatable)")
    add_write_extxyz_arg(p, "the trained model's predictions")
    p.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="write TensorBoard scalars (loss, learning rate, validation) to DIR (needs: pip install tensorboard)",
    )

    p = sub.add_parser("bench", help="train and compare models: results.json/csv, report.md, plots")
    add_import_arg(p)
    p.add_argument("--suite", help="quick, dmol, nbody, molecules (see --list-suites) or the path of a suite file")
    p.add_argument("--list-suites", action="store_true", help="list the packaged suites, their descriptions and folder")
    p.add_argument("--models", help="comma-separated models (default: the suite's)")
    add_task_args(p, default_history=2)
    p.add_argument("--out", help="output folder (default: a new runs/bench-SUITE)")
    p.add_argument("--seeds", help="comma-separated training seeds (default: the suite's seeds)")
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="run the I-th of N parts of the suite's (variant, model, seed) "
        "units; join the parts with 'irrepnet report --merge'",
    )
    add_resume_args(p, "benchmark")
    add_train_args(p)

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

    p = sub.add_parser("demo", help="simulate a polymer, score baselines, audit every model")
    p.add_argument("--out", default="runs/demo", help="output folder (a new one is made if it is in use)")
    p.add_argument("--models", help="comma-separated models to audit (default: every registered model)")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("export", help="a checkpoint as a .pt2 package that runs with torch alone (torch.export/AOTI)")
    p.add_argument("checkpoint", help="a best.pt/last.pt of irrepnet train or bench")
    p.add_argument(
        "--out", required=True, help="the package file (.pt2); its metadata (.json) and runtime go beside it"
    )
    p.add_argument(
        "--aoti",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compile with AOTInductor (default; needs a C++ compiler, minutes on a CPU); --no-aoti saves the "
        "ExportedProgram",
    )
    p.add_argument("--dtype", choices=("float32", "float64"), help="cast the model first (default: its training dtype)")
    p.add_argument(
        "--periodic",
        action="store_true",
        help="also read cell and edge_cell_shift (periodic images; radius-graph models)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    for p in sub.choices.values():
        add_verbosity_args(p)
    return parser
