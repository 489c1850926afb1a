"""Training configuration: one dataclass, readable from TOML, every key checked.

``TrainConfig`` holds everything the training loop needs; a TOML file (``irrepnet
train --config FILE.toml``) may set any subset under a ``[train]`` table, and the
model's own config options under ``[model]``. Unknown keys are an error that lists
the known ones, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..registry import ConfigError
from .normalization import RESIDUALS as _RESIDUAL_BASELINES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "plateau", "constant")
DTYPES = ("float32", "float64")
#: physical extrapolations a model can learn a correction to (:mod:`irrepnet.train.normalization`)
RESIDUALS = tuple(_RESIDUAL_BASELINES)


@dataclass
class TrainConfig:
    """How a model is trained. Defaults suit the twelve_body task on a CPU.

    The learning rate rises linearly from 0 over ``warmup_steps`` steps, then follows
    ``schedule``: ``cosine`` decays to ``min_lr`` at the last step (``max_steps`` or
    ``epochs`` x steps per epoch), ``plateau`` multiplies it by ``plateau_factor`` when
    the validation loss has not improved for ``plateau_patience`` epochs, ``constant``
    keeps it. Early stopping ends training after ``patience`` epochs without a better
    validation loss (``None``: never).

    ``residual`` makes the model predict a correction to a physical extrapolation,
    normalised by the correction's own training RMS (``"force_difference"``: the model is
    a force field of the positions whose change over the last frame step corrects
    constant acceleration; :mod:`irrepnet.train.normalization`); ``start_at_baseline`` scales
    that correction by a learnable scalar initialised at 0 (the untrained model is the
    baseline, and the validation loss before the first step is logged as epoch 0, so
    the best checkpoint can be the baseline itself). ``input_noise`` trains with
    random-walk noise on the input history (Sanchez-Gonzalez et al. 2020), its
    last-step standard deviation given in units of the training RMS of the target
    displacement (:mod:`irrepnet.train.noise`); 0 turns it off. ``unroll_steps = k > 1``
    trains on trajectory tasks with a k-step unrolled loss: each sample's predictions are
    fed back k times (gradients flow through the whole unroll) and the loss averages the
    one-step losses against the true frames, so errors that compound in a rollout are
    penalised (samples within k frames of the end of the training split are skipped).
    ``compile`` runs the training steps' forward and backward compiled
    (:func:`irrepnet.compile.compile_model`); evaluation and checkpoints use the eager
    model, which shares the parameters. Off by default: see the performance guide (docs/guide/performance.md)
    for where it pays. ``select_significant``
    (with ``start_at_baseline``) keeps the baseline as the best checkpoint unless an
    epoch's validation MSE is lower than the baseline's by a paired block bootstrap over
    validation samples in blocks of ``selection_block`` (:mod:`irrepnet.stats`), at 95%
    confidence for the run as a whole (each of its ``E`` epochs is tested at
    ``1 - 0.05 / E``, Bonferroni): on a task where the models cannot beat the baseline,
    model selection on a noisy validation split then does not make them worse on the test.

    ``ema_decay = d`` keeps an exponential moving average of the weights, updated after
    every optimiser step (:mod:`irrepnet.train.averaging`); validation, early stopping,
    ``best.pt`` and the returned model use the average, training continues from the
    raw weights (``last.pt`` holds both). ``None`` (default): no average.

    On an energy task (molecules) the loss is ``energy_weight`` x the MSE of the energy
    per atom plus ``force_weight`` x the MSE of the force components, both in units of
    the training force RMS (:mod:`irrepnet.train.energy`); other tasks ignore the two weights.
    ``stress_weight`` (default 0) adds the MSE of the stress on periodic energy tasks
    (bulk_metal), as a virial per atom in the same unit.

    ``tensorboard = "DIR"`` writes the run's scalars (loss, learning rate, step time every
    step; validation metrics every epoch) as TensorBoard event files in ``DIR``
    (:mod:`irrepnet.train.tensorboard_log`; needs ``pip install tensorboard``). ``progress``
    draws a bar on a terminal and logs a line per epoch (and every 30 s) elsewhere
    (:mod:`irrepnet.train.progress`).
    """

    epochs: int = 20
    max_steps: int | None = None  # stop after this many optimiser steps in all
    steps_per_epoch: int | None = None  # None: one pass over the training set
    batch_size: int = 32
    eval_batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"
    min_lr: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    clip_grad_norm: float | None = 10.0  # None: no clipping
    patience: int | None = None
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"  # "auto": cuda, then mps, then cpu
    normalize: bool = True  # divide target and vector inputs by their training RMS
    valid_fraction: float = 0.1  # tasks without a validation split: the last part of train
    progress: bool = True  # tqdm bar on a terminal, else INFO log lines (irrepnet.train.progress)
    residual: str = "none"  # "none", "constant_velocity", "constant_acceleration" or "force_difference"
    start_at_baseline: bool = False  # correction x learnable gate initialised at 0
    input_noise: float = 0.0  # random-walk input noise, in units of the target RMS
    unroll_steps: int = 1  # > 1: k-step unrolled loss on trajectory tasks (feeds predictions back)
    select_significant: bool = False  # with start_at_baseline: replace the baseline only beyond validation noise
    selection_block: int = 20  # block length (validation samples) of that paired bootstrap
    compile: bool = False  # training steps through irrepnet.compile.compile_model (evaluation stays eager)
    energy_weight: float = 1.0  # energy tasks: weight of the per-atom energy MSE in the loss
    force_weight: float = 1.0  # energy tasks: weight of the force MSE in the loss
    stress_weight: float = 0.0  # periodic energy tasks: weight of the stress (virial per atom) MSE in the loss
    ema_decay: float | None = None  # e.g. 0.99: evaluate and keep an exponential moving average of the weights
    tensorboard: str | None = None  # a folder: TensorBoard scalars of the run (irrepnet.train.tensorboard_log)

    def __post_init__(self):
        problems = []
        if isinstance(self.tensorboard, os.PathLike):  # a plain string: checkpoints hold the config as plain values
            self.tensorboard = os.fspath(self.tensorboard)
        if self.tensorboard is not None and (not isinstance(self.tensorboard, str) or not self.tensorboard):
            problems.append(f"tensorboard must be a folder name or unset, got {self.tensorboard!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("max_steps", "steps_per_epoch", "patience"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                problems.append(f"{name} must be an integer >= 1 or unset, got {v!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.dtype not in DTYPES:
            problems.append(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        # the comparisons below need numbers: "fast" or inf would fail there in Python's words, or pass
        for name in ("lr", "min_lr", "weight_decay", "plateau_factor", "valid_fraction", "clip_grad_norm"):
            v = getattr(self, name)
            if (v is not None or name != "clip_grad_norm") and not _finite_number(v):
                problems.append(f"{name} must be a finite number, got {v!r}")
        if problems:
            raise ConfigError("training config: " + "; ".join(problems))
        if not self.lr > 0 or self.min_lr < 0 or self.weight_decay < 0:
            problems.append(
                f"need lr > 0, min_lr >= 0, weight_decay >= 0 (got {self.lr}, {self.min_lr}, {self.weight_decay})"
            )
        if self.warmup_steps < 0 or self.plateau_patience < 1 or not 0 < self.plateau_factor < 1:
            problems.append("need warmup_steps >= 0, plateau_patience >= 1 and 0 < plateau_factor < 1")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            problems.append(f"clip_grad_norm must be > 0 or unset, got {self.clip_grad_norm}")
        if not 0 < self.valid_fraction < 1:
            problems.append(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if self.residual not in RESIDUALS:
            problems.append(f"residual must be one of {RESIDUALS}, got {self.residual!r}")
        if not isinstance(self.input_noise, (int, float)) or not self.input_noise >= 0:
            problems.append(f"input_noise must be a number >= 0, got {self.input_noise!r}")
        if not isinstance(self.unroll_steps, int) or self.unroll_steps < 1:
            problems.append(f"unroll_steps must be an integer >= 1, got {self.unroll_steps!r}")
        if self.select_significant and not self.start_at_baseline:
            problems.append(
                "select_significant compares checkpoints with the baseline: it needs start_at_baseline = true"
            )
        if not isinstance(self.selection_block, int) or self.selection_block < 1:
            problems.append(f"selection_block must be an integer >= 1, got {self.selection_block!r}")
        for name in ("energy_weight", "force_weight", "stress_weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                problems.append(f"{name} must be a number >= 0, got {v!r}")
        if not problems and not self.energy_weight + self.force_weight > 0:
            problems.append("energy_weight and force_weight are both 0: nothing would be trained; make one > 0")
        if self.ema_decay is not None and (
            isinstance(self.ema_decay, bool)
            or not isinstance(self.ema_decay, (int, float))
            or not 0 < self.ema_decay < 1
        ):
            problems.append(
                f"ema_decay must be a number in (0, 1) or unset, got {self.ema_decay!r} "
                "(0.99 averages the weights over about 100 steps)"
            )
        if problems:
            raise ConfigError("training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_keys(given: Mapping[str, Any], known, where: str) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, list(known), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"{where}: unknown key(s) {', '.join(hints)}; known keys: {', '.join(sorted(known))}")


def train_config(overrides: Mapping[str, Any] | None = None, base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (default :class:`TrainConfig`) with ``overrides``; unknown keys raise :class:`~irrepnet.registry.ConfigError`."""
    overrides = dict(overrides or {})
    _check_keys(overrides, [f.name for f in dataclasses.fields(TrainConfig)], "[train]")
    try:
        return dataclasses.replace(base or TrainConfig(), **overrides)
    except TypeError as exc:  # pragma: no cover - replace only raises on unknown keys, checked above
        raise ConfigError(f"[train]: {exc}") from None


def read_toml(path) -> dict[str, Any]:
    """The TOML file at ``path`` as a dict, with one-line errors for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} not found")
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p} is not valid TOML: {exc}") from None


RUN_TABLES = ("train", "model")


def read_run_config(path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(train_overrides, model_overrides)`` from an ``irrepnet train --config`` TOML file.

    The file may hold a ``[train]`` table (keys of :class:`TrainConfig`) and a
    ``[model]`` table (the model's config options, checked when the model is built).
    """
    doc = read_toml(path)
    _check_keys(doc, RUN_TABLES, f"{path}")
    for key in RUN_TABLES:
        if key in doc and not isinstance(doc[key], dict):
            raise ConfigError(f"{path}: [{key}] must be a table")
    return dict(doc.get("train", {})), dict(doc.get("model", {}))
