"""The ``results.json`` schema of ``irrepnet bench`` (version 3; versions 1 and 2 still load), documented and checked.

One file per benchmark run. Everything a report or plot needs is in it, or in the
per-run artifacts it names (paths relative to the folder of ``results.json``).

Top level
---------
``schema``            ``"irrepnet.bench.results"``
``schema_version``    ``3`` (files of version ``1``, written before seeds and intervals, and ``2``,
                      before energy groups, still load; a reader refuses other versions, see
                      :func:`validate`)
``suite``             ``{"name", "description", "file", "models", "train", "variants", "seeds",
                      "tune"}``: the suite that ran (``file`` may be null; ``seeds`` and ``tune``
                      from version 2; ``sizes`` when the suite set task sizes)
``provenance``        :func:`irrepnet.provenance.provenance`: commit, dirty, machine, device,
                      python/torch/e3nn versions, threads, date
``started``, ``finished``   UTC ISO-8601 strings (``finished`` null while running)
``groups``            list of groups; a group is one task variant (e.g. history 0 or 2)

Group
-----
``id``                short label unique in the file, e.g. ``"history-0"``
``task``              ``"twelve_body"`` or ``"nbody"``
``history``           int (twelve_body), 0 on nbody
``bonds``             optional bool: the models were told the chain's bonds (absent: false)
``data``              where the data came from (file + sha256 tag, or the simulator config)
``sizes``             ``{"train", "valid", "test"}`` sample counts
``target_scale``      RMS of the training target (the unit of the normalised loss)
``zero_mse``          test MSE of the zero-displacement baseline (the normaliser of ``mse_vs_zero``)
``target_valid_mse``  the validation MSE whose first crossing is timed (``time_to_target_s``)
``rollout_horizons``  list of int (empty on nbody)
``rows``              list of rows, baselines first

Version 2 adds to each group:

``residual``          the physical extrapolation the models corrected (``"none"``,
                      ``"constant_velocity"``, ``"constant_acceleration"``)
``input_noise``       input-noise level of training (0: none), ``start_at_baseline`` (bool),
                      ``variant_train`` (the variant's own training options)
``seeds``             list of int: every model row was trained once per seed
``bootstrap``         the resampling of test units: ``{"method", "block_length", "resamples",
                      "confidence", "seed", "n_units"}`` (:mod:`irrepnet.stats`)
``rollout_bootstrap`` the same for rollout start frames (block length 1), or null
``budget``            ``{"per_model": {name: {"steps", "max_steps", "epochs", "steps_per_epoch",
                      "batch_size", "lr"}}, "equal_steps": bool, "steps"}`` or null

Row (a trained model or a parameter-free baseline)
---------------------------------------------------
``name``              registry name, or a baseline name such as ``"linear (fitted dt)"``
``kind``              ``"model"`` or ``"baseline"``
``status``            ``"ok"``, ``"skipped"`` (e.g. a model that does not support the task)
                      or ``"error"`` (an exception while it was built, tuned, trained, scored,
                      audited or timed: :mod:`irrepnet.bench.failures`); ``reason`` says why
                      for the last two in one line (for an error: the exception's type and
                      message, the seed and phase, and the traceback file)
``errors``            error rows of a run since the harness goes on after failures: one
                      ``{"seed" (absent for build and tune), "phase", "error", "traceback"}``
                      per failed unit; ``error`` is ``"Type: message"`` on one line,
                      ``traceback`` the relative path of its ``error.txt``. Optional; an
                      error row's ``seeds`` holds the records of its seeds that finished
``symmetry``          ``"E(3)"``, ``"SE(3)"`` or ``"none"``
``parameters``        int
``config``            the model's config (dict) or null
``train``             the training config (dict) or null for baselines
``metrics``           ``test_mse`` (physical units, per coordinate), ``mse_vs_zero``
                      (``test_mse / zero_mse``), ``r2`` (on the displacement), ``valid_mse``,
                      ``correlations`` (dict: ``com``, ``particle0``, ``particle6_x``,
                      ``last_y``; twelve_body only, Pearson r of predicted vs true displacement)
``rollout``           ``{"horizons": [...], "mse": [...]}`` on twelve_body: MSE of positions
                      after k fed-back steps, averaged over start frames; null elsewhere
``equivariance``      ``{"float32": {...}, "float64": {...}}``, each ``{"passed", "checks":
                      {name: {"rel_error", "abs_error", "claimed", "passed"}}}`` from the audit
                      of the trained model; null when not audited
``speed``             ``train_step_ms`` (median after warm-up), ``epoch_s`` (median),
                      ``train_time_s`` (total), ``infer_graphs_per_s``, ``infer_latency_ms``
                      (one graph), ``peak_memory_mb``, ``memory_kind`` (``"cuda"`` or
                      ``"rss"``: process peak RSS), ``time_to_target_s`` (null if never reached)
``training``          ``epochs``, ``steps``, ``best_epoch``, ``stopped`` (``"epochs"``,
                      ``"max_steps"``, ``"early_stopping"``) or null for baselines; optional
                      ``notices``: options the training capped (``steps_per_epoch`` beyond one
                      pass), as announced on stderr
``artifacts``         relative paths: ``log`` (JSON lines per epoch), ``checkpoint`` (best),
                      ``predictions`` (npz: ``pred``/``true`` test displacements ``(S, N, 3)``,
                      ``frame_mse`` ``(S,)`` float64 per test sample (version 2), and on
                      twelve_body ``rollout_pred``/``rollout_true`` ``(K+1, N, 3)``
                      positions of the first rollout); missing keys mean not written

Version 2 rows
--------------
A model row aggregates its seeds: ``metrics`` are means over seeds, ``rollout.mse``
per-horizon means (null if any seed diverged), ``equivariance`` the worst seed per
check, ``speed`` medians, ``training.steps`` the common step count, and ``artifacts``
the first seed's. Added keys:

``seeds``             list of per-seed records ``{"seed", "metrics", "rollout", "equivariance",
                      "speed", "training", "artifacts"}`` (empty for baselines, which are
                      deterministic); ``rollout.mse_per_start`` ``(B, H)`` in each record
``metrics_std``       ``{"test_mse", "mse_vs_zero"}`` standard deviation over seeds (null with one)
``tuning``            null, or ``{"steps", "seed", "trials": [{"lr", "config", "valid_mse"}],
                      "chosen": {"lr", "config"}}``: the grid tried on the validation split
``intervals``         ``test_mse``: ``{"value", "lo", "hi", "seed_std", "n_seeds"}`` (95% block
                      bootstrap over test units of the seed mean); ``mse_vs_zero``: ``{"value",
                      "lo", "hi"}`` (paired ratio to zero displacement); ``rollout``: ``{horizon:
                      {...}}``. ``lo``/``hi`` are null when an error is not finite
``comparisons``       models only: ``best_baseline`` / ``best_other_model``: ``{"other", "ratio",
                      "lo", "hi", "prob_a_lower", "verdict"}`` with verdict ``"lower"``,
                      ``"higher"``, ``"within noise"`` or ``"not comparable"`` (ratio = this row's
                      MSE over the other's, on the same resamples); ``rollout``: ``{horizon:
                      {baseline: {...}}}`` against zero displacement and constant velocity

Version 3: energy groups
------------------------
A group may have ``target``: ``"displacement"`` (the groups above; absent means that)
or ``"energy"`` (task ``molecules``: :mod:`irrepnet.bench.energy`). An energy group has
``id``, ``task``, ``target``, ``history`` (0), ``data``, ``sizes`` (molecules), ``units``
(``{"energy": "eV", "forces": "eV/Å"}``), ``force_rms`` (training force RMS, the unit of
the loss), ``loss_weights`` (``{"energy_weight", "force_weight"}``), ``reference`` (``{"name",
"atom_energies": {element: eV}, "fit"}``), ``variant_train``, ``seeds``, ``bootstrap``
(over test molecules, block length 1), ``budget`` and ``rows``; none of the displacement
keys (``zero_mse``, ``rollout_horizons``, ``residual``...).

Its rows: the reference ``"atom energies"`` (kind ``"baseline"``, no speed, no audit)
first, then the models. ``metrics``: ``energy_mae``, ``energy_rmse`` (eV per molecule),
``energy_per_atom_mae`` (eV/atom), ``forces_mae``, ``forces_rmse`` (eV/Å, over force
components), ``valid_energy_mae``, ``valid_forces_mae`` (validation split, kept epoch);
``metrics_std``: ``energy_mae``, ``forces_mae``. ``rollout`` is null, ``speed.time_to_target_s``
null. ``intervals``: ``energy_mae``, ``energy_per_atom_mae``, ``forces_mae`` (``{"value", "lo",
"hi", "seed_std", "n_seeds"}``) and ``energy_mae_vs_reference``, ``forces_mae_vs_reference``
(``{"value", "lo", "hi"}``, paired ratios to the reference). ``comparisons`` (models):
``{"energy_mae" | "forces_mae": {"reference" | "best_other_model": {"other", "ratio",
...}}}``. ``predictions.npz``: ``energy_pred``, ``energy_true``, ``num_nodes`` ``(S,)``,
``forces_pred``, ``forces_true`` ``(n, 3)`` and the per-molecule errors ``energy_abs``,
``energy_sq``, ``energy_per_atom_abs``, ``forces_abs``, ``forces_sq`` ``(S,)``, whose means
are the figures (:func:`irrepnet.metrics.per_molecule_errors`).
"""

