"""Benchmark suites: which models, on which task variants, trained how. Read from TOML.

A suite file (``irrepnet/suites/quick.toml``, ``dmol.toml``, ``nbody.toml``: package data,
found by name by :func:`irrepnet.suites.find_suite`; or any file given by its path) has::

    [suite]
    name = "quick"
    description = "..."
    task = "twelve_body"            # or "nbody", or "molecules"/"energy" (energy tasks: see below)
    data = "reference"              # "reference": the task's default data unless --data is given
                                    # (twelve_body: irrepnet's shipped trajectory; nbody: simulated;
                                    # "simulate" means the same); "required": --data FILE must be
                                    # given (the dmol file); "egnn-generator" (nbody): the
                                    # published EGNN generator's initial states and frames;
                                    # task "energy": the path of a file ase.io reads (relative
                                    # to the suite file), or "required" (--data FILE)
    models = ["*"]                  # "*": every registered irrepnet model with trainable parameters;
                                    # peers (other projects' code, irrepnet[peers]) only by name
    exclude = []                    # names to drop from "*"
    seeds = [0, 1, 2]               # every model is trained once per seed; rows show mean and spread
    rollout_horizons = [1, 10, 100] # twelve_body only
    rollout_starts = 8
    target_valid_ratio = 0.1        # time-to-target: valid MSE <= ratio x zero-baseline valid MSE
    bootstrap_block = 20            # frames per block of the block bootstrap over test frames
    bootstrap_resamples = 2000
    speed_graphs = 256              # graphs in the batch whose inference is timed
    n_train = 3000                  # nbody and molecules: training samples (default the task's)
    n_valid = 500                   # molecules and bulk_metal: validation and test molecules or frames
    n_test = 500
    energy_key = "REF_energy"       # task "energy" only: where each frame keeps its energy,
    forces_key = "REF_forces"       # forces and (optional) stress (irrepnet.data.energy_files),
    stress_key = "REF_stress"       # the split (valid_fraction, test_fraction, split_seed) or
    valid_fraction = 0.1            # separate files (valid_data, test_data; relative to the
    test_data = "test.extxyz"       # suite file); a fraction and a file of one split exclude each other

    [train]                         # TrainConfig keys, for every model
    max_steps = 1000

    [tune]                          # optional: a learning-rate grid per model, chosen on validation
    lr = [1e-3, 3e-3, 1e-2]
    steps = 200                     # optimiser steps of each trial (seed `seed`, default the first seed)
    configs = { egnn = [{ hidden = 32 }, { hidden = 64 }] }   # optional size grid per model

    [[variant]]                     # task variants; default one variant with history 0
    id = "history-2"
    history = 2
    bonds = true                    # twelve_body: tell the models the chain's bonds (default false)
    train = { residual = "constant_acceleration" }   # training options of this variant only

    [models.e3nn-reference]         # per-model overrides
    config = { layers = 2 }

    [models."mace-nu1"]             # a row of its own: a registered model under another name
    model = "mace"                  # (ablations: the same family at several configs in one table)
    config = { correlation = 1 }

Every table and key is checked; a typo is an error naming the known keys.

Energy tasks (``molecules``): every model is trained on energies and forces
(``energy_weight``, ``force_weight`` in ``[train]``) and scored by the MAE of the energy
and the forces on the test molecules, against the "atom energies" reference row
(:mod:`irrepnet.bench.energy`). ``"*"`` means every registered energy model. Rollouts,
time-to-target and the displacement options (``residual``, ``input_noise``, history,
bonds) do not apply: the keys ``rollout_horizons``, ``rollout_starts`` and
``target_valid_ratio`` are refused there, as are variants with a history.

Budgets: a suite gives every model of a group the same optimiser steps unless a
``[models.NAME] train`` table changes ``max_steps``, ``epochs``, ``steps_per_epoch``
or ``batch_size``; the results then record the unequal budget and the report says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry import ConfigError, get_model_entry, list_models
from ..suites import SUITE_DIRS, find_suite  # noqa: F401  (re-exported: where suites are found)
from ..tasks import ENERGY_TASKS, PROPERTY_TASKS, TASKS
from ..train.config import TrainConfig, _check_keys, read_toml, train_config

#: [suite] keys of the energy task's file (the ``load_task`` options of the same names; split_seed is its seed)
FILE_KEYS = (
    "energy_key",
    "forces_key",
    "stress_key",
    "valid_fraction",
    "test_fraction",
    "valid_data",
    "test_data",
    "split_seed",
)
SUITE_KEYS = (
    "name",
    "description",
    "task",
    "data",
    "models",
    "exclude",
    "rollout_horizons",
    "rollout_starts",
    "target_valid_ratio",
    "audit_trials",
    "speed_graphs",
    "seeds",
    "bootstrap_block",
    "bootstrap_resamples",
    "n_train",
    "n_valid",
    "n_test",
    *FILE_KEYS,
)
#: [suite] keys that only mean something on displacement tasks (trajectories)
DISPLACEMENT_ONLY_KEYS = ("rollout_horizons", "rollout_starts", "target_valid_ratio")
#: task-size keys and the tasks that take them (:func:`irrepnet.tasks.load_task`)
SIZE_KEYS = {
    "n_train": ("nbody", "molecules", "bulk_metal"),
    "n_valid": ("molecules", "bulk_metal"),
    "n_test": ("molecules", "bulk_metal"),
}
TOP_KEYS = ("suite", "train", "variant", "models", "tune")
VARIANT_KEYS = ("id", "history", "bonds", "train")
MODEL_KEYS = ("train", "config", "model")
TUNE_KEYS = ("lr", "steps", "seed", "configs")
DATA_MODES = ("reference", "simulate", "required", "egnn-generator")
#: training options that set the budget; the runner reports when they differ within a group
BUDGET_KEYS = ("max_steps", "epochs", "steps_per_epoch", "batch_size")


@dataclass
class Variant:
    """A task variant: history length, bonds (:mod:`irrepnet.nn.topology`) and training options of its own."""

    id: str
    history: int = 0
    train: dict[str, Any] = field(default_factory=dict)
    bonds: bool = False


@dataclass
class Tune:
    """A small grid chosen on the validation split at a fixed step budget (``[tune]``)."""

    lr: list[float] = field(default_factory=list)
    steps: int = 200
    seed: int | None = None
    configs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def trials(self, name: str, base_lr: float) -> list[dict[str, Any]]:
        """``[{"lr": x, "config": {...}}, ...]``: the grid of model ``name`` (lr x its size grid)."""
        lrs = list(self.lr) or [base_lr]
        configs = list(self.configs.get(name, [])) or [{}]
        return [{"lr": float(lr), "config": dict(cfg)} for cfg in configs for lr in lrs]

    @property
    def active(self) -> bool:
        return bool(self.lr) or bool(self.configs)


@dataclass
class Suite:
    """A parsed suite; see the module docstring for the file format."""

    name: str
    task: str = "twelve_body"
    description: str = ""
    data: str = "reference"
    models: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=lambda: [Variant("history-0", 0)])
    train: dict[str, Any] = field(default_factory=dict)
    model_overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    rollout_horizons: list[int] = field(default_factory=lambda: [1, 5, 10, 25, 50, 100])
    rollout_starts: int = 8
    target_valid_ratio: float = 0.1
    audit_trials: int = 2
    speed_graphs: int = 256  # graphs in the batch whose inference is timed (irrepnet.metrics.inference_speed)
    seeds: list[int] = field(default_factory=list)  # empty: the [train] seed (default 0)
    bootstrap_block: int = 20
    bootstrap_resamples: int = 2000
    tune: Tune = field(default_factory=Tune)
    file: str | None = None
    n_train: int | None = None  # None: the task's default size
    n_valid: int | None = None
    n_test: int | None = None
    energy_key: str | None = None  # task "energy" only (FILE_KEYS): None is the loader's default
    forces_key: str | None = None
    stress_key: str | None = None
    valid_fraction: float | None = None
    test_fraction: float | None = None
    valid_data: str | None = None
    test_data: str | None = None
    split_seed: int | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"suite {self.name!r}: unknown task {self.task!r}; known: {', '.join(TASKS)}")
        if self.task in PROPERTY_TASKS:  # results, reports and references are displacement or energy ones
            raise ConfigError(
                f"suite {self.name!r}: the bench harness does not run property tasks such as "
                f"{self.task!r} yet; train one model with `irrepnet train --task {self.task}`"
            )
        self._check_sizes()
        self._check_file_keys()
        if self.data not in DATA_MODES and self.task != "energy":
            raise ConfigError(f"suite {self.name!r}: data must be one of {DATA_MODES}, got {self.data!r}")
        if self.data == "egnn-generator" and self.task != "nbody":
            raise ConfigError(
                f'suite {self.name!r}: data = "egnn-generator" (the published EGNN generator\'s '
                f"draws) is an nbody option, not one of task {self.task!r}"
            )
        if self.energy and self.task != "energy" and self.data == "required":
            raise ConfigError(
                f"suite {self.name!r}: task {self.task!r} generates its data (no --data file); "
                'set data = "reference" or drop the key'
            )
        if not self.variants:
            raise ConfigError(f"suite {self.name!r}: needs at least one [[variant]]")
        if self.energy and self.variants == [Variant("history-0", 0)]:  # the default variant, named by its task
            self.variants = [Variant(self.task)]
        ids = [v.id for v in self.variants]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"suite {self.name!r}: variant ids must be unique, got {ids}")
        if any((not isinstance(h, int)) or h < 1 for h in self.rollout_horizons):
            raise ConfigError(f"suite {self.name!r}: rollout_horizons must be integers >= 1")
        if self.rollout_starts < 1 or not self.target_valid_ratio > 0 or self.audit_trials < 1:
            raise ConfigError(
                f"suite {self.name!r}: need rollout_starts >= 1, target_valid_ratio > 0, audit_trials >= 1"
            )
        if isinstance(self.speed_graphs, bool) or not isinstance(self.speed_graphs, int) or self.speed_graphs < 1:
            raise ConfigError(f"suite {self.name!r}: speed_graphs must be an integer >= 1, got {self.speed_graphs!r}")
        if not self.seeds:
            self.seeds = [int(self.train.get("seed", 0))]
        if any(isinstance(s, bool) or not isinstance(s, int) for s in self.seeds) or len(set(self.seeds)) != len(
            self.seeds
        ):
            raise ConfigError(f"suite {self.name!r}: seeds must be distinct integers, got {self.seeds}")
        if self.bootstrap_block < 1 or self.bootstrap_resamples < 100:
            raise ConfigError(f"suite {self.name!r}: need bootstrap_block >= 1 and bootstrap_resamples >= 100")
        if "seed" in self.train and len(self.seeds) > 1:
            raise ConfigError(f"suite {self.name!r}: give either seeds = [...] in [suite] or seed in [train], not both")
        if not isinstance(self.tune, Tune):
            raise ConfigError(f"suite {self.name!r}: [tune] must be a table")
        if self.tune.steps < 1 or any(not lr > 0 for lr in self.tune.lr):
            raise ConfigError(f"suite {self.name!r}: [tune] needs steps >= 1 and learning rates > 0")
        self._check_train(train_config(self.train), "[train]")  # fail now, not after an hour of training
        for v in self.variants:
            self._check_variant(v)
        for name, over in self.model_overrides.items():
            _check_keys(over, MODEL_KEYS, f"[models.{name}]")
            entry = get_model_entry(self._check_alias(name, over))
            entry.make_config(over.get("config"))
            self._check_train(train_config({**self.train, **over.get("train", {})}), f"[models.{name}] train")
        for name, configs in self.tune.configs.items():
            entry = get_model_entry(self.registered_name(name))
            if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
                raise ConfigError(f"[tune] configs.{name} must be a list of tables, e.g. [{{ hidden = 32 }}]")
            for cfg in configs:
                entry.make_config({**self.model_config_for(name), **cfg})

    @property
    def energy(self) -> bool:
        """Whether the task is an energy task (models predict an energy and its forces)."""
        return self.task in ENERGY_TASKS

    @property
    def sizes(self) -> dict[str, int]:
        """The task sizes the suite sets (``n_train``, ``n_valid``, ``n_test``), as keywords of ``load_task``."""
        return {k: getattr(self, k) for k in SIZE_KEYS if getattr(self, k) is not None}

    def _check_file_keys(self) -> None:
        given = [k for k in FILE_KEYS if getattr(self, k) is not None]
        if given and self.task != "energy":
            raise ConfigError(
                f"suite {self.name!r}: {', '.join(given)} read frames from a file, an option of task "
                f'"energy", not of {self.task!r}: drop them'
            )
        if self.task == "energy" and self.data in ("reference", "simulate", "egnn-generator"):
            raise ConfigError(
                f'suite {self.name!r}: task "energy" reads your frames: set data = "path/to/file.extxyz" '
                '(relative to the suite file) or data = "required" and pass --data FILE'
            )

    def task_options(self, data: str | None = None) -> dict[str, Any]:
        """``load_task`` keywords of the suite's data: on task "energy" the file (``data``, the
        command line's ``--data``, replaces the suite's) and its keys and split; else none."""
        if self.task != "energy":
            return {}
        out = {k: getattr(self, k) for k in FILE_KEYS if k != "split_seed" and getattr(self, k) is not None}
        if self.split_seed is not None:
            out["seed"] = self.split_seed
        return {"data": data if data is not None else self.data, **out}

    def _check_sizes(self) -> None:
        for key, tasks in SIZE_KEYS.items():
            value = getattr(self, key)
            if value is None:
                continue
            if self.task not in tasks:
                raise ConfigError(
                    f"suite {self.name!r}: {key} sets a size of the {' and '.join(tasks)} task(s); "
                    f"task {self.task!r} has fixed splits: drop {key}"
                )
            least = 2 if key == "n_test" else 1  # the intervals resample test samples: at least two
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"suite {self.name!r}: {key} must be an integer >= {least}, got {value!r}")

    def _check_train(self, cfg: TrainConfig, where: str) -> None:
        """Energy tasks: refuse the displacement-only training options now, not when the first model starts."""
        if not self.energy:
            return
        from ..train.energy import displacement_only_options

        refused = displacement_only_options(cfg)
        if refused:
            raise ConfigError(
                f"suite {self.name!r} {where}: {', '.join(refused)} apply to displacement tasks, not "
                f"to the energy task {self.task!r}: remove them"
            )

    def _check_variant(self, v: Variant) -> None:
        if self.energy and (v.history or v.bonds):
            raise ConfigError(
                f"suite {self.name!r} variant {v.id!r}: task {self.task!r} has static geometries; "
                "drop history and bonds from its [[variant]]"
            )
        self._check_train(train_config({**self.train, **v.train}), f"variant {v.id!r} train")

    def model_names(self) -> list[str]:
        """The models to train, in order: ``"*"`` expands to every registered trainable irrepnet model
        (on an energy task: every registered energy model).

        Peers (:mod:`irrepnet.models.peers`) are never part of ``"*"``, installed or not:
        a suite that compares with them names them.
        """
        names: list[str] = []
        for name in self.models:
            if name == "*":
                names += [
                    n
                    for n in list_models(peers=False)
                    if n not in names and not is_parameter_free(n) and (get_model_entry(n).energy or not self.energy)
                ]
            else:
                get_model_entry(self.registered_name(name))  # unknown names fail here with suggestions
                if name not in names:
                    names.append(name)
        # the physical baselines are rows of every table already; they are never trained
        return [n for n in names if n not in self.exclude and not is_parameter_free(n)]

    def train_config_for(
        self, name: str, extra: dict[str, Any] | None = None, variant: Variant | None = None
    ) -> TrainConfig:
        """Suite ``[train]``, then the variant's, then the model's, then ``extra`` (command-line) options."""
        over = self.model_overrides.get(name, {}).get("train", {})
        return train_config({**self.train, **(variant.train if variant else {}), **over, **(extra or {})})

    def registered_name(self, name: str) -> str:
        """The registered model a row is built from: ``name`` itself, or the ``model`` of its ``[models.NAME]``
        table when the row is an alias (an ablation row such as ``mace-nu1``)."""
        return str(self.model_overrides.get(name, {}).get("model", name))

    def _check_alias(self, name: str, over: dict[str, Any]) -> str:
        """Check a ``[models.NAME]`` table's ``model`` key; return the registered name it builds."""
        if "model" not in over:
            return name
        base = over["model"]
        if not isinstance(base, str):
            raise ConfigError(f'[models.{name}] model must be the name of a registered model, e.g. model = "mace"')
        if base != name and name in list_models(peers=True):
            raise ConfigError(
                f'[models.{name}] model = "{base}": {name!r} is a registered model itself; give the row another name'
            )
        get_model_entry(base)  # unknown names fail here with suggestions
        return base

    def model_config_for(self, name: str) -> dict[str, Any]:
        return dict(self.model_overrides.get(name, {}).get("config", {}))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PARAMETER_FREE = ("zero-displacement", "constant-velocity", "constant-acceleration")


