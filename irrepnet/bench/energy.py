r"""Energy tasks in the benchmark: the group, the atom-energy reference row, evaluation and intervals.

On an energy task (``molecules``, :data:`irrepnet.task_names.ENERGY_TASKS`) a model predicts
the energy of each molecule and its forces as the negative gradient
(:mod:`irrepnet.models.energy`). Its row is scored on the test molecules by

- ``energy_mae`` / ``energy_rmse``: per molecule, in the data's energy unit (eV);
- ``energy_per_atom_mae``: the molecule's error over its atom count (eV/atom);
- ``forces_mae`` / ``forces_rmse``: over all force components (eV/Å);
- ``valid_energy_mae`` / ``valid_forces_mae``: the same on the validation split, of the
  kept (best-validation) checkpoint.

Instead of the physical baselines of the trajectory tasks, every group has one
reference row, **atom energies**: :math:`\hat E_g = \sum_{i \in g} \mu_{z_i}` with the
per-element energies :math:`\mu` fitted by least squares on the training molecules
(:func:`irrepnet.train.energy.fit_energy_scales`, the shift the models' own
normalisation starts from) and zero forces. A model's ``* / reference`` ratio says how
much of the error that the element counts leave the model removes.

Intervals and comparisons (:func:`finalize_energy_group`) come from the same
:class:`~irrepnet.stats.Bootstrap` as the displacement figures, over the test
molecules one by one (block length 1): each sample is its own random displacement of a
G2 molecule, drawn independently, and every split holds every molecule in equal
shares, so the test geometries are independent draws for fixed molecule types. The
per-molecule errors (:func:`irrepnet.metrics.per_molecule_errors`, kept in each
``predictions.npz``) average to the figures, so the seed mean, its interval and the
paired ratios to the reference and to the best other model are read exactly as for
the test MSE.

Shapes
------
``S`` test molecules, ``n`` atoms in all: ``energy_pred``, ``energy_true``, ``num_nodes``
and the per-molecule errors ``(S,)``; ``forces_pred``, ``forces_true`` ``(n, 3)``; a row's
per-molecule errors over its seeds ``(seeds, S)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import keys as K
from ..metrics import per_molecule_errors, predict_energy_forces
from ..stats import Bootstrap
from ..train.energy import energy_shift, fit_energy_scales
from . import schema

#: name of the reference row of every energy group
REFERENCE = "atom energies"
#: metrics of an energy row, in the order of the CSV and of a seed mean (the schema's list)
ENERGY_METRIC_KEYS = schema.ENERGY_METRIC_KEYS
#: figures with a 95% interval, and the per-molecule error (``predictions.npz`` key) each is the mean of
INTERVAL_UNITS = {"energy_mae": "energy_abs", "energy_per_atom_mae": "energy_per_atom_abs", "forces_mae": "forces_abs"}
#: figures compared with the reference and with the best other model (paired ratios)
COMPARED = ("energy_mae", "forces_mae")
UNITS = {"energy": "eV", "forces": "eV/Å"}


def fit_reference(train_set) -> list[float]:
    """Per-element atom energies ``(k,)`` fitted by least squares on the training energies and element counts."""
    return list(fit_energy_scales(train_set.arrays())["atom_energies"])


def reference_predictions(dataset, atom_energies) -> dict[str, np.ndarray]:
    """The reference's predictions over ``dataset``: the sum of its atoms' energies, and zero forces.

    Shapes: as :func:`irrepnet.metrics.predict_energy_forces` (``(S,)`` energies, ``(n, 3)`` forces).
    """
    arrays = dataset.arrays()
    energy = energy_shift({k: v.double() if v.is_floating_point() else v for k, v in arrays.items()}, atom_energies)
    forces = arrays[K.TARGET_FORCES].double().numpy()
    return {
        "energy_pred": energy.reshape(-1).numpy(),
        "energy_true": arrays[K.TARGET_ENERGY].double().reshape(-1).numpy(),
        "num_nodes": arrays[K.NUM_NODES].numpy(),
        "forces_pred": np.zeros_like(forces),
        "forces_true": forces,
    }


def figures(units: dict[str, np.ndarray]) -> dict[str, float]:
    """MAEs and RMSEs of one run from its per-molecule errors (``(S,)`` each, see the module docstring)."""
    return {
        "energy_mae": float(np.mean(units["energy_abs"])),
        "energy_rmse": float(np.sqrt(np.mean(units["energy_sq"]))),
        "energy_per_atom_mae": float(np.mean(units["energy_per_atom_abs"])),
        "forces_mae": float(np.mean(units["forces_abs"])),
        "forces_rmse": float(np.sqrt(np.mean(units["forces_sq"]))),
    }


def _save_predictions(path: Path, pred: dict[str, np.ndarray], units: dict[str, np.ndarray]) -> None:
    """``predictions.npz``: energies and per-molecule errors in float64, forces in float32 (they are the bulk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: (v.astype(np.float32) if k.startswith("forces_") else v) for k, v in pred.items()}
    np.savez_compressed(path, **arrays, **units)