from __future__ import annotations

from typing import Any

SCHEMA = "irrepnet.bench.results"
SCHEMA_VERSION = 3
#: versions :func:`validate` accepts (1: before seeds, intervals and paired comparisons; 2: before energy groups)
READABLE_VERSIONS = (1, 2, 3)

TOP_KEYS = ("schema", "schema_version", "suite", "provenance", "started", "finished", "groups")
GROUP_KEYS = (
    "id",
    "task",
    "history",
    "data",
    "sizes",
    "target_scale",
    "zero_mse",
    "target_valid_mse",
    "rollout_horizons",
    "rows",
)
ROW_KEYS = (
    "name",
    "kind",
    "status",
    "symmetry",
    "parameters",
    "config",
    "train",
    "metrics",
    "rollout",
    "equivariance",
    "speed",
    "training",
    "artifacts",
)
METRIC_KEYS = ("test_mse", "mse_vs_zero", "r2", "valid_mse", "correlations")
SPEED_KEYS = (
    "train_step_ms",
    "epoch_s",
    "train_time_s",
    "infer_graphs_per_s",
    "infer_latency_ms",
    "peak_memory_mb",
    "memory_kind",
    "time_to_target_s",
)
GROUP_KEYS_V2 = GROUP_KEYS + ("residual", "input_noise", "seeds", "bootstrap", "budget")
ROW_KEYS_V2 = ROW_KEYS + ("seeds", "intervals", "comparisons", "tuning")
ENERGY_GROUP_KEYS = (
    "id",
    "task",
    "target",
    "history",
    "data",
    "sizes",
    "units",
    "force_rms",
    "loss_weights",
    "reference",
    "variant_train",
    "seeds",
    "bootstrap",
    "budget",
    "rows",
)
ENERGY_METRIC_KEYS = (
    "energy_mae",
    "energy_rmse",
    "energy_per_atom_mae",
    "forces_mae",
    "forces_rmse",
    "valid_energy_mae",
    "valid_forces_mae",
)
TARGETS = ("displacement", "energy")
SEED_KEYS = ("seed", "metrics", "rollout", "equivariance", "speed", "training", "artifacts")
KINDS = ("model", "baseline")
STATUSES = ("ok", "skipped", "error")
#: keys of each failed unit in an error row's ``errors``
ERROR_KEYS = ("phase", "error", "traceback")


