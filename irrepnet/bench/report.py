"""The report of an ``irrepnet bench`` run: ``results.csv``, ``report.md`` and the plots.

Everything is computed from ``results.json`` (schema :mod:`irrepnet.bench.schema`) and
the artifacts it names, so a report can be rebuilt at any time from a results folder::

    results = load_results("benchmarks/results/run/results.json")
    write_all(results, "benchmarks/results/run")

Numbers: MSEs are per coordinate of the predicted displacement ``x(t+1) - x(t)``
(rollouts: of the positions), in the squared length unit of the data; their formats
and the accessors of a row are in :mod:`irrepnet.bench.formatting`. Energy groups (the
molecules task) have a table and CSV columns of their own: :mod:`irrepnet.bench.report_energy`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from . import report_energy, schema
from .formatting import (  # noqa: F401  (re-exported: the report's public helpers)
    MAX_TABLE_HORIZONS,
    MISSING,
    Results,
    Row,
    _all_horizons,
    _get,
    _mse_key,
    _num,
    equivariance_error,
    equivariance_passed,
    fmt_ci,
    fmt_int,
    fmt_near_one,
    fmt_plain,
    fmt_sci,
    fmt_sig,
    fmt_vs_zero,
    interval,
    is_energy_group,
    md_cell,
    md_table,
    ordered_rows,
    rollout_cell,
    rollout_mse,
    seed_budget_facts,
    seed_std,
    table_horizons,
    with_ci,
)

PathLike = Any

#: correlation keys of twelve_body rows, with their column titles.
CORRELATIONS = {
    "com": "centre of mass",
    "particle0": "particle 0",
    "particle6_x": "particle 6 (x)",
    "last_y": "last particle (y)",
}


# ---------------------------------------------------------------------------- CSV


def _has_energy(results: Results) -> bool:
    return any(is_energy_group(g) for g in results.get("groups", []))


def csv_header(results: Results) -> list[str]:
    """Column names of :func:`write_csv` (the rollout columns depend on the horizons in the file; a file with
    an energy group has the energy columns last, :data:`~irrepnet.bench.report_energy.ENERGY_CSV_COLUMNS`)."""
    return (
        [
            "group",
            "task",
            "history",
            "name",
            "kind",
            "status",
            "symmetry",
            "parameters",
            "test_mse",
            "mse_vs_zero",
            "r2",
            "valid_mse",
        ]
        + [f"corr_{k}" for k in CORRELATIONS]
        + [f"rollout_mse_k{h}" for h in _all_horizons(results)]
        + ["equiv_f32_worst_rel_error", "equiv_f32_passed", "equiv_f64_worst_rel_error", "equiv_f64_passed"]
        + list(schema.SPEED_KEYS)
        + ["epochs", "steps", "best_epoch", "stopped", "reason"]
        # schema 2 (empty for version-1 files): protocol, intervals and the paired verdicts
        + [
            "residual",
            "n_seeds",
            "test_mse_seed_std",
            "test_mse_lo",
            "test_mse_hi",
            "mse_vs_zero_lo",
            "mse_vs_zero_hi",
            "vs_best_baseline",
            "vs_best_baseline_ratio",
            "vs_best_baseline_lo",
            "vs_best_baseline_hi",
            "vs_best_baseline_verdict",
        ]
        + (list(report_energy.ENERGY_CSV_COLUMNS) if _has_energy(results) else [])
    )


def _csv_row(group: dict[str, Any], row: Row, horizons: Iterable[int]) -> list[Any]:
    metrics = row.get("metrics") or {}
    speed = row.get("speed") or {}
    training = row.get("training") or {}
    corr = metrics.get("correlations") or {}
    return (
        [
            group.get("id"),
            group.get("task"),
            group.get("history"),
            row.get("name"),
            row.get("kind"),
            row.get("status"),
            row.get("symmetry"),
            row.get("parameters"),
            metrics.get("test_mse"),
            metrics.get("mse_vs_zero"),
            metrics.get("r2"),
            metrics.get("valid_mse"),
        ]
        + [corr.get(k) for k in CORRELATIONS]
        + [rollout_mse(row, h) for h in horizons]
        + [
            equivariance_error(row, "float32"),
            equivariance_passed(row, "float32"),
            equivariance_error(row, "float64"),
            equivariance_passed(row, "float64"),
        ]
        + [speed.get(k) for k in schema.SPEED_KEYS]
        + [
            training.get("epochs"),
            _csv_steps(training.get("steps")),
            _csv_steps(training.get("best_epoch")),
            training.get("stopped"),
            row.get("reason"),
        ]
        + _csv_v2(group, row)
    )


def _csv_steps(value: Any) -> Any:
    """Per-seed lists (steps or best epochs that differ between seeds) as ``a/b/c``."""
    return "/".join(str(v) for v in value) if isinstance(value, list) else value


def _csv_v2(group: dict[str, Any], row: Row) -> list[Any]:
    if "bootstrap" not in group:
        return [None] * 12
    test, vs_zero = interval(row, "test_mse") or {}, interval(row, "mse_vs_zero") or {}
    best = (row.get("comparisons") or {}).get("best_baseline") or {}
    residual = (row.get("train") or {}).get("residual") if row.get("kind") == "model" else None
    return [
        residual,
        len(row.get("seeds") or []) or None,
        test.get("seed_std"),
        test.get("lo"),
        test.get("hi"),
        vs_zero.get("lo"),
        vs_zero.get("hi"),
        best.get("other"),
        best.get("ratio"),
        best.get("lo"),
        best.get("hi"),
        best.get("verdict"),
    ]


def write_csv(results: Results, path: PathLike) -> Path:
    """One line per row of every group (all statuses), full precision; empty cell = missing.

    Columns: see :func:`csv_header`. Floats are written with ``repr`` precision so the
    CSV round-trips the JSON numbers.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    horizons = _all_horizons(results)
    energy = _has_energy(results)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(csv_header(results))
        for group in results.get("groups", []):
            for row in group.get("rows", []):
                cells = _csv_row(group, row, horizons) + (report_energy.csv_cells(group, row) if energy else [])
                writer.writerow(["" if v is None else v for v in cells])
    return path