def evaluate(
    pred: dict[str, np.ndarray], valid: dict[str, float | None], run_dir: Path, *, write: bool
) -> dict[str, Any]:
    """Metrics of one run from its test predictions; writes ``run_dir/predictions.npz`` when ``write``.

    ``valid`` holds ``valid_energy_mae`` and ``valid_forces_mae`` (``None`` when not measured).
    """
    units = per_molecule_errors(**pred)
    metrics = {
        **figures(units),
        "valid_energy_mae": valid.get("valid_energy_mae"),
        "valid_forces_mae": valid.get("valid_forces_mae"),
    }
    if write:
        _save_predictions(run_dir / "predictions.npz", pred, units)
    return {"metrics": metrics, "rollout": None}


def evaluate_model(
    model, task, valid: dict[str, float | None], run_dir: Path, device, dtype, *, write: bool
) -> dict[str, Any]:
    """Test metrics of a trained energy model (energy and forces predicted in ``dtype`` on ``device``)."""
    return evaluate(predict_energy_forces(model, task.test, device=device, dtype=dtype), valid, run_dir, write=write)


def evaluate_reference(task, atom_energies, run_dir: Path, *, write: bool) -> dict[str, Any]:
    """Test and validation metrics of the atom-energy reference."""
    valid = figures(per_molecule_errors(**reference_predictions(task.valid, atom_energies)))
    return evaluate(
        reference_predictions(task.test, atom_energies),
        {"valid_energy_mae": valid["energy_mae"], "valid_forces_mae": valid["forces_mae"]},
        run_dir,
        write=write,
    )


def best_valid_figures(history: list[dict[str, Any]], best_epoch: int) -> dict[str, float | None]:
    """``valid_energy_mae`` and ``valid_forces_mae`` of the kept epoch, from the training log (no re-evaluation)."""
    record = next((r for r in history if r.get("epoch") == best_epoch), {})
    return {k: record.get(k) for k in ("valid_energy_mae", "valid_forces_mae")}


def reference_config(species, atom_energies) -> dict[str, Any]:
    """The reference row's ``config``: the fitted atom energy of each element."""
    return {
        "atom_energies": {str(z): float(mu) for z, mu in zip(species, atom_energies)},
        "fit": "least squares of the training energies on the element counts; forces 0",
    }


def data_description(dataset) -> dict[str, Any]:
    """The group's ``data`` field for a :class:`~irrepnet.data.molecules.MoleculeDataset`."""
    ase = __import__("ase")
    if getattr(dataset, "source", None):  # frames read from a file (the energy task)
        return {"source": dataset.source, "species": " ".join(dataset.species), "ase": ase.__version__}
    return {
        "source": "ASE G2 molecules, EMT energies and forces",
        "species": " ".join(dataset.species),
        "molecule_types": len(dataset.names),
        "displacement_A": dataset.displacement,
        "ase": ase.__version__,
    }


def group_entry(group, variant_train, seeds: list[int]) -> dict[str, Any]:
    """A new energy group of ``results.json`` (rows, intervals and budget are filled in later).

    ``group`` is the runner's :class:`~irrepnet.bench.runner.Group`; ``variant_train`` the
    variant's :class:`~irrepnet.train.config.TrainConfig` (its loss weights are the group's).
    """
    task = group.task
    forces = task.train.arrays()[K.TARGET_FORCES].double()
    return {
        "id": group.id,
        "task": task.spec.name,
        "target": "energy",
        "history": 0,
        "data": data_description(task.train),
        "sizes": {"train": len(task.train), "valid": len(task.valid), "test": len(task.test)},
        "units": dict(UNITS),
        "force_rms": float(forces.pow(2).mean().sqrt()),
        "loss_weights": {"energy_weight": variant_train.energy_weight, "force_weight": variant_train.force_weight},
        "reference": {"name": REFERENCE, **reference_config(task.train.species, group.atom_energies)},
        "variant_train": dict(group.variant.train),
        "seeds": seeds,
        "bootstrap": None,
        "budget": None,
        "rows": [],
    }


