"""One task variant of a suite in the benchmark: its data, how a model is scored on it, and its baselines.

:func:`prepare_group` loads the variant's splits (holding out validation frames where
the task has none) and the numbers every row is compared to; :func:`score` measures a
model in physical units (test and validation MSE, rollout; on an energy task the MAEs of
:mod:`irrepnet.bench.energy`) and writes its ``predictions.npz``; :func:`audit_dict`
runs the equivariance audit in float32 and float64; :func:`baseline_rows` makes the
rows of the physical baselines (or of the atom-energy reference). The runner
(:mod:`irrepnet.bench.runner`) calls these for every model seed.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import keys as K
from .. import metrics as M
from ..equivariance import audit
from ..models.physical import PhysicalBaseline
from ..registry import ConfigError, build_model
from ..stats import per_unit_mse
from ..tasks import Task, load_task
from ..train import TrainingInterrupted, split_validation
from . import energy as E
from .failures import reason, record_failure
from .records import new_row, writes
from .suite import PARAMETER_FREE, Suite, Variant

#: test samples the equivariance audit of a row runs on
AUDIT_GRAPHS = 4

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Group:
    """A task variant with its held-out validation split and the numbers every row is compared to."""

    id: str
    task: Task
    history: int
    zero_mse: float
    valid_zero_mse: float
    starts: list[int]
    variant: Variant = dataclasses.field(default_factory=lambda: Variant("default"))
    atom_energies: list[float] | None = None  # energy tasks: the reference's fitted per-element energies

    @property
    def spec(self):
        return self.task.spec

    @property
    def energy(self) -> bool:
        """An energy task: no displacement, no zero baseline, no rollout (``zero_mse`` etc. are ``None``)."""
        return self.atom_energies is not None


def prepare_group(suite: Suite, variant, data: str | None, valid_fraction: float) -> Group:
    """Load ``variant`` of ``suite`` (``data``: the task's file, or ``None``) as a :class:`Group`.

    Where the task has no validation split (twelve_body), the last ``valid_fraction`` of
    the training frames is held out. An energy suite fits the atom-energy reference on the
    training split instead of the zero baseline.
    """
    if suite.energy:  # generated splits of their own sizes; the reference is fitted on the training split
        task = load_task(suite.task, **suite.sizes, **suite.task_options(data))
        return Group(variant.id, task, 0, None, None, [], variant, atom_energies=E.fit_reference(task.train))
    task = load_task(suite.task, data=data, history=variant.history, bonds=variant.bonds, **suite.sizes)
    if task.valid is None:  # twelve_body: hold out the end of the training frames
        train, valid = split_validation(task.train, valid_fraction)
        task = Task(task.spec, train, task.test, valid, task.identity)  # checkpoints record their data
    zero = float(task.test.arrays()[K.TARGET_DISP].double().pow(2).mean())
    valid_zero = float(task.valid.arrays()[K.TARGET_DISP].double().pow(2).mean())
    starts: list[int] = []
    if suite.task == "twelve_body" and suite.rollout_horizons:
        starts = M.rollout_starts(
            task.test.frames, max(suite.rollout_horizons), variant.history, count=suite.rollout_starts
        )
    return Group(variant.id, task, variant.history, zero, valid_zero, starts, variant)


def audit_dict(model, batch, trials: int) -> dict[str, Any]:
    """The equivariance audit of ``model`` on ``batch`` in float32 and float64, as a row's ``equivariance``.

    ``{"float32": {"passed", "checks": {check: {"rel_error", "abs_error", "claimed", "passed"}}}, "float64": ...}``
    (:mod:`irrepnet.bench.schema`); ``trials`` random transformations per check.
    """
    out = {}
    for dtype in (torch.float32, torch.float64):
        rep = audit(model, batch, dtype=dtype, trials=trials)
        out[str(dtype).replace("torch.", "")] = {
            "passed": rep.passed,
            "checks": {
                c.check: {"rel_error": c.rel_error, "abs_error": c.abs_error, "claimed": c.claimed, "passed": c.passed}
                for c in rep.checks
            },
        }
    return out


def score(
    model, group: Group, suite: Suite, run_dir: Path, device, dtype, valid: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Metrics and rollout of a model in physical units; writes ``predictions.npz``.

    ``predictions.npz`` keeps the per-test-frame MSE (``frame_mse``, float64), which the
    block bootstrap of :mod:`irrepnet.bench.compare` resamples; on an energy task the
    per-molecule errors instead (:mod:`irrepnet.bench.energy`; ``valid``: the kept
    epoch's validation MAEs).
    """
    if group.energy:
        return E.evaluate_model(model, group.task, valid or {}, run_dir, device, dtype, write=writes())
    pred, true = M.predict(model, group.task.test, device=device, dtype=dtype)
    metrics = M.accuracy(pred, true, zero_mse=group.zero_mse)
    vpred, vtrue = M.predict(model, group.task.valid, device=device, dtype=dtype)
    metrics["valid_mse"] = M.mse(vpred, vtrue)
    arrays = {"pred": pred.astype(np.float32), "true": true.astype(np.float32), "frame_mse": per_unit_mse(pred, true)}
    roll = None
    if group.starts:
        horizons = sorted(suite.rollout_horizons)
        traj = group.task.test.trajectory
        positions = M.rollout(model, traj, group.starts, horizons[-1], group.history, device=device, dtype=dtype)
        per_start = M.rollout_errors_per_start(positions, traj, group.starts, horizons)
        roll = {
            "horizons": horizons,
            "mse": [float(np.mean(per_start[:, j])) for j in range(len(horizons))],
            "starts": group.starts,
            "mse_per_start": per_start.tolist(),
        }
        t0 = group.starts[0]
        arrays["rollout_pred"] = positions[0].astype(np.float32)
        arrays["rollout_true"] = traj[t0 : t0 + positions.shape[1]].astype(np.float32)
    if writes():
        run_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(run_dir / "predictions.npz", **arrays)
    return {"metrics": metrics, "rollout": roll}


def evaluate(model, group: Group, suite: Suite, run_dir: Path, device, dtype) -> dict[str, Any]:
    """:func:`score` and the equivariance audit of a baseline (a model's seed runs them as two phases)."""
    result = score(model, group, suite, run_dir, device, dtype)
    return {**result, "equivariance": audit_dict(model, audit_batch(group), suite.audit_trials)}


def audit_batch(group: Group):
    """The first :data:`AUDIT_GRAPHS` test samples as one batch: what the equivariance audit runs on."""
    return group.task.test.batch(range(min(AUDIT_GRAPHS, len(group.task.test))))


def baseline_rows(group: Group, suite: Suite, out: Path) -> list[dict[str, Any]]:
    """The physical baselines that the variant supports, plus EGNN's Linear with a fitted time step on nbody.

    A baseline that raises while it is scored or audited becomes a row in error
    (:mod:`irrepnet.bench.failures`), like a model.
    """
    from ..data import fit_linear_delta_t

    if group.energy:
        return [reference_row(group, out)]
    rows = []
    models = []
    for name in PARAMETER_FREE:
        try:
            models.append((name, build_model(name, group.spec)))
        except ConfigError:
            continue  # e.g. constant acceleration without a velocity history
    if K.VEL in group.spec.inputs and group.spec.name == "nbody":
        dt = fit_linear_delta_t(group.task.train)
        models.append(
            (f"linear (fitted dt={dt:.4f})", PhysicalBaseline("linear", {K.VEL: group.spec.inputs[K.VEL]}, dt))
        )
    for name, model in models:
        run_dir = out / group.id / slug(name)
        try:
            ev = evaluate(model.double(), group, suite, run_dir, torch.device("cpu"), torch.float64)
        except (TrainingInterrupted, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - one broken baseline must not end the suite
            note = record_failure(exc, "score", run_dir, out, write=writes())
            if writes():  # rank 0 alone reports under torchrun
                logger.error(f"  {name}: FAILED {note['error']} (traceback in {run_dir / 'error.txt'})")
            rows.append(new_row(name, "baseline", status="error", reason=reason([note]), errors=[note]))
            continue
        rows.append(
            new_row(
                name,
                "baseline",
                symmetry=model.symmetry.value,
                **ev,
                artifacts={"predictions": str((run_dir / "predictions.npz").relative_to(out))},
            )
        )
    return rows


def reference_row(group: Group, out: Path) -> dict[str, Any]:
    """The atom-energy reference of an energy group (fitted on the training split; no audit, no speed)."""
    run_dir = out / group.id / slug(E.REFERENCE)
    ev = E.evaluate_reference(group.task, group.atom_energies, run_dir, write=writes())
    return new_row(
        E.REFERENCE,
        "baseline",
        symmetry="E(3)",
        parameters=len(group.atom_energies),
        config=E.reference_config(group.task.train.species, group.atom_energies),
        **ev,
        artifacts={"predictions": str((run_dir / "predictions.npz").relative_to(out))},
    )


def slug(name: str) -> str:
    """``name`` as a folder name: characters other than letters, digits and ``-_.`` become ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_")