# ---------------------------------------------------------------------------- markdown


def _name(row: Row) -> str:
    """Model names plain, baselines in italics and marked, so they read as reference rows."""
    name = md_cell(row.get("name"))
    return f"*{name}* (baseline)" if row.get("kind") == "baseline" else name


def provenance_line(results: Results) -> str:
    """``commit abc1234 (dirty) · machine · device cpu · torch … · e3nn … · python … · date``."""
    p = results.get("provenance") or {}
    commit = p.get("commit")
    parts = [f"commit `{commit[:7]}`" + (" (dirty)" if p.get("dirty") else "") if commit else "commit unknown"]
    parts.append(str(p.get("machine") or "machine unknown"))
    parts.append(f"device {p.get('device') or '?'}")
    for key in ("torch", "e3nn", "python"):
        if p.get(key):
            parts.append(f"{key} {p[key]}")
    if p.get("torch_threads") is not None:
        parts.append(f"{p['torch_threads']} torch threads")
    if p.get("date"):
        parts.append(str(p["date"]))
    return " · ".join(parts)


def _data_text(data: Any) -> str:
    """The group's ``data`` field in one line (a string, or ``key: value`` pairs)."""
    if isinstance(data, dict):
        items = [f"{k}: {v}" for k, v in data.items() if v is not None and not isinstance(v, (dict, list))]
        text = "; ".join(items)
    else:
        text = str(data) if data is not None else ""
    return text if len(text) <= 300 else text[:297] + "..."


def _group_heading(group: dict[str, Any]) -> list[str]:
    title = f"## {group.get('id')}" + (f": {group.get('task')}" if group.get("task") != group.get("id") else "")
    if group.get("task") == "twelve_body":
        title += f", history h = {group.get('history')}"
        if group.get("bonds"):
            title += ", bonds given (chain separation as an edge feature)"
    sizes = group.get("sizes") or {}
    lines = [title, ""]
    facts = []
    if sizes:
        facts.append("samples " + " / ".join(f"{k} {sizes.get(k, MISSING)}" for k in ("train", "valid", "test")))
    facts.append(f"zero-displacement test MSE {fmt_sci(group.get('zero_mse'))}")
    facts.append(f"target RMS {fmt_sig(group.get('target_scale'))}")
    if group.get("target_valid_mse") is not None:
        facts.append(f"timed target valid MSE {fmt_sci(group.get('target_valid_mse'))}")
    lines.append("; ".join(facts) + ".")
    data = _data_text(group.get("data"))
    if data:
        lines += ["", f"Data: {data}"]
    return lines + [""]


