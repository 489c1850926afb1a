"""Benchmark suites: which models, on which task variants, trained how. Read from TOML.

A suite file (``benchmarks/quick.toml``, ``dmol.toml``, ``nbody.toml``) has::

    [suite]
    name = "quick"
    description = "..."
    task = "twelve_body"            # or "nbody"
    data = "simulate"               # "simulate": built-in simulator unless --data is given;
                                    # "required": --data FILE must be given (the dmol file)
    models = ["*"]                  # "*": every registered model with trainable parameters
    exclude = []                    # names to drop from "*"
    rollout_horizons = [1, 10, 100] # twelve_body only
    rollout_starts = 8
    target_valid_ratio = 0.1        # time-to-target: valid MSE <= ratio x zero-baseline valid MSE

    [train]                         # TrainConfig keys, for every model
    epochs = 8

    [[variant]]                     # task variants; default one variant with history 0
    id = "history-2"
    history = 2

    [models.e3nn-reference]         # per-model overrides
    train = { max_steps = 100 }
    config = { layers = 2 }

Every table and key is checked; a typo is an error naming the known keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..registry import ConfigError, get_model_entry, list_models
from ..tasks import TASKS
from ..train.config import TrainConfig, _check_keys, read_toml, train_config

#: folders searched for ``--suite NAME``: the repository's benchmarks/ and ./benchmarks
SUITE_DIRS = (Path(__file__).resolve().parents[2] / "benchmarks", Path("benchmarks"))
SUITE_KEYS = ("name", "description", "task", "data", "models", "exclude", "rollout_horizons", "rollout_starts",
              "target_valid_ratio", "audit_trials")
TOP_KEYS = ("suite", "train", "variant", "models")
VARIANT_KEYS = ("id", "history")
MODEL_KEYS = ("train", "config")
DATA_MODES = ("simulate", "required")


@dataclass
class Variant:
    id: str
    history: int = 0


@dataclass
class Suite:
    """A parsed suite; see the module docstring for the file format."""

    name: str
    task: str = "twelve_body"
    description: str = ""
    data: str = "simulate"
    models: List[str] = field(default_factory=lambda: ["*"])
    exclude: List[str] = field(default_factory=list)
    variants: List[Variant] = field(default_factory=lambda: [Variant("history-0", 0)])
    train: Dict[str, Any] = field(default_factory=dict)
    model_overrides: Dict[str, Dict[str, Dict[str, Any]]] = field(default_factory=dict)
    rollout_horizons: List[int] = field(default_factory=lambda: [1, 5, 10, 25, 50, 100])
    rollout_starts: int = 8
    target_valid_ratio: float = 0.1
    audit_trials: int = 2
    file: Optional[str] = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"suite {self.name!r}: unknown task {self.task!r}; known: {', '.join(TASKS)}")
        if self.data not in DATA_MODES:
            raise ConfigError(f"suite {self.name!r}: data must be one of {DATA_MODES}, got {self.data!r}")
        if not self.variants:
            raise ConfigError(f"suite {self.name!r}: needs at least one [[variant]]")
        ids = [v.id for v in self.variants]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"suite {self.name!r}: variant ids must be unique, got {ids}")
        if any((not isinstance(h, int)) or h < 1 for h in self.rollout_horizons):
            raise ConfigError(f"suite {self.name!r}: rollout_horizons must be integers >= 1")
        if self.rollout_starts < 1 or not self.target_valid_ratio > 0 or self.audit_trials < 1:
            raise ConfigError(f"suite {self.name!r}: need rollout_starts >= 1, target_valid_ratio > 0, audit_trials >= 1")
        train_config(self.train)  # fail now, not after an hour of training
        for name, over in self.model_overrides.items():
            entry = get_model_entry(name)
            _check_keys(over, MODEL_KEYS, f"[models.{name}]")
            entry.make_config(over.get("config"))
            train_config({**self.train, **over.get("train", {})})

    def model_names(self) -> List[str]:
        """The models to train, in order: ``"*"`` expands to every registered trainable model."""
        names: List[str] = []
        for name in self.models:
            if name == "*":
                names += [n for n in list_models() if n not in names and not is_parameter_free(n)]
            else:
                get_model_entry(name)  # unknown names fail here with suggestions
                if name not in names:
                    names.append(name)
        # the physical baselines are rows of every table already; they are never trained
        return [n for n in names if n not in self.exclude and not is_parameter_free(n)]

    def train_config_for(self, name: str, extra: Optional[Dict[str, Any]] = None) -> TrainConfig:
        over = self.model_overrides.get(name, {}).get("train", {})
        return train_config({**self.train, **over, **(extra or {})})

    def model_config_for(self, name: str) -> Dict[str, Any]:
        return dict(self.model_overrides.get(name, {}).get("config", {}))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


PARAMETER_FREE = ("zero-displacement", "constant-velocity", "constant-acceleration")


def is_parameter_free(name: str) -> bool:
    """The physical baselines: scored as baseline rows, never trained."""
    return name in PARAMETER_FREE


def find_suite(name_or_path: str) -> Path:
    """Path of a suite given as a file or a name (``quick`` -> ``benchmarks/quick.toml``)."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise FileNotFoundError(f"suite file {p} not found")
        return p
    for folder in SUITE_DIRS:
        candidate = folder / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    known = sorted({f.stem for d in SUITE_DIRS if d.is_dir() for f in d.glob("*.toml")})
    raise FileNotFoundError(f"no suite named {name_or_path!r}; known suites: {', '.join(known) or 'none found'}; "
                            "or pass the path of a .toml file")


def load_suite(name_or_path: str) -> Suite:
    """Read and check a suite file (see the module docstring)."""
    path = find_suite(name_or_path)
    doc = read_toml(path)
    _check_keys(doc, TOP_KEYS, str(path))
    head = doc.get("suite", {})
    _check_keys(head, SUITE_KEYS, f"{path} [suite]")
    variants = []
    for i, v in enumerate(doc.get("variant", [])):
        _check_keys(v, VARIANT_KEYS, f"{path} [[variant]] {i}")
        h = int(v.get("history", 0))
        variants.append(Variant(str(v.get("id", f"history-{h}")), h))
    kwargs = {k: head[k] for k in SUITE_KEYS if k in head}
    kwargs.setdefault("name", path.stem)
    if variants:
        kwargs["variants"] = variants
    return Suite(**kwargs, train=dict(doc.get("train", {})), model_overrides=dict(doc.get("models", {})),
                 file=str(path))


def adhoc_suite(task: str, models: List[str], *, history: int = 0, train: Optional[Dict[str, Any]] = None,
                data_required: bool = False) -> Suite:
    """The suite of ``irrepnet bench --task T --models a,b,c`` (no file)."""
    return Suite(name=f"{task}-adhoc", task=task, models=models, variants=[Variant(f"history-{history}", history)],
                 train=dict(train or {}), data="required" if data_required else "simulate",
                 rollout_horizons=[1, 5, 10, 25, 50, 100] if task == "twelve_body" else [])
