r"""One training loop for every model.

:class:`Trainer` minimises the mean squared error of the task's target in
normalised units (:mod:`irrepnet.train.normalization`) with Adam or AdamW, a linear
learning-rate warm-up followed by a cosine or plateau schedule, gradient-norm
clipping, and early stopping on the validation loss. Each epoch appends one JSON
line to ``log.jsonl`` (train and validation loss, validation MSE in physical units,
learning rate, cumulative training time) and writes ``last.pt``; an improved
validation loss also writes ``best.pt``. Both are written atomically. With
``ema_decay`` the validation, ``best.pt`` and the returned model use an exponential
moving average of the weights (:mod:`irrepnet.train.averaging`).

Interrupting (Ctrl-C or SIGTERM) finishes the current optimiser step, writes
``last.pt`` with the exact position inside the epoch (the epoch's sample order,
the next batch, every random state) and raises :class:`TrainingInterrupted`.
``fit(resume=True)`` continues from it; on the CPU with the same seed the resumed
run ends with bit-identical weights to an uninterrupted one (``tests/test_train.py``).

On an energy task (target ``energy``) the loss has two terms, the per-atom energy and
the forces, weighted by ``energy_weight`` and ``force_weight`` (:mod:`irrepnet.train.energy`),
and each epoch's log line also has the validation MAE of the energy (per molecule and per
atom) and of the force components, in the data's units (eV, eV/Å for molecules);
``valid_mse`` is there the weighted validation loss times the force scale squared (eV²).
On a property task (qm9) the loss is the L1 error of the mean/MAD-normalised target
(:mod:`irrepnet.train.property`); the log has ``valid_property_mae`` in the target's unit
and ``valid_mse`` is ``None``.

Shapes/irreps
-------------
batches are dicts of tensors as produced by ``dataset.batch(indices)``; each loss term
reads a model output (``(n, d)`` node or ``(G, d)`` graph field) and the dataset's matching
``target_*`` field of the same shape.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import keys as K
from ..compile import compile_model
from ..interface import IrrepsModel
from ..stats import Bootstrap
from . import distributed
from .averaging import ExponentialMovingAverage
from .checkpoint import CheckpointError, load_checkpoint, save_atomic
from .config import TrainConfig
from .data_record import check_resumed_data, training_record
from .device import pick_device, synchronize
from .energy import LossTerm, displacement_only_options, energy_loss_terms, virial_per_atom
from .length import LENGTH_OUTPUTS, finite_gradients, nonfinite_hint, unscaled_cutoff_warning
from .noise import add_input_noise
from .normalization import NormalizedModel, check_residual, fit_scales, rms
from .optim import make_optimizer
from .progress import progress_reporter
from .property import accumulate_abs_errors, property_loss_terms
from .runtime import _StopRequests, move, split_validation, torch_dtype  # noqa: F401 (re-exported: loop.move etc. predate runtime.py)
from .tensorboard_log import TensorBoardLog, summary_writer_class
from .unroll import unroll_trajectory, unrolled_loss

#: dataset field holding the truth for each model output
TARGET_FIELDS = {
    K.DISPLACEMENT: K.TARGET_DISP,
    K.NEXT_POS: K.TARGET_POS,
    K.ENERGY: K.TARGET_ENERGY,
    K.FORCES: K.TARGET_FORCES,
    K.PROPERTY: K.TARGET_PROPERTY,
}
#: steps excluded from the step-time median (allocator and kernel warm-up)
WARMUP_STEPS_UNTIMED = 5
#: config keys that may differ between a run and its resumption
logger = logging.getLogger(__name__)

RESUMABLE_CHANGES = {"epochs", "max_steps", "patience", "progress", "device", "eval_batch_size", "tensorboard"}


class TrainingInterrupted(RuntimeError):
    """Training stopped on request (Ctrl-C / SIGTERM) after saving ``checkpoint``."""

    def __init__(self, checkpoint: Path):
        self.checkpoint = checkpoint
        super().__init__(f"training interrupted; state saved to {checkpoint}; continue with --resume")


def target_field(output: str) -> str:
    """The dataset field that holds the truth for model output ``output``."""
    try:
        return TARGET_FIELDS[output]
    except KeyError:
        raise ValueError(
            f"no dataset field holds the truth for output {output!r}; known: {sorted(TARGET_FIELDS)}"
        ) from None


#: family-wise level of ``select_significant``: the chance that noise replaces the baseline in a run
SELECTION_ALPHA = 0.05


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns. ``model`` holds the best weights, in physical units."""

    model: NormalizedModel
    history: list[dict[str, Any]]
    best_epoch: int
    best_valid_loss: float
    steps: int
    stopped: str
    train_time_s: float
    step_times: list[float] = field(default_factory=list)
    epoch_times: list[float] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # options the run capped or changed, as announced

    @property
    def train_step_ms(self) -> float | None:
        return 1e3 * statistics.median(self.step_times) if self.step_times else None

    @property
    def epoch_s(self) -> float | None:
        return statistics.median(self.epoch_times) if self.epoch_times else None