def _equiv_cell(row: Row, dtype: str = "float32") -> str:
    err = equivariance_error(row, dtype)
    if err is None:
        return MISSING
    return fmt_sci(err) + (" ✗" if equivariance_passed(row, dtype) is False else "")


def _seeds_cell(row: Row) -> str:
    n = len(row.get("seeds") or [])
    return str(n) if n else MISSING


def _main_table(group: dict[str, Any]) -> list[str]:
    """The group's table; version-2 groups add seeds, the seed spread and 95% intervals."""
    horizons = table_horizons(group.get("rollout_horizons") or [])
    v2 = "bootstrap" in group
    ci = " [95% CI]" if v2 else ""
    header = (
        ["model", "symmetry", "params"]
        + (["seeds"] if v2 else [])
        + [f"test MSE{ci}"]
        + (["seed std"] if v2 else [])
        + [f"MSE / zero{ci}", "R² (dx)"]
        + [f"rollout MSE @{h}{ci}" for h in horizons]
        + ["equiv. err f32", "equiv. err f64"]
        + (["steps"] if v2 else [])
        + ["train step ms", "infer graphs/s", "peak MB", "train time s"]
    )
    rows = []
    for r in ordered_rows(group):
        m, s, t = r.get("metrics") or {}, r.get("speed") or {}, r.get("training") or {}
        rows.append(
            [_name(r), r.get("symmetry") or MISSING, fmt_int(r.get("parameters"))]
            + ([_seeds_cell(r)] if v2 else [])
            + [with_ci(fmt_sci(m.get("test_mse")), interval(r, "test_mse"))]
            + ([fmt_sci(seed_std(r))] if v2 else [])
            + [
                with_ci(fmt_vs_zero(m.get("mse_vs_zero")), interval(r, "mse_vs_zero"), fmt_vs_zero),
                fmt_near_one(m.get("r2")),
            ]
            + [with_ci(rollout_cell(r, h), interval(r, "rollout", h)) for h in horizons]
            + [_equiv_cell(r), _equiv_cell(r, "float64")]
            + ([_steps_cell(t.get("steps"))] if v2 else [])
            + [
                fmt_plain(s.get("train_step_ms")),
                fmt_plain(s.get("infer_graphs_per_s")),
                fmt_plain(s.get("peak_memory_mb")),
                fmt_plain(s.get("train_time_s")),
            ]
        )
    if not rows:
        return ["No row finished in this group.", ""]
    return md_table(header, rows, ["l", "l"] + ["r"] * (len(header) - 2)) + [""]


def _steps_cell(steps: Any) -> str:
    if isinstance(steps, list):  # seeds that stopped at different steps (early stopping)
        return "/".join(fmt_int(x) for x in steps)
    return fmt_int(steps)


def comparison_sentences(group: dict[str, Any]) -> list[str]:
    """Sentences computed from the paired comparisons stored in the rows (schema version 2).

    Every model against the best baseline; the best model against the runner-up; the
    best model's rollout against zero displacement and constant velocity at the table's
    horizons. Nothing here compares point estimates: each verdict comes from the
    bootstrap interval of the paired ratio.
    """
    from ..stats import verdict_sentence

    models = [r for r in ordered_rows(group) if r.get("kind") == "model" and r.get("comparisons")]
    if not models:
        return []
    lines = []
    for r in models:
        c = r["comparisons"].get("best_baseline")
        if c:
            lines.append("- " + verdict_sentence(r["name"], c["other"], c))
    best = models[0]
    c = best["comparisons"].get("best_other_model")
    if c:
        lines.append("- Best model against the runner-up: " + verdict_sentence(best["name"], c["other"], c))
    horizons = table_horizons(group.get("rollout_horizons") or [])
    equivariant = [r for r in models if r.get("symmetry") in ("E(3)", "SE(3)")]
    if equivariant and horizons:
        # the best equivariant model on one-step accuracy, and (when another) the one whose
        # rollout stays closest to the truth at the longest horizon: they often differ
        longest = horizons[-1]
        stable = [r for r in equivariant if rollout_mse(r, longest) is not None]
        picks = [(equivariant[0], "best E(3) model on test MSE")]
        if stable:
            steady = min(stable, key=lambda r: rollout_mse(r, longest))
            if steady is not equivariant[0]:
                picks.append((steady, f"best E(3) model on rollout MSE @{longest}"))
        for row, why in picks:
            roll = row["comparisons"].get("rollout") or {}
            for h in horizons:
                for ref, c in (roll.get(str(h)) or {}).items():
                    lines.append(f"- ({why}) " + verdict_sentence(row["name"], ref, c, what=f"rollout MSE @{h}"))
    return lines