class SchemaError(ValueError):
    """``results.json`` does not follow the schema; the message names the path of the problem."""


def _need(obj: dict[str, Any], keys, where: str, errors: list[str]) -> None:
    if not isinstance(obj, dict):
        errors.append(f"{where}: expected an object, got {type(obj).__name__}")
        return
    for k in keys:
        if k not in obj:
            errors.append(f"{where}: missing key {k!r}")


def _group_target(group: Any, version: int, where: str, errors: list[str]) -> str:
    """The group's ``target`` (absent: ``"displacement"``); energy groups need version 3."""
    target = group.get("target", "displacement") if isinstance(group, dict) else "displacement"
    if target not in TARGETS:
        errors.append(f"{where}: target {target!r} not in {TARGETS}")
    elif target == "energy" and version < 3:
        errors.append(f"{where}: energy groups need schema_version 3, the file says {version}")
    return target


def validate(results: dict[str, Any]) -> dict[str, Any]:
    """Return ``results`` if it follows schema version 1, 2 or 3, else raise :class:`SchemaError` listing every
    problem."""
    errors: list[str] = []
    _need(results, TOP_KEYS, "results", errors)
    if errors:
        raise SchemaError("; ".join(errors))
    if results["schema"] != SCHEMA:
        raise SchemaError(f"results: schema is {results['schema']!r}, expected {SCHEMA!r}")
    version = results["schema_version"]
    if version not in READABLE_VERSIONS:
        raise SchemaError(
            f"results: schema_version {version!r} is not supported "
            f"(this irrepnet reads versions {READABLE_VERSIONS}); re-run the benchmark"
        )
    group_keys, row_keys = (GROUP_KEYS, ROW_KEYS) if version == 1 else (GROUP_KEYS_V2, ROW_KEYS_V2)
    ids = set()
    for gi, group in enumerate(results["groups"]):
        where = f"groups[{gi}]"
        energy = _group_target(group, version, where, errors) == "energy"
        _need(group, ENERGY_GROUP_KEYS if energy else group_keys, where, errors)
        if not isinstance(group, dict) or "rows" not in group:
            continue
        if group.get("id") in ids:
            errors.append(f"{where}: duplicate id {group.get('id')!r}")
        if not isinstance(group.get("bonds", False), bool):
            errors.append(f"{where}: bonds must be true or false, got {group.get('bonds')!r}")
        ids.add(group.get("id"))
        for ri, row in enumerate(group["rows"]):
            rwhere = f"{where}.rows[{ri}]"
            _need(row, row_keys, rwhere, errors)
            if not isinstance(row, dict):
                continue
            if row.get("kind") not in KINDS:
                errors.append(f"{rwhere}: kind {row.get('kind')!r} not in {KINDS}")
            if row.get("status") not in STATUSES:
                errors.append(f"{rwhere}: status {row.get('status')!r} not in {STATUSES}")
            if row.get("status") != "ok":
                if not row.get("reason"):
                    errors.append(f"{rwhere}: status {row.get('status')!r} needs a 'reason'")
                for ei, note in enumerate(row.get("errors") or []):
                    _need(note, ERROR_KEYS, f"{rwhere}.errors[{ei}]", errors)
                continue
            _need(row.get("metrics"), ENERGY_METRIC_KEYS if energy else METRIC_KEYS, f"{rwhere}.metrics", errors)
            if row.get("kind") == "model":
                _need(row.get("speed"), SPEED_KEYS, f"{rwhere}.speed", errors)
            if version >= 2:
                if not isinstance(row.get("seeds"), list) or (row.get("kind") == "model" and not row["seeds"]):
                    errors.append(f"{rwhere}.seeds: a model row needs a non-empty list of per-seed records")
                for si, rec in enumerate(row.get("seeds") or []):
                    _need(rec, SEED_KEYS, f"{rwhere}.seeds[{si}]", errors)
                if not isinstance(row.get("intervals"), dict):
                    errors.append(f"{rwhere}.intervals: expected an object")
    if errors:
        raise SchemaError("; ".join(errors))
    return results