def aggregate_metrics(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over seeds of every energy metric (``None`` when a seed lacks it); and their std (two keys)."""

    def mean(key):
        vals = [m.get(key) for m in metrics]
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
        return float(np.mean(vals)) if ok and vals else None

    def std(key):
        vals = [m.get(key) for m in metrics]
        return float(np.std(vals, ddof=1)) if len(vals) > 1 and all(v is not None for v in vals) else None

    return {"metrics": {k: mean(k) for k in ENERGY_METRIC_KEYS}, "metrics_std": {k: std(k) for k in COMPARED}}


def result_text(metrics: dict[str, Any]) -> str:
    """The figures of a finished seed in the runner's progress line."""
    return (
        f"test MAE energy {metrics['energy_mae']:.4g} eV "
        f"({metrics['energy_per_atom_mae']:.3g} eV/atom), forces {metrics['forces_mae']:.4g} eV/Å"
    )


# --- intervals and paired comparisons -----------------------------------------------------
def _unit_file(path: Path) -> dict[str, np.ndarray] | None:
    """The per-molecule errors in a ``predictions.npz``, or ``None`` when it is missing or has none."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if not all(u in data.files for u in INTERVAL_UNITS.values()):
                return None
            return {u: np.asarray(data[u], dtype=np.float64) for u in INTERVAL_UNITS.values()}
    except (OSError, ValueError, EOFError):
        return None


def row_units(row: dict[str, Any], out: Path) -> dict[str, np.ndarray] | None:
    """``{unit key: (seeds, S)}`` per-molecule errors of a row (its seeds, or itself for the reference)."""
    per_seed = []
    for rec in row.get("seeds") or [row]:
        rel = (rec.get("artifacts") or {}).get("predictions")
        units = _unit_file(Path(out) / rel) if rel else None
        if units is None:
            return None
        per_seed.append(units)
    if len({u["energy_abs"].shape for u in per_seed}) != 1:
        return None
    return {key: np.stack([u[key] for u in per_seed]) for key in per_seed[0]}


def _point(row: dict[str, Any], key: str) -> float:
    v = (row.get("metrics") or {}).get(key)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.inf


def _comparisons(row, units, reference, models, errs, boot: Bootstrap) -> dict[str, Any]:
    """``{figure: {"reference": {...}, "best_other_model": {...}}}`` of a model row (paired on test molecules)."""
    out: dict[str, Any] = {}
    for key in COMPARED:
        unit = INTERVAL_UNITS[key]
        comps = {}
        if reference is not None:
            comps["reference"] = {"other": reference["name"], **boot.compare(units[unit], errs[id(reference)][unit])}
        others = sorted((m for m in models if m is not row), key=lambda m: _point(m, key))
        if others:
            best = others[0]
            comps["best_other_model"] = {"other": best["name"], **boot.compare(units[unit], errs[id(best)][unit])}
        out[key] = comps
    return out


def finalize_energy_group(entry: dict[str, Any], out: Path, suite) -> None:
    """Recompute ``bootstrap``, ``intervals`` and ``comparisons`` of an energy group from its rows' files.

    ``row["intervals"]``: ``energy_mae``, ``energy_per_atom_mae``, ``forces_mae`` (seed mean,
    95% interval, seed std) and ``energy_mae_vs_reference``, ``forces_mae_vs_reference``
    (``{"value", "lo", "hi"}``: paired ratio to the reference). ``row["comparisons"]``
    (models): see ``_comparisons``.
    """
    rows = [r for r in entry.get("rows", []) if r.get("status") == "ok"]
    errs = {id(r): row_units(r, out) for r in rows}
    rows = [r for r in rows if errs[id(r)] is not None]
    if not rows:
        return
    n = errs[id(rows[0])]["energy_abs"].shape[-1]
    if n < 2:
        return  # one test molecule: nothing to resample (the suite refuses n_test < 2)
    boot = Bootstrap(n, block_length=1, resamples=suite.bootstrap_resamples, seed=0)
    entry["bootstrap"] = boot.describe()
    reference = next((r for r in rows if r.get("kind") == "baseline" and r["name"] == REFERENCE), None)
    models = [r for r in rows if r.get("kind") == "model"]
    for row in rows:
        units = errs[id(row)]
        iv: dict[str, Any] = {key: boot.interval(units[unit]) for key, unit in INTERVAL_UNITS.items()}
        if reference is not None:
            for key in COMPARED:
                c = boot.compare(units[INTERVAL_UNITS[key]], errs[id(reference)][INTERVAL_UNITS[key]])
                iv[f"{key}_vs_reference"] = {"value": c["ratio"], "lo": c["lo"], "hi": c["hi"]}
        row["intervals"] = iv
        if row.get("kind") == "model":
            row["comparisons"] = _comparisons(row, units, reference, models, errs, boot)


__all__ = [
    "ENERGY_METRIC_KEYS",
    "REFERENCE",
    "aggregate_metrics",
    "evaluate_model",
    "evaluate_reference",
    "finalize_energy_group",
    "fit_reference",
    "group_entry",
]