class Trainer:
    """Train ``model`` on ``train_set`` to predict its ``output`` field.

    Parameters
    ----------
    model : IrrepsModel
        built by the caller (after ``torch.manual_seed(config.seed)`` for reproducible weights).
    train_set, valid_set : datasets with ``len``, ``.batch(indices)`` and ``.arrays()``
        ``valid_set=None`` holds out the last ``config.valid_fraction`` of ``train_set``.
    config : TrainConfig
    output : str
        the model output trained on (default: the displacement).
    out_dir : path, optional
        where ``log.jsonl``, ``last.pt`` and ``best.pt`` go; ``None`` keeps everything in memory.
    meta : dict, optional
        plain values stored in every checkpoint (model name and config, task), so that a
        checkpoint can rebuild its model (``irrepnet audit --checkpoint``); ``"data"``, the
        data's identity, gets the split sizes and length scale, and ``fit(resume=True)``
        refuses other data (:mod:`irrepnet.train.data_record`).
    callback : callable, optional
        ``callback(trainer)`` after every optimiser step (tests use it to interrupt).
    """

    def __init__(
        self,
        model: IrrepsModel,
        train_set,
        valid_set=None,
        *,
        config: TrainConfig | None = None,
        output: str = K.DISPLACEMENT,
        out_dir=None,
        meta: dict[str, Any] | None = None,
        callback: Callable[[Trainer], None] | None = None,
    ):
        self.config = config or TrainConfig()
        if not [p for p in model.parameters() if p.requires_grad]:
            raise ValueError(f"{type(model).__name__} has no trainable parameters; evaluate it without training")
        if output not in model.irreps_out:
            raise ValueError(f"the model has no output {output!r}; it writes {sorted(model.irreps_out)}")
        if valid_set is None:
            train_set, valid_set = split_validation(train_set, self.config.valid_fraction)
        self.train_set, self.valid_set = train_set, valid_set
        self.output, self.target = output, target_field(output)
        self.terms = self._loss_terms(model, train_set)
        self.dist = distributed.current()
        if self.dist.active and self.config.unroll_steps > 1:
            from ..registry import ConfigError

            # DistributedDataParallel expects one forward per backward; the unroll makes k of them
            raise ConfigError(
                f"unroll_steps = {self.config.unroll_steps} is not supported under torchrun: "
                "train the unrolled loss in one process, or use unroll_steps = 1"
            )
        self.device = distributed.local_device(pick_device(self.config.device))
        self.dtype = torch_dtype(self.config.dtype)
        arrays = train_set.arrays()
        history = arrays[K.VEL_HISTORY].shape[-1] // 3 if K.VEL_HISTORY in arrays else 0
        check_residual(self.config.residual, history, output)
        scales = (
            fit_scales(model, arrays, output, arrays[self.target], self.config.residual)
            if self.config.normalize
            else {"inputs": {}, "outputs": {}}
        )
        if not self.config.normalize and output in LENGTH_OUTPUTS:
            unscaled = unscaled_cutoff_warning(model, arrays)
            if unscaled and self.dist.is_main:
                logger.warning(unscaled)
        self.model = NormalizedModel(
            model,
            scales,
            residual=self.config.residual,
            output=output,
            history=history,
            start_at_baseline=self.config.start_at_baseline,
        )
        self.model = self.model.to(device=self.device, dtype=self.dtype)
        # training steps only: evaluation batches vary in size and would each cost a compilation
        self._train_runner = compile_model(self.model.model) if self.config.compile else None
        # under torchrun, gradients averaged over the ranks (irrepnet.train.distributed)
        self._ddp = distributed.data_parallel(self.model, self._train_runner, self.device) if self.dist.active else None
        self.target_scale = scales["outputs"].get(output, 1.0)
        # the unit of input_noise: the RMS of the whole target, whatever the residual
        self.noise_std = self.config.input_noise * rms(arrays[self.target])
        self._unroll_frames = (
            unroll_trajectory(train_set, output, self.config.unroll_steps, self.device, self.dtype)
            if self.config.unroll_steps > 1
            else None
        )
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.meta = dict(meta or {})
        if self.meta.get("data") is not None:  # which data every checkpoint was trained on
            sizes = {**self.meta["data"].get("sizes", {}), "train": len(train_set), "valid": len(valid_set)}
            self.meta["data"] = training_record(self.meta["data"], sizes, self.model.scales)
        self.callback = callback
        self.stop = _StopRequests()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(params, self.config.optimizer, self.config.lr, self.config.weight_decay)
        self.ema = (
            ExponentialMovingAverage(
                ((n, p) for n, p in self.model.named_parameters() if p.requires_grad), self.config.ema_decay
            )
            if self.config.ema_decay is not None
            else None
        )
        n = len(train_set)
        bs = self.config.batch_size
        self.batches_per_epoch = min(math.ceil(n / bs), self.config.steps_per_epoch or math.inf)
        self.notices: list[str] = []
        if self.config.steps_per_epoch is not None and self.config.steps_per_epoch > self.batches_per_epoch:
            self._notice(
                f"steps_per_epoch = {self.config.steps_per_epoch} is more than one pass over the {n} training "
                f"samples in batches of {bs}: an epoch runs {self.batches_per_epoch} steps"
            )
        per_epoch_total = self.config.epochs * self.batches_per_epoch
        self.total_steps = min(per_epoch_total, self.config.max_steps or per_epoch_total)
        self.state = self._initial_state()
        self._recent = deque(maxlen=500)
        self._board = TensorBoardLog(None)  # fit() opens the configured one
        if self.config.tensorboard is not None:
            summary_writer_class(self.config.tensorboard)  # a missing package fails here, before any training

    def _notice(self, text: str) -> None:
        """An option the run does not follow as given: said once on stderr, kept in the result."""
        if text not in self.notices:
            self.notices.append(text)
            logger.warning(text)

    # --- state ------------------------------------------------------------------
    def _initial_state(self) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(self.config.seed)
        return {
            "epoch": 0,
            "step": 0,
            "batch": 0,
            "perm": None,
            "epoch_loss": 0.0,
            "epoch_count": 0,
            "epoch_time": 0.0,
            "train_time": 0.0,
            "best_valid": math.inf,
            "best_epoch": -1,
            "bad_epochs": 0,
            "lr_scale": 1.0,
            "plateau_best": math.inf,
            "plateau_bad": 0,
            "history": [],
            "step_times": [],
            "epoch_times": [],
            "generator": gen.get_state(),
            "stopped": None,
        }

    def _checkpoint(self) -> dict[str, Any]:
        st = dict(self.state)
        st["torch_rng"] = torch.get_rng_state()
        st["step_times"] = list(self._recent)  # the live deque, copied only when saved
        ck = {
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "trainer_state": st,
            "train_config": self.config.to_dict(),
            "scales": self.model.scales,
            "meta": self.meta,
        }
        if self.ema is not None:
            ck["ema_state"] = self.ema.state_dict()
        return ck

    def _evaluated_weights(self):
        """The weights that are validated and kept: the moving average with ``ema_decay``, else the trained ones."""
        return self.ema.applied() if self.ema is not None else nullcontext()

    def _save(self, name: str) -> Path | None:
        if self.out_dir is None:
            return None
        if not self.dist.is_main:  # rank 0 writes for all ranks
            return self.out_dir / name
        return save_atomic(self._checkpoint(), self.out_dir / name)

    def _restore(self) -> None:
        if self.out_dir is None:
            raise ValueError("resume needs an output folder (out_dir) holding last.pt")
        path = self.out_dir / "last.pt"
        if not path.exists():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist (start without --resume)")
        try:
            ck = load_checkpoint(path)
        except CheckpointError as exc:  # cut short (a full disk, a copy): the run cannot go on from it
            raise CheckpointError(
                f"cannot resume: {exc}; start the run over with --overwrite, or put back a copy of last.pt"
            ) from None
        old = ck["train_config"]
        defaults = TrainConfig().to_dict()  # a key the interrupted run's version did not have took its default
        changed = sorted(
            k for k, v in self.config.to_dict().items() if old.get(k, defaults[k]) != v and k not in RESUMABLE_CHANGES
        )
        if changed:
            raise ValueError(
                f"cannot resume {path}: training option(s) {changed} differ from the interrupted run "
                f"({', '.join(f'{k}={old.get(k)!r}' for k in changed)}); use the same options"
            )
        # other data first: a 20-bead file would otherwise be refused as another task (num_nodes)
        check_resumed_data(ck["meta"].get("data"), self.meta.get("data"), path)
        for key in ("model", "model_config", "task"):
            if key in self.meta and key in ck["meta"] and ck["meta"][key] != self.meta[key]:
                raise ValueError(
                    f"cannot resume {path}: it was trained with {key} {ck['meta'][key]!r}, not {self.meta[key]!r}"
                )
        self.model.load_state_dict(ck["model_state"])
        # the unit its weights learnt positions in; none in a checkpoint from before the fitted length
        self.model.length_scale = ck.get("scales", {}).get("length")
        self.optimizer.load_state_dict(ck["optimizer_state"])
        if self.ema is not None:
            if "ema_state" not in ck:
                raise ValueError(
                    f"cannot resume {path}: it holds no weight average (ema_decay); "
                    "resume with the interrupted run's options"
                )
            self.ema.load_state_dict(ck["ema_state"])
        st = ck["trainer_state"]
        torch.set_rng_state(st.pop("torch_rng"))
        for key, done, unit in (("epochs", st["epoch"], "epoch"), ("max_steps", st["step"], "step")):
            was, now = old.get(key, defaults[key]), getattr(self.config, key)
            if now != was and now is not None:  # a longer (or shorter) run than the one resumed: say by how much
                more = max(now - done, 0)
                self._notice(
                    f"resuming {path} with {key} = {now} instead of {was} ({done} done): it adds {more} "
                    f"{unit}{'s' if more != 1 else ''}"
                )
        # a finished run resumed with more epochs/steps or a longer patience goes on
        if st["stopped"] in ("epochs", "max_steps") or (
            st["stopped"] == "early_stopping"
            and (self.config.patience is None or st["bad_epochs"] < self.config.patience)
        ):
            st["stopped"] = None
        self.state = st
        self._rewrite_log()

    # --- schedule ---------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        c = self.config
        if step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        if c.schedule == "cosine":
            span = max(1, self.total_steps - 1 - c.warmup_steps)  # the last step runs at min_lr
            progress = min(1.0, (step - c.warmup_steps) / span)
            return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * progress))
        if c.schedule == "plateau":
            return max(c.min_lr, c.lr * self.state["lr_scale"])
        return c.lr

    def _plateau(self, valid: float) -> None:
        st = self.state
        if valid < st["plateau_best"]:
            st["plateau_best"], st["plateau_bad"] = valid, 0
            return
        st["plateau_bad"] += 1
        if st["plateau_bad"] >= self.config.plateau_patience:
            st["lr_scale"] *= self.config.plateau_factor
            st["plateau_bad"] = 0

    # --- loss -------------------------------------------------------------------
    def _loss_terms(self, model: IrrepsModel, train_set) -> list[LossTerm]:
        """The loss terms: the target alone, or on an energy task the energy and the forces."""
        if self.output not in (K.ENERGY, K.PROPERTY):
            return [LossTerm(self.output, self.target)]
        from ..registry import ConfigError

        c = self.config
        refused = displacement_only_options(c)
        if refused:
            raise ConfigError(
                f"training option(s) {refused} apply to displacement tasks; an energy model has "
                "no baseline, and noisy positions would not match their forces: leave them at "
                "their defaults"
            )
        if self.output == K.PROPERTY:  # mean/MAD-normalised target, L1 loss (irrepnet.train.property)
            return property_loss_terms()
        terms = energy_loss_terms(c.energy_weight, c.force_weight, c.stress_weight)
        if c.stress_weight > 0 and (K.STRESS not in model.irreps_out or K.TARGET_STRESS not in train_set.arrays()):
            raise ConfigError(
                f"stress_weight = {c.stress_weight} needs a model that writes {K.STRESS!r} (an energy model "
                f"built for a task with stress, such as bulk_metal) and {K.TARGET_STRESS!r} in the training "
                "set; set stress_weight = 0"
            )
        if c.force_weight > 0:
            if K.FORCES not in model.irreps_out:
                raise ConfigError(
                    f"force_weight = {c.force_weight} but the model has no {K.FORCES!r} output; "
                    "build an energy model (irrepnet.models.energy.EnergyModel) or set force_weight = 0"
                )
            if K.TARGET_FORCES not in train_set.arrays():
                raise ConfigError(
                    f"force_weight = {c.force_weight} but the training set has no {K.TARGET_FORCES!r}; "
                    "set force_weight = 0 to train on energies alone"
                )
        return terms

    def _term_error(self, term: LossTerm, batch, pred) -> torch.Tensor:
        """Squared normalised error of one term, ``(rows, d)``; per atom for an extensive graph field."""
        err = pred[term.output] - self.model.normalized_target(batch, batch[term.truth], term.output)
        if term.output == K.STRESS:  # (G, 3, 3) -> (G, 9), times V/N: a virial per atom (irrepnet.train.energy)
            err = virial_per_atom(err, batch)
        if term.per_atom:
            err = err / batch[K.NUM_NODES].to(err.dtype)[:, None]
        return err.abs() if term.loss == "l1" else err.pow(2)

    def _forward_train(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Normalised outputs of a training step: through DistributedDataParallel when distributed."""
        if self._ddp is not None:
            return self._ddp(batch)
        return self.model.forward_normalized(batch, self._train_runner)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = self._forward_train(batch)
        if len(self.terms) == 1 and self.terms[0].weight == 1.0:  # the one-target tasks, as they always were
            return self._term_error(self.terms[0], batch, pred).mean()
        return sum(t.weight * self._term_error(t, batch, pred).mean() for t in self.terms)

    @torch.no_grad()
    def evaluate_loss(self, dataset) -> float:
        """Mean normalised loss over ``dataset`` (per coordinate, like the training loss).

        Also keeps the error of each sample (graph), mean over its nodes and coordinates,
        in ``_last_valid_errors``: the paired test of ``select_significant`` reads it.
        With several loss terms each is averaged over the whole set and the terms are
        weighted as in training; a sample's error is the weighted sum of its own means.
        On an energy task the mean absolute errors in physical units go to ``_last_valid_mae``.
        """
        self.model.eval()
        sums, counts = [[] for _ in self.terms], [[] for _ in self.terms]
        abs_errors = {}
        for start in range(0, len(dataset), self.config.eval_batch_size):
            idx = range(start, min(len(dataset), start + self.config.eval_batch_size))
            batch = move(dataset.batch(idx), self.device, self.dtype)
            pred = self.model.forward_normalized(batch)
            for t, term in enumerate(self.terms):
                err = self._term_error(term, batch, pred).double()
                if K.field_kind(term.output) == K.GRAPH:  # one row per graph
                    sums[t].append(err.sum(dim=1).cpu())
                    counts[t].append(torch.full((len(idx),), float(err.shape[1]), dtype=torch.float64))
                    continue
                graph = batch[K.BATCH]
                sums[t].append(
                    torch.zeros(len(idx), dtype=torch.float64, device=err.device)
                    .index_add_(0, graph, err.sum(dim=1))
                    .cpu()
                )
                counts[t].append((torch.bincount(graph, minlength=len(idx)) * err.shape[1]).double().cpu())
            if self.output in (K.ENERGY, K.PROPERTY):
                accumulate_abs_errors(abs_errors, batch, self.model.to_physical(batch, pred))
        total, per_sample = 0.0, 0.0
        for t, term in enumerate(self.terms):
            s, c = torch.cat(sums[t]), torch.cat(counts[t])
            total = total + term.weight * float(s.sum() / c.sum())
            per_sample = per_sample + term.weight * (s / c)
        self._last_valid_errors = per_sample
        self._last_valid_mae = {k: v[0] / max(v[1], 1) for k, v in abs_errors.items()}
        return float(total)

    def _significantly_better_than_baseline(self) -> bool:
        """Paired block bootstrap of this epoch's validation errors against epoch 0's (the baseline).

        Every epoch of the run is such a test, so the level is corrected for their number
        (Bonferroni): with ``E`` planned epochs each one must beat the baseline at
        confidence ``1 - 0.05 / E``, and the chance that noise alone replaces the
        baseline in a run stays at most 5%. (Uncorrected, three of the dmol single-frame
        runs at commit 349dfd5 kept epochs that beat zero displacement on validation and
        lost to it on test.)
        """
        base = self.state.get("baseline_valid_errors")
        if base is None:
            return True
        errs = self._last_valid_errors.numpy()
        n = len(errs)
        if n < 4:  # too few samples to resample: the plain rule
            return True
        confidence = 1.0 - SELECTION_ALPHA / self.planned_epochs
        # enough resamples that the interval's tail, (1 - confidence) / 2, holds >= 20 of them
        resamples = int(min(20000, max(1000, math.ceil(40.0 / (1.0 - confidence)))))
        boot = Bootstrap(
            n,
            block_length=max(1, min(self.config.selection_block, n // 2)),
            resamples=resamples,
            confidence=confidence,
            seed=0,
        )
        return boot.compare(errs, base.numpy())["verdict"] == "lower"

    @property
    def planned_epochs(self) -> int:
        """Epochs this run evaluates on validation: its step budget over its steps per epoch."""
        return max(1, min(self.config.epochs, math.ceil(self.total_steps / max(1, self.batches_per_epoch))))

    # --- the loop ---------------------------------------------------------------
    def _log_line(self, record: dict[str, Any]) -> None:
        """One epoch's record to ``log.jsonl`` and, with ``tensorboard``, to TensorBoard."""
        self._board.epoch(record)
        if self.out_dir is None or not self.dist.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _rewrite_log(self) -> None:
        """The log as the checkpoint knows it: epochs logged after the checkpoint are dropped."""
        if self.out_dir is None or not self.dist.is_main:
            return
        tmp = self.out_dir / ".log.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in self.state["history"]))
        tmp.replace(self.out_dir / "log.jsonl")

    # --- k-step unrolled loss (irrepnet.train.unroll) -----------------------------
    def unrolled_loss(self, idx: torch.Tensor) -> torch.Tensor:
        """Mean normalised loss over ``unroll_steps`` fed-back steps from the frames ``idx``."""
        return unrolled_loss(self, idx)

    def _train_step(self, idx: torch.Tensor) -> float:
        self.model.train()
        lr = self.lr_at(self.state["step"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        own, counts = distributed.local_part(idx, self.dist), True
        if own.numel() == 0:  # a last batch smaller than the ranks: take part, counting for nothing
            own, counts = idx[:1], False
        if self.config.unroll_steps > 1:
            loss = self.unrolled_loss(own)
            units = own.numel()  # trajectory tasks: graphs of one size, so samples count like nodes
        else:
            batch = move(self.train_set.batch(own), self.device, self.dtype)
            if self.noise_std > 0:  # the target stays the true displacement (see irrepnet.train.noise)
                batch = add_input_noise(batch, self.noise_std)
            loss = self.loss(batch)
            units = batch[K.POS].shape[0]
        if self.dist.active:
            loss = loss * self.dist.share(units if counts else 0)
        step = self.state["step"]
        if not torch.isfinite(loss):  # at step 0, before any update, it comes from the data (irrepnet.train.length)
            hint = nonfinite_hint(
                batch if self.config.unroll_steps == 1 else {}, self.model.length_scale, self.dtype, step
            )
            raise FloatingPointError(f"training loss is {float(loss.detach())} at step {step}; {hint}")
        loss.backward()
        if step == 0 and not finite_gradients(self.model.parameters()):  # clipping them would make NaN weights
            hint = nonfinite_hint(
                batch if self.config.unroll_steps == 1 else {}, self.model.length_scale, self.dtype, 0
            )
            raise FloatingPointError(f"training gradients are not finite at step 0; {hint}")
        if self.config.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update()
        return self.dist.mean(float(loss.detach()))  # the global batch's mean loss, as one process logs it

    def fit(self, resume: bool = False) -> TrainResult:
        """Train until ``epochs``, ``max_steps`` or early stopping; return the best model."""
        if resume:
            self._restore()
        elif self.out_dir is not None and (self.out_dir / "log.jsonl").exists():
            raise FileExistsError(f"{self.out_dir} already holds a training run; resume it or choose a new folder")
        self.dist.barrier()  # every rank has looked at out_dir before rank 0 writes to it
        c, st = self.config, self.state
        # rank 0 alone reports, as it alone writes; a resumed run hides the events after its checkpoint
        board = TensorBoardLog(c.tensorboard if self.dist.is_main else None, purge_step=st["step"] if resume else None)
        progress = progress_reporter(
            c.progress and self.dist.is_main, total_epochs=self.planned_epochs, total_steps=self.total_steps, state=st
        )
        with board:  # closed, so flushed, however training ends
            self._board = board
            if c.start_at_baseline and not st["history"]:
                self._baseline_epoch()
            gen = torch.Generator()
            gen.set_state(st["generator"])
            self._recent = recent = deque(st["step_times"], maxlen=500)
            n = len(self.train_set)
            with self.stop, progress:
                while st["stopped"] is None:
                    if st["epoch"] >= c.epochs:
                        st["stopped"] = "epochs"
                        break
                    if c.max_steps is not None and st["step"] >= c.max_steps:
                        st["stopped"] = "max_steps"
                        break
                    if st["perm"] is None:
                        st["perm"] = torch.randperm(n, generator=gen)
                        st["generator"] = gen.get_state()
                        st.update(batch=0, epoch_loss=0.0, epoch_count=0, epoch_time=0.0)
                    while st["batch"] < self.batches_per_epoch and not (c.max_steps and st["step"] >= c.max_steps):
                        b = st["batch"]
                        idx = st["perm"][b * c.batch_size : (b + 1) * c.batch_size]
                        synchronize(self.device)
                        t0 = time.perf_counter()
                        loss = self._train_step(idx)
                        synchronize(self.device)
                        dt = time.perf_counter() - t0
                        if st["step"] >= WARMUP_STEPS_UNTIMED:
                            recent.append(dt)
                        st["epoch_time"] += dt
                        st["train_time"] += dt
                        st["epoch_loss"] += loss * idx.numel()
                        st["epoch_count"] += idx.numel()
                        st["step"] += 1
                        st["batch"] += 1
                        progress.step(st)
                        board.step(st["step"], loss, self.lr_at(st["step"] - 1), dt)
                        if self.callback is not None:
                            self.callback(self)
                        if self.dist.any(self.stop.requested):  # every rank stops after the same step
                            path = self._save("last.pt")
                            self.dist.barrier()
                            if path is None:
                                raise KeyboardInterrupt("training interrupted (no out_dir: nothing saved)")
                            raise TrainingInterrupted(path)
                    self._end_epoch(progress)
        self.state["step_times"] = list(recent)
        self._save("last.pt")
        self.dist.barrier()  # rank 0's files are complete before any rank goes on
        return self._result()

    def _baseline_epoch(self) -> None:
        """Epoch 0: the untrained model (the baseline, with ``start_at_baseline``) scored and kept as best."""
        st = self.state
        valid = self.evaluate_loss(self.valid_set)
        record = {
            "epoch": 0,
            "step": 0,
            "train_loss": None,
            "valid_loss": valid,
            "valid_mse": self._valid_mse(valid),
            "lr": 0.0,
            "time_s": 0.0,
            "epoch_s": 0.0,
            **self._valid_mae_fields(),
        }
        st["history"].append(record)
        st["best_valid"], st["best_epoch"] = valid, 0
        if self.config.select_significant:
            st["baseline_valid_errors"] = self._last_valid_errors.clone()  # a tensor: checkpoints load weights_only
        self._log_line(record)
        self._save("best.pt")
        self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _valid_mse(self, valid: float) -> float | None:
        """The validation loss as an MSE in physical units; ``None`` under an L1 loss (the MAE is logged)."""
        return None if any(t.loss == "l1" for t in self.terms) else valid * self.target_scale**2

    def _valid_mae_fields(self) -> dict[str, float]:
        """``valid_energy_mae``... of the last evaluation (energy tasks; empty otherwise)."""
        return {f"valid_{k}": v for k, v in getattr(self, "_last_valid_mae", {}).items()}

    def _end_epoch(self, progress) -> None:
        with self._evaluated_weights():
            record = self._score_epoch()
        self._save("last.pt")  # the trained weights (and the average beside them): what a resumed run continues
        progress.epoch(record, self.state)

    def _score_epoch(self) -> dict[str, Any]:
        """Validate the end of an epoch, log it, and keep the weights as ``best.pt`` if they improved."""
        c, st = self.config, self.state
        valid = self.evaluate_loss(self.valid_set)
        record = {
            "epoch": st["epoch"] + 1,
            "step": st["step"],
            "train_loss": st["epoch_loss"] / max(1, st["epoch_count"]),
            "valid_loss": valid,
            "valid_mse": self._valid_mse(valid),
            "lr": self.lr_at(max(0, st["step"] - 1)),
            "time_s": st["train_time"],
            "epoch_s": st["epoch_time"],
            **self._valid_mae_fields(),
        }
        st["history"].append(record)
        st["epoch_times"].append(st["epoch_time"])
        st["epoch"] += 1
        st["perm"] = None
        improved = valid < st["best_valid"]
        if improved and self.config.select_significant:
            # the baseline stays the kept model unless this epoch beats it beyond validation noise
            improved = self._significantly_better_than_baseline()
            record["significant"] = improved
        if improved:
            st["best_valid"], st["best_epoch"], st["bad_epochs"] = valid, st["epoch"], 0
        else:
            st["bad_epochs"] += 1
        if c.schedule == "plateau":
            self._plateau(valid)
        if c.patience is not None and st["bad_epochs"] >= c.patience:
            st["stopped"] = "early_stopping"
        self._log_line(record)
        if improved:
            self._save("best.pt")
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return record

    def _result(self) -> TrainResult:
        st = self.state
        best = getattr(self, "_best_state", None)
        if best is None and self.out_dir is not None and (self.out_dir / "best.pt").exists():
            best = load_checkpoint(self.out_dir / "best.pt", map_location=self.device)["model_state"]
        if best is not None:
            self.model.load_state_dict(best)
        self.model.eval()
        return TrainResult(
            model=self.model,
            history=list(st["history"]),
            best_epoch=st["best_epoch"],
            best_valid_loss=st["best_valid"],
            steps=st["step"],
            stopped=st["stopped"],
            train_time_s=st["train_time"],
            step_times=list(st["step_times"]),
            epoch_times=list(st["epoch_times"]),
            notices=list(self.notices),
        )
