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

Optional models
---------------
A model that wraps an outside package names the modules it imports and the pip
extra that installs them; a *peer* is another project's implementation, registered
to be compared with irrepnet's own families in the same harness::

    @register_model("egnn-pytorch", config=..., requires=("egnn_pytorch",), extra="peers", peer=True)

Without the package the model stays listed (``irrepnet models`` shows it as not
installed, with the install command), :func:`build_model` raises a
:class:`ConfigError` saying ``pip install 'irrepnet[peers]'``, and
``list_models(peers=False)`` (a suite's ``"*"``) leaves peers out whether installed or not.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import keys as K
from .interface import IrrepsModel, TaskSpec


class UnknownModelError(KeyError):
    """No model is registered under this name; the message lists close matches."""

    def __str__(self) -> str:
        return str(self.args[0])


class ConfigError(ValueError):
    """A model or training config that cannot be built; the message says which key and why."""

    pass


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, config class, description and the tasks it supports."""

    name: str
    builder: Callable[[Any, TaskSpec], IrrepsModel]
    config: type
    description: str
    tasks: tuple | None  # task names it supports; None means any
    requires: tuple[str, ...] = ()  # modules the builder imports (outside packages)
    extra: str | None = None  # the irrepnet pip extra that installs them
    peer: bool = False  # another project's implementation, wrapped for comparison
    energy: bool = False  # builds an energy model (energy + forces) for tasks whose target is "energy"

    @property
    def install_command(self) -> str:
        if self.extra:
            return f"pip install 'irrepnet[{self.extra}]'"
        return "pip install " + " ".join(m.replace("_", "-") for m in self.requires)

    def missing(self) -> list[str]:
        """The modules of ``requires`` that cannot be imported here."""
        return [m for m in self.requires if not module_available(m)]

    @property
    def available(self) -> bool:
        return not self.missing()

    def unavailable_reason(self) -> str | None:
        """``None`` when the model can be built here, else what is missing and how to install it."""
        missing = self.missing()
        if not missing:
            return None
        return f"model {self.name!r} needs {', '.join(missing)}, which is not installed: {self.install_command}"

    def default_config(self):
        return self.config()

    def make_config(self, overrides: Mapping[str, Any] | None = None):
        """Default config with ``overrides`` applied; unknown keys are an error."""
        overrides = dict(overrides or {})
        known = {f.name for f in dataclasses.fields(self.config)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"model {self.name!r} has no config option(s) {unknown}; known options: {sorted(known)}")
        return dataclasses.replace(self.config(), **overrides)


_REGISTRY: dict[str, ModelEntry] = {}


def module_available(module: str) -> bool:
    """Whether ``module`` is importable (found on the path; nothing is imported).

    The one availability check of the registry: tests simulate a missing package by
    monkeypatching it.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken half-import
        return False


def register_model(
    name: str,
    *,
    config: type,
    description: str = "",
    tasks=None,
    requires: Sequence[str] = (),
    extra: str | None = None,
    peer: bool = False,
    energy: bool = False,
):
    """Decorator registering ``builder(config, task) -> IrrepsModel`` under ``name``.

    ``config`` must be a dataclass whose defaults are the model's default config.
    ``requires`` lists the outside modules the builder imports and ``extra`` the pip
    extra of irrepnet that installs them (``pip install 'irrepnet[EXTRA]'``);
    ``peer=True`` marks another project's implementation (left out of a suite's ``"*"``).
    ``energy=True`` says the builder also serves tasks whose target is ``energy`` (the
    molecules task): it then returns a model with outputs ``energy`` and ``forces``
    (:class:`irrepnet.models.energy.EnergyModel`); other models are refused for them.
    On tasks whose target is ``property`` (qm9) the same builder's backbone is pooled
    without forces (:func:`irrepnet.models.energy.as_property_model`).
    The builder must import them itself, inside its body, so that registering costs nothing.
    """
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config for model {name!r} must be a dataclass type, got {config!r}")

    def decorator(builder):
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"a model named {name!r} is already registered; choose another name")
        _REGISTRY[name] = ModelEntry(
            name,
            builder,
            config,
            description or (builder.__doc__ or "").strip().split("\n")[0],
            tuple(tasks) if tasks else None,
            tuple(requires),
            extra,
            bool(peer),
            bool(energy),
        )
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
    """The :class:`ModelEntry` of ``name``; raises :class:`UnknownModelError` with suggestions."""
    _load_builtin_models()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_models(*, peers: bool = True) -> list[str]:
    """Registered model names, sorted; ``peers=False`` leaves out other projects' implementations.

    Models whose packages are missing are listed; see :func:`unavailable_reason`.
    """
    _load_builtin_models()
    return sorted(n for n, e in _REGISTRY.items() if peers or not e.peer)


def unavailable_reason(name: str) -> str | None:
    """``None`` if model ``name`` can be built here, else why not and the install command."""
    return get_model_entry(name).unavailable_reason()


def build_model(name: str, task: TaskSpec, config=None, **overrides) -> IrrepsModel:
    """Build registered model ``name`` for ``task``.

    ``config`` may be a config instance, a mapping of overrides, or ``None``;
    keyword ``overrides`` are applied on top.
    """
    entry = get_model_entry(name)
    reason = entry.unavailable_reason()
    if reason:
        raise ConfigError(reason)
    if entry.tasks is not None and task.name not in entry.tasks:
        raise ConfigError(f"model {name!r} supports tasks {list(entry.tasks)}, not {task.name!r}")
    energy_task, property_task = task.target == K.ENERGY, task.target == K.PROPERTY
    if (energy_task or property_task) and not entry.energy:
        able = ", ".join(sorted(n for n, e in _REGISTRY.items() if e.energy)) or "(none registered)"
        if property_task:
            raise ConfigError(
                f"model {name!r} predicts no per-atom invariant, and task {task.name!r} is scored on "
                f"a graph-level invariant (pooled per-atom scalars); use one of: {able}"
            )
        raise ConfigError(
            f"model {name!r} predicts no energy, and task {task.name!r} is scored on an energy and "
            f"its forces; use an energy model: {able}"
        )
    if config is None or isinstance(config, Mapping):
        cfg = entry.make_config({**dict(config or {}), **overrides})
    else:
        cfg = dataclasses.replace(config, **overrides) if overrides else config
    model = entry.builder(cfg, task)
    if not isinstance(model, IrrepsModel):
        raise TypeError(f"builder of {name!r} returned {type(model).__name__}, not an IrrepsModel")
    if property_task:  # the energy model's backbone, pooled, without forces
        from .models.energy import as_property_model

        model = as_property_model(model, str(task.extras.get("pooling", "sum")))
    if energy_task and not {K.ENERGY, K.FORCES} <= set(model.irreps_out):
        raise TypeError(
            f"builder of {name!r} is registered with energy=True but returned a model with outputs "
            f"{sorted(model.irreps_out)} for task {task.name!r}; it must return energy and forces"
        )
    if energy_task and task.extras.get("stress"):  # periodic data with stress labels: the model writes stress
        from .models.energy import with_stress

        model = with_stress(model)
    return model
