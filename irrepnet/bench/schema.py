"""The ``results.json`` schema of ``irrepnet bench`` (version 1), documented and checked.

One file per benchmark run. Everything a report or plot needs is in it, or in the
per-run artifacts it names (paths relative to the folder of ``results.json``).

Top level
---------
``schema``            ``"irrepnet.bench.results"``
``schema_version``    ``1``; a reader refuses other versions (see :func:`validate`)
``suite``             ``{"name", "description", "file"}``: the suite that ran (``file`` may be null)
``provenance``        :func:`irrepnet.provenance.provenance`: commit, dirty, machine, device,
                      python/torch/e3nn versions, threads, date
``started``, ``finished``   UTC ISO-8601 strings (``finished`` null while running)
``groups``            list of groups; a group is one task variant (e.g. history 0 or 2)

Group
-----
``id``                short label unique in the file, e.g. ``"history-0"``
``task``              ``"twelve_body"`` or ``"nbody"``
``history``           int (twelve_body), 0 on nbody
``data``              where the data came from (file + sha256 tag, or the simulator config)
``sizes``             ``{"train", "valid", "test"}`` sample counts
``target_scale``      RMS of the training target (the unit of the normalised loss)
``zero_mse``          test MSE of the zero-displacement baseline (the normaliser of ``mse_vs_zero``)
``target_valid_mse``  the validation MSE whose first crossing is timed (``time_to_target_s``)
``rollout_horizons``  list of int (empty on nbody)
``rows``              list of rows, baselines first

Row (a trained model or a parameter-free baseline)
---------------------------------------------------
``name``              registry name, or a baseline name such as ``"linear (fitted dt)"``
``kind``              ``"model"`` or ``"baseline"``
``status``            ``"ok"``, ``"skipped"`` (e.g. a model that does not support the task)
                      or ``"error"``; ``reason`` says why for the last two
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
                      ``"max_steps"``, ``"early_stopping"``) or null for baselines
``artifacts``         relative paths: ``log`` (JSON lines per epoch), ``checkpoint`` (best),
                      ``predictions`` (npz: ``pred``/``true`` test displacements ``(S, N, 3)``,
                      and on twelve_body ``rollout_pred``/``rollout_true`` ``(K+1, N, 3)``
                      positions of the first rollout); missing keys mean not written
"""

from __future__ import annotations

from typing import Any, Dict, List

SCHEMA = "irrepnet.bench.results"
SCHEMA_VERSION = 1

TOP_KEYS = ("schema", "schema_version", "suite", "provenance", "started", "finished", "groups")
GROUP_KEYS = ("id", "task", "history", "data", "sizes", "target_scale", "zero_mse", "target_valid_mse",
              "rollout_horizons", "rows")
ROW_KEYS = ("name", "kind", "status", "symmetry", "parameters", "config", "train", "metrics", "rollout",
            "equivariance", "speed", "training", "artifacts")
METRIC_KEYS = ("test_mse", "mse_vs_zero", "r2", "valid_mse", "correlations")
SPEED_KEYS = ("train_step_ms", "epoch_s", "train_time_s", "infer_graphs_per_s", "infer_latency_ms",
              "peak_memory_mb", "memory_kind", "time_to_target_s")
KINDS = ("model", "baseline")
STATUSES = ("ok", "skipped", "error")


class SchemaError(ValueError):
    """``results.json`` does not follow the schema; the message names the path of the problem."""


def _need(obj: Dict[str, Any], keys, where: str, errors: List[str]) -> None:
    if not isinstance(obj, dict):
        errors.append(f"{where}: expected an object, got {type(obj).__name__}")
        return
    for k in keys:
        if k not in obj:
            errors.append(f"{where}: missing key {k!r}")


def validate(results: Dict[str, Any]) -> Dict[str, Any]:
    """Return ``results`` if it follows schema version 1, else raise :class:`SchemaError` listing every problem."""
    errors: List[str] = []
    _need(results, TOP_KEYS, "results", errors)
    if errors:
        raise SchemaError("; ".join(errors))
    if results["schema"] != SCHEMA:
        raise SchemaError(f"results: schema is {results['schema']!r}, expected {SCHEMA!r}")
    if results["schema_version"] != SCHEMA_VERSION:
        raise SchemaError(f"results: schema_version {results['schema_version']!r} is not supported "
                          f"(this irrepnet reads version {SCHEMA_VERSION}); re-run the benchmark")
    ids = set()
    for gi, group in enumerate(results["groups"]):
        where = f"groups[{gi}]"
        _need(group, GROUP_KEYS, where, errors)
        if not isinstance(group, dict) or "rows" not in group:
            continue
        if group.get("id") in ids:
            errors.append(f"{where}: duplicate id {group.get('id')!r}")
        ids.add(group.get("id"))
        for ri, row in enumerate(group["rows"]):
            rwhere = f"{where}.rows[{ri}]"
            _need(row, ROW_KEYS, rwhere, errors)
            if not isinstance(row, dict):
                continue
            if row.get("kind") not in KINDS:
                errors.append(f"{rwhere}: kind {row.get('kind')!r} not in {KINDS}")
            if row.get("status") not in STATUSES:
                errors.append(f"{rwhere}: status {row.get('status')!r} not in {STATUSES}")
            if row.get("status") != "ok":
                if not row.get("reason"):
                    errors.append(f"{rwhere}: status {row.get('status')!r} needs a 'reason'")
                continue
            _need(row.get("metrics"), METRIC_KEYS, f"{rwhere}.metrics", errors)
            if row.get("kind") == "model":
                _need(row.get("speed"), SPEED_KEYS, f"{rwhere}.speed", errors)
    if errors:
        raise SchemaError("; ".join(errors))
    return results
