"""Model registry: one decorator makes a model known to the CLI, benchmarks and tests.

Example
-------
>>> from dataclasses import dataclass
>>> from irrepnet.registry import register_model
>>> @dataclass
... class MyConfig:
...     hidden: int = 32
>>> @register_model("my-model", config=MyConfig, description="my new architecture")
... def build_my_model(config: MyConfig, task):
...     return MyModel(task.inputs, hidden=config.hidden)

``build_model("my-model", task, hidden=64)`` then builds it with an override, and
the conformance suite in ``tests/test_conformance.py`` picks it up with no new code.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

from .interface import IrrepsModel, TaskSpec


class UnknownModelError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[[Any, TaskSpec], IrrepsModel]
    config: type
    description: str
    tasks: Optional[tuple]  # task names it supports; None means any

    def default_config(self):
        return self.config()

    def make_config(self, overrides: Optional[Mapping[str, Any]] = None):
        """Default config with ``overrides`` applied; unknown keys are an error."""
        overrides = dict(overrides or {})
        known = {f.name for f in dataclasses.fields(self.config)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"model {self.name!r} has no config option(s) {unknown}; known options: {sorted(known)}"
            )
        return dataclasses.replace(self.config(), **overrides)


_REGISTRY: Dict[str, ModelEntry] = {}


def register_model(name: str, *, config: type, description: str = "", tasks=None):
    """Decorator registering ``builder(config, task) -> IrrepsModel`` under ``name``.

    ``config`` must be a dataclass whose defaults are the model's default config.
    """
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config for model {name!r} must be a dataclass type, got {config!r}")

    def decorator(builder):
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"a model named {name!r} is already registered; choose another name")
        _REGISTRY[name] = ModelEntry(name, builder, config, description or (builder.__doc__ or "").strip().split("\n")[0],
                                     tuple(tasks) if tasks else None)
        return builder

    return decorator


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (for tests and interactive sessions)."""
    if name not in _REGISTRY:
        raise UnknownModelError(f"cannot unregister {name!r}: no such model")
    del _REGISTRY[name]


def _load_builtin_models() -> None:
    # Imported lazily so that `import irrepnet.registry` stays cheap and cycle-free.
    from . import models  # noqa: F401  (registers on import)


def get_model_entry(name: str) -> ModelEntry:
    _load_builtin_models()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_models() -> List[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def build_model(name: str, task: TaskSpec, config=None, **overrides) -> IrrepsModel:
    """Build registered model ``name`` for ``task``.

    ``config`` may be a config instance, a mapping of overrides, or ``None``;
    keyword ``overrides`` are applied on top.
    """
    entry = get_model_entry(name)
    if entry.tasks is not None and task.name not in entry.tasks:
        raise ConfigError(f"model {name!r} supports tasks {list(entry.tasks)}, not {task.name!r}")
    if config is None or isinstance(config, Mapping):
        cfg = entry.make_config({**dict(config or {}), **overrides})
    else:
        cfg = dataclasses.replace(config, **overrides) if overrides else config
    model = entry.builder(cfg, task)
    if not isinstance(model, IrrepsModel):
        raise TypeError(f"builder of {name!r} returned {type(model).__name__}, not an IrrepsModel")
    return model