def _group_protocol(group: dict[str, Any]) -> list[str]:
    """Residual, noise, seeds, budget and resampling of a version-2 group, in one paragraph."""
    if "bootstrap" not in group:
        return []
    facts = [f"residual: {group.get('residual') or 'none'}"]
    if group.get("start_at_baseline"):
        facts.append("training starts at the baseline (zero-initialised gate; epoch 0 is the baseline)")
    if group.get("input_noise"):
        facts.append(f"input noise {fmt_sig(group['input_noise'])} x target RMS")
    facts += seed_budget_facts(group, _steps_cell)
    b = group.get("bootstrap") or {}
    if b:
        facts.append(
            f"95% intervals: {b.get('method', 'bootstrap')} over {b.get('n_units')} test samples, blocks of "
            f"{b.get('block_length')}, {b.get('resamples')} resamples"
        )
    rb = group.get("rollout_bootstrap") or {}
    if rb:
        facts.append(f"rollout intervals: bootstrap over {rb.get('n_units')} start frames")
    return ["Protocol: " + "; ".join(facts) + ".", ""]


def _tuning_table(group: dict[str, Any]) -> list[str]:
    rows = [r for r in ordered_rows(group) if r.get("kind") == "model" and r.get("tuning")]
    if not rows:
        return []
    body = []
    for r in rows:
        t = r["tuning"]
        trials = "; ".join(
            f"lr {x['lr']:g}{' ' + str(x['config']) if x.get('config') else ''}: {fmt_sci(x.get('valid_mse'))}"
            for x in t.get("trials", [])
        )
        chosen = t.get("chosen") or {}
        body.append(
            [
                _name(r),
                f"{chosen.get('lr', 0):g}" + (f" {chosen['config']}" if chosen.get("config") else ""),
                str(t.get("steps")),
                trials,
            ]
        )
    return (
        [
            f"Grid chosen on the validation split (validation MSE after each trial's steps, seed "
            f"{rows[0]['tuning'].get('seed')}):",
            "",
        ]
        + md_table(["model", "chosen", "trial steps", "trials (validation MSE)"], body, ["l", "l", "r", "l"])
        + [""]
    )


def summary_sentences(group: dict[str, Any]) -> list[str]:
    """Which models beat zero displacement, the best model vs the best baseline, time to target."""
    ok = ordered_rows(group)
    models = [r for r in ok if r.get("kind") == "model"]
    baselines = sorted((r for r in ok if r.get("kind") == "baseline"), key=_mse_key)
    lines = []
    if models:
        ratio = {id(r): _num(_get(r, "metrics", "mse_vs_zero")) for r in models}
        beat = [r for r in models if ratio[id(r)] is not None and ratio[id(r)] < 1]
        rest = [r for r in models if all(r is not b for b in beat)]
        if beat:
            text = (
                f"{len(beat)} of {len(models)} trained models beat the zero-displacement baseline "
                f"(MSE / zero < 1): " + ", ".join(f"{r['name']} ({fmt_vs_zero(ratio[id(r)])})" for r in beat)
            )
            text += f"; not: {', '.join(r['name'] for r in rest)}." if rest else "."
        else:
            text = f"None of the {len(models)} trained models beats the zero-displacement baseline (MSE / zero < 1)."
        lines.append(text)
    best_m = models[0] if models and _mse_key(models[0])[0] == 0 else None
    best_b = baselines[0] if baselines and _mse_key(baselines[0])[0] == 0 else None
    if best_m is not None and best_b is not None:
        m_mse, b_mse = _num(best_m["metrics"]["test_mse"]), _num(best_b["metrics"]["test_mse"])
        head = (
            f"Best model: **{best_m['name']}**, test MSE {fmt_sci(m_mse)}, vs the best baseline "
            f"*{best_b['name']}* at {fmt_sci(b_mse)}: "
        )
        if b_mse > 0 and m_mse < b_mse:
            lines.append(head + f"{b_mse / m_mse:#.3g}× lower (ratio {m_mse / b_mse:#.3g}).")
        elif b_mse > 0:
            lines.append(head + f"{m_mse / b_mse:#.3g}× higher; no model beats the best baseline.")
        else:
            lines.append(head + "the baseline is exact on this data.")
    elif best_m is not None:
        lines.append(
            f"Best model: **{best_m['name']}**, test MSE {fmt_sci(best_m['metrics']['test_mse'])} "
            "(no baseline in this group)."
        )
    lines += _time_to_target(group, models)
    return lines