def is_parameter_free(name: str) -> bool:
    """The physical baselines: scored as baseline rows, never trained."""
    return name in PARAMETER_FREE


def load_suite(name_or_path: str) -> Suite:
    """Read and check a suite file (see the module docstring)."""
    path = find_suite(name_or_path)
    doc = read_toml(path)
    _check_keys(doc, TOP_KEYS, str(path))
    head = doc.get("suite", {})
    _check_keys(head, SUITE_KEYS, f"{path} [suite]")
    if head.get("task") in ENERGY_TASKS:
        given = [k for k in DISPLACEMENT_ONLY_KEYS if k in head]
        if given:
            raise ConfigError(
                f"{path} [suite]: {', '.join(given)} apply to trajectory tasks; the energy task "
                f"{head['task']!r} has no rollouts and no time-to-target: remove them"
            )
    variants = []
    for i, v in enumerate(doc.get("variant", [])):
        _check_keys(v, VARIANT_KEYS, f"{path} [[variant]] {i}")
        h = int(v.get("history", 0))
        if not isinstance(v.get("train", {}), dict):
            raise ConfigError(f'{path} [[variant]] {i}: train must be a table, e.g. train = {{ residual = "none" }}')
        bonds = v.get("bonds", False)
        if not isinstance(bonds, bool):
            raise ConfigError(f"{path} [[variant]] {i}: bonds must be true or false, got {bonds!r}")
        if bonds and head.get("task") != "twelve_body":
            raise ConfigError(f'{path} [[variant]] {i}: bonds = true needs task = "twelve_body" (a bonded chain)')
        variants.append(Variant(str(v.get("id", f"history-{h}")), h, dict(v.get("train", {})), bonds))
    kwargs = {k: head[k] for k in SUITE_KEYS if k in head}
    if head.get("task") == "energy":  # files named in the suite are found beside it, wherever bench runs
        for key in ("data", "valid_data", "test_data"):
            value = kwargs.get(key)
            if isinstance(value, str) and value not in DATA_MODES and not Path(value).is_absolute():
                kwargs[key] = str(path.parent / value)
    kwargs.setdefault("name", path.stem)
    if variants:
        kwargs["variants"] = variants
    tune = doc.get("tune", {})
    if not isinstance(tune, dict):
        raise ConfigError(f"{path}: [tune] must be a table")
    _check_keys(tune, TUNE_KEYS, f"{path} [tune]")
    kwargs["tune"] = Tune(
        lr=[float(x) for x in tune.get("lr", [])],
        steps=int(tune.get("steps", 200)),
        seed=tune.get("seed"),
        configs=dict(tune.get("configs", {})),
    )
    return Suite(
        **kwargs, train=dict(doc.get("train", {})), model_overrides=dict(doc.get("models", {})), file=str(path)
    )


def adhoc_suite(
    task: str,
    models: list[str],
    *,
    history: int = 0,
    train: dict[str, Any] | None = None,
    data_required: bool = False,
    seeds: list[int] | None = None,
    bonds: bool = False,
) -> Suite:
    """The suite of ``irrepnet bench --task T --models a,b,c`` (no file)."""
    variant = (
        Variant(task)
        if task in ENERGY_TASKS
        # static geometries: no history to name the variant by
        else Variant(f"history-{history}" + ("-bonds" if bonds else ""), history, bonds=bonds)
    )
    return Suite(
        name=f"{task}-adhoc",
        task=task,
        models=models,
        variants=[variant],
        train=dict(train or {}),
        data="required" if data_required or task == "energy" else "reference",  # energy: --data FILE
        seeds=list(seeds or []),
        rollout_horizons=[1, 5, 10, 25, 50, 100] if task == "twelve_body" else [],
    )
