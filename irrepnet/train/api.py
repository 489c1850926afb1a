"""Train a registered model on a task, and rebuild a trained model from its checkpoint.

:func:`train_registered` is what ``irrepnet train`` and the benchmark runner call:
seed, build the model from the registry, train it with :class:`~.loop.Trainer`.
:func:`load_trained` reads a ``best.pt``/``last.pt`` and returns the model in physical
units, ready for metrics or the audit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..registry import ConfigError, build_model, get_model_entry
from ..tasks import Task, task_spec
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .loop import Trainer, TrainResult, torch_dtype
from .normalization import NormalizedModel, model_task_spec


def task_meta(spec) -> dict[str, Any]:
    """Plain values that rebuild ``spec`` with :func:`irrepnet.tasks.task_spec`."""
    meta = {
        "name": spec.name,
        "history": int(spec.extras.get("history", 0)),
        "num_nodes": spec.num_nodes,
        "delta_t": float(spec.extras.get("delta_t", 1.0)),
        "bonds": spec.extras.get("bonds") == "chain",
    }
    if "species" in spec.extras:  # molecules: the elements of the one-hot, in order
        meta["species"] = list(spec.extras["species"])
    if spec.name == "energy":  # frames from a file: whether any is periodic
        meta["periodic"] = bool(spec.extras.get("periodic", False))
    if "target" in spec.extras:  # qm9: the property and how the node outputs are pooled
        meta.update(target=spec.extras["target"], pooling=spec.extras.get("pooling", "sum"))
    return meta


def spec_from_meta(meta: dict[str, Any]):
    """The task spec recorded in a checkpoint's task metadata, rebuilt."""
    if meta["name"] in ("molecules", "bulk_metal"):
        return task_spec(meta["name"], species=meta.get("species"))
    if meta["name"] == "energy":
        return task_spec("energy", species=meta.get("species"), periodic=bool(meta.get("periodic", False)))
    if meta["name"] == "qm9":
        return task_spec(meta["name"], target=meta.get("target"), pooling=meta.get("pooling", "sum"))
    return task_spec(
        meta["name"],
        history=meta["history"],
        num_nodes=meta["num_nodes"],
        delta_t=meta["delta_t"],
        bonds=bool(meta.get("bonds", False)),
    )  # checkpoints before bonds existed have none


def make_trainer(
    model_name: str,
    task: Task,
    config: TrainConfig | None = None,
    model_config: dict[str, Any] | None = None,
    *,
    out_dir=None,
    callback=None,
) -> Trainer:
    """Seed with ``config.seed``, build ``model_name`` for ``task`` and return its :class:`Trainer`."""
    config = config or TrainConfig()
    entry = get_model_entry(model_name)
    cfg = entry.make_config(model_config)
    torch.manual_seed(config.seed)
    spec = model_task_spec(task.spec, config.residual)
    try:
        model = build_model(model_name, spec, cfg)
    except ConfigError as exc:
        if spec is task.spec:
            raise
        need = str(exc).split(";")[0]  # the reason without its hint: more history would not help here
        raise ConfigError(
            f"residual {config.residual!r} builds the model as a force field of the positions alone (no "
            f"velocities, whatever the history), and {model_name!r} cannot be one ({need}): use residual "
            f"'constant_velocity' or 'constant_acceleration' with it, or a model of positions alone such as egnn"
        ) from exc
    meta = {"model": model_name, "model_config": dataclasses.asdict(cfg), "task": task_meta(task.spec)}
    if task.identity is not None:  # the Trainer adds the sizes and length scale (irrepnet.train.data_record)
        meta["data"] = {**task.identity, "sizes": {"test": len(task.test)}}
    return Trainer(
        model,
        task.train,
        task.valid,
        config=config,
        output=task.spec.target,
        out_dir=out_dir,
        meta=meta,
        callback=callback,
    )


def train_registered(
    model_name: str,
    task: Task,
    config: TrainConfig | None = None,
    model_config: dict[str, Any] | None = None,
    *,
    out_dir=None,
    resume: bool = False,
    callback=None,
) -> TrainResult:
    """Build and train ``model_name`` on ``task``; see :class:`~.loop.Trainer` for what is written to ``out_dir``."""
    trainer = make_trainer(model_name, task, config, model_config, out_dir=out_dir, callback=callback)
    return trainer.fit(resume=resume)


def load_trained(path, device: str = "cpu"):
    """``(model, checkpoint)``: the model of a checkpoint in physical units (a :class:`NormalizedModel`), in eval mode."""
    ck = load_checkpoint(path, map_location=device)
    meta = ck.get("meta", {})
    if "model" not in meta or "task" not in meta:
        raise ValueError(f"{path} does not say which model it holds; it was not written by irrepnet train/bench")
    spec = spec_from_meta(meta["task"])
    cfg = get_model_entry(meta["model"]).make_config(meta.get("model_config"))
    tc = ck["train_config"]
    residual = tc.get("residual", "none")
    model = NormalizedModel(
        build_model(meta["model"], model_task_spec(spec, residual), cfg),
        ck["scales"],
        residual=residual,
        start_at_baseline=bool(tc.get("start_at_baseline", False)),
        history=int(meta["task"].get("history", 0)),
    )
    model = model.to(dtype=torch_dtype(ck["train_config"]["dtype"]))
    model.load_state_dict(ck["model_state"])
    return model.to(device).eval(), ck