def _time_to_target(group: dict[str, Any], models: Sequence[Row]) -> list[str]:
    target = group.get("target_valid_mse")
    if target is None or not models:
        return []
    times = [(r["name"], _num(_get(r, "speed", "time_to_target_s"))) for r in models]
    reached = sorted((t, n) for n, t in times if t is not None)
    if not reached:
        return [f"No model reached the validation MSE target {fmt_sci(target)}."]
    text = (
        f"Validation MSE ≤ {fmt_sci(target)} reached by {len(reached)} of {len(models)} models; fastest: "
        + ", ".join(f"{n} ({fmt_plain(t)} s)" for t, n in reached[:3])
        + "."
    )
    return [text]


def _not_run(group: dict[str, Any]) -> list[str]:
    rows = [r for r in group.get("rows", []) if r.get("status") != "ok"]
    if not rows:
        return []
    lines = ["Not in the table:", ""]
    # "failed" rather than the status word "error": the reader should see at once that it did not run through
    status = {"error": "failed"}
    lines += [
        f"- {_name(r)}: **{status.get(r.get('status'), r.get('status'))}**: {md_cell(r.get('reason') or 'no reason given')}"
        for r in rows
    ]
    return lines + [""]


def _correlation_table(group: dict[str, Any]) -> list[str]:
    rows = [r for r in ordered_rows(group) if isinstance(_get(r, "metrics", "correlations"), dict)]
    if group.get("task") != "twelve_body" or not rows:
        return []
    header = ["model"] + list(CORRELATIONS.values())
    body = [[_name(r)] + [fmt_near_one(r["metrics"]["correlations"].get(k)) for k in CORRELATIONS] for r in rows]
    return (
        [
            "Pearson r of predicted vs true test displacement (1 = perfect; the dmol-book chapter's "
            "checks of the centre of mass, particle 0, the x of particle 6 and the y of the last particle):",
            "",
        ]
        + md_table(header, body, ["l"] + ["r"] * len(CORRELATIONS))
        + [""]
    )


def _plot_links(group_id: str, plots: dict[str, Any], out_dir: Path) -> list[str]:
    """Markdown image links to this group's plots (keys ``"<kind>/<group id>"``), existing files only."""
    from .plots import PLOTS

    lines = []
    for kind, (_, caption) in PLOTS.items():
        path = plots.get(f"{kind}/{group_id}")
        if path is None or not Path(path).is_file():
            continue
        rel = Path(os.path.relpath(Path(path).resolve(), out_dir.resolve())).as_posix()
        lines += [f"![{kind}, {group_id}]({rel})", "", f"*{caption}.*", ""]
    return lines


def _units_note(results: Results) -> list[str]:
    """How to read the tables: the displacement note when there is a displacement group, the energy one likewise."""
    groups = results.get("groups", [])
    energy = report_energy.units_note() if any(is_energy_group(g) for g in groups) else []
    if groups and all(is_energy_group(g) for g in groups):
        return energy
    return _displacement_note(results) + energy


def _displacement_note(results: Results) -> list[str]:
    kinds = sorted(
        {
            _get(r, "speed", "memory_kind")
            for g in results.get("groups", [])
            for r in g.get("rows", [])
            if _get(r, "speed", "memory_kind")
        }
    )
    memory = {
        "cuda": "peak CUDA memory allocated",
        "rss": "peak resident memory (RSS) of the process while the model "
        "trained and was evaluated (the peak is reset before each model through /proc/self/clear_refs on "
        "Linux; it includes torch and the data, about 300 MB, so compare differences)",
    }
    mem_text = "; ".join(f"{k}: {memory.get(k, k)}" for k in kinds) or "not measured"
    return [
        "**How to read the tables.** MSE is the mean squared error per coordinate of the predicted "
        "displacement x(t+1) − x(t), in the squared length unit of the data (not normalised); "
        "*MSE / zero* divides it by the zero-displacement baseline's MSE (below 1 = better than predicting "
        "no motion); R² is on the displacement. Rollout MSE @k is the position MSE after k steps fed back into "
        "the model, averaged over start frames (diverged: the fed-back positions overflowed). The equivariance errors are the largest relative error, "
        "|f(g·x) − g·f(x)| / max|g·f(x)|, among the symmetry checks the model claims, for the trained model "
        "run in float32 and in float64 (✗: above the tolerance, 1e-4 in float32 and 1e-9 in float64). A float32 "
        "failure with a float64 error near 1e-13 is round-off, not a broken symmetry: it happens when a "
        "model's output is small next to its intermediate values. Train step ms is the "
        "median after warm-up; infer graphs/s is batched inference throughput; train time s is the total "
        f"training time. Peak MB: {mem_text}. – = not measured or not applicable.",
        "",
    ]


def write_report(results: Results, out_dir: PathLike, plots: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir/report.md`` and return its path.

    Parameters
    ----------
    results : dict
        a results dict following :mod:`irrepnet.bench.schema`.
    out_dir : path
        folder of the report; image links are relative to it.
    plots : dict, optional
        ``{"<kind>/<group id>": path}`` as returned by :func:`irrepnet.bench.plots.plot_all`;
        missing keys or files are simply not linked.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = plots or {}
    suite = results.get("suite") or {}
    lines = [f"# Benchmark: {suite.get('name') or 'unnamed suite'}", ""]
    if suite.get("description"):
        lines += [str(suite["description"]), ""]
    lines += [f"Provenance: {provenance_line(results)}.", ""]
    run = f"Run started {results.get('started') or '?'}, "
    run += f"finished {results['finished']}." if results.get("finished") else "**not finished** (partial results)."
    if suite.get("file"):
        run += f" Suite file: `{suite['file']}`."
    lines += [run, ""] + _units_note(results)
    for group in results.get("groups", []):
        if is_energy_group(group):
            lines += (
                report_energy.group_lines(group)
                + _tuning_table(group)
                + _not_run(group)
                + _plot_links(str(group.get("id")), plots, out_dir)
            )
            continue
        lines += _group_heading(group) + _group_protocol(group) + _main_table(group)
        # version 2 groups say "A beats B" only from paired resamples (below), never from point estimates
        summary = (
            _time_to_target(group, [r for r in ordered_rows(group) if r.get("kind") == "model"])
            if group.get("bootstrap")
            else summary_sentences(group)
        )
        if summary:
            lines += [" ".join(summary), ""]
        computed = comparison_sentences(group)
        if computed:
            lines += (
                [
                    "Paired comparisons (ratio of MSEs on the same bootstrap resamples; *within noise* when the "
                    "95% interval contains 1):",
                    "",
                ]
                + computed
                + [""]
            )
        lines += (
            _tuning_table(group)
            + _not_run(group)
            + _correlation_table(group)
            + _plot_links(str(group.get("id")), plots, out_dir)
        )
    path = out_dir / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- files


def load_results(path: PathLike) -> Results:
    """Read ``results.json`` (or ``<folder>/results.json``) and check it with :func:`schema.validate`.

    Raises
    ------
    irrepnet.bench.schema.SchemaError
        the file does not follow the schema; the message names where.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    with open(path, encoding="utf-8") as fh:
        return schema.validate(json.load(fh))


def write_all(results: Results, out_dir: PathLike, results_dir: PathLike | None = None) -> dict[str, Any]:
    """Plots (``out_dir/plots/``), ``results.csv`` and ``report.md``.

    Parameters
    ----------
    results : dict
        a results dict following :mod:`irrepnet.bench.schema`.
    out_dir : path
        where the files go.
    results_dir : path, optional
        folder the artifact paths are relative to (the folder of ``results.json``);
        default ``out_dir``.

    Returns
    -------
    dict
        ``{"report": Path, "csv": Path, "plots": {"<kind>/<group id>": Path}}``.
        Plots whose inputs are missing (no log, no predictions, no rollout) are absent.
    """
    from .plots import plot_all

    out_dir = Path(out_dir)
    plots = plot_all(results, results_dir if results_dir is not None else out_dir, out_dir / "plots")
    csv_path = write_csv(results, out_dir / "results.csv")
    report = write_report(results, out_dir, plots)
    return {"report": report, "csv": csv_path, "plots": plots}
