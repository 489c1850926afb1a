"""The report of an energy group (``target`` ``"energy"``): its table, protocol, comparisons and CSV columns.

An energy group (:mod:`irrepnet.bench.energy`) has no displacement, zero baseline or
rollout; its table has its own columns: the energy MAE per molecule and the forces
MAE with 95% intervals over test molecules, the energy MAE per atom, each model's
ratio to the atom-energy reference (paired, with its interval), training step and
inference time, and the audit of the trained model in float32 and float64.
:mod:`irrepnet.bench.report` and :mod:`irrepnet.bench.summary` call these for such groups.
"""

from __future__ import annotations

import math
from typing import Any

from .formatting import (
    MISSING,
    _get,
    _num,
    equivariance_error,
    equivariance_passed,
    fmt_int,
    fmt_plain,
    fmt_sci,
    fmt_sig,
    interval,
    is_energy_group,
    md_table,
    seed_budget_facts,
    with_ci,
)
from .schema import ENERGY_METRIC_KEYS

Row = dict[str, Any]

#: CSV columns added after the displacement ones when a results file has an energy group
ENERGY_CSV_COLUMNS = (
    list(ENERGY_METRIC_KEYS)
    + [f"{k}_{end}" for k in ("energy_mae", "energy_per_atom_mae", "forces_mae") for end in ("lo", "hi", "seed_std")]
    + [f"{k}_vs_reference{end}" for k in ("energy_mae", "forces_mae") for end in ("", "_lo", "_hi", "_verdict")]
)


def _energy_key(row: Row):
    """Sort key: lowest finite energy MAE first, missing last."""
    v = _num(_get(row, "metrics", "energy_mae"))
    return (0, v) if v is not None and math.isfinite(v) else (1, 0.0)


def energy_rows(group: dict[str, Any]) -> list[Row]:
    """The group's ``ok`` rows as its table shows them: the reference, then models by energy MAE."""
    ok = [r for r in group.get("rows", []) if r.get("status") == "ok"]
    return [r for r in ok if r.get("kind") == "baseline"] + sorted(
        (r for r in ok if r.get("kind") != "baseline"), key=_energy_key
    )


def _name(row: Row) -> str:
    name = str(row.get("name")).replace("|", "\\|")
    return f"*{name}* (reference)" if row.get("kind") == "baseline" else name


def _ratio_cell(row: Row, key: str) -> str:
    """A model's paired ratio to the reference with its interval; the reference itself is 1 by definition."""
    if row.get("kind") == "baseline":
        return "1"
    iv = interval(row, f"{key}_vs_reference")
    # 3 digits in the interval too: ratios sit near 1, where 2 digits would print [1.0, 1.0]
    return with_ci(fmt_sig((iv or {}).get("value")), iv, lambda v: f"{v:#.3g}".rstrip("."))


def _audit_cell(row: Row, dtype: str) -> str:
    err = equivariance_error(row, dtype)
    if err is None:
        return MISSING
    return fmt_sci(err) + (" ✗" if equivariance_passed(row, dtype) is False else "")


def _steps(row: Row) -> str:
    steps = _get(row, "training", "steps")
    return "/".join(fmt_int(x) for x in steps) if isinstance(steps, list) else fmt_int(steps)


def table_cells(row: Row) -> dict[str, str]:
    """Every cell an energy table may show for ``row``, by column title."""
    m, s = row.get("metrics") or {}, row.get("speed") or {}
    seeds = len(row.get("seeds") or [])
    return {
        "model": _name(row),
        "params": fmt_int(row.get("parameters")),
        "seeds": str(seeds) if seeds else MISSING,
        "energy MAE eV [95% CI]": with_ci(fmt_sig(m.get("energy_mae")), interval(row, "energy_mae")),
        "forces MAE eV/Å [95% CI]": with_ci(fmt_sig(m.get("forces_mae")), interval(row, "forces_mae")),
        "energy/atom MAE eV": fmt_sig(m.get("energy_per_atom_mae")),
        "energy × ref [95% CI]": _ratio_cell(row, "energy_mae"),
        "forces × ref [95% CI]": _ratio_cell(row, "forces_mae"),
        "steps": _steps(row),
        "train step ms": fmt_plain(s.get("train_step_ms")),
        "infer ms (1 molecule)": fmt_plain(s.get("infer_latency_ms")),
        "audit f32": _audit_cell(row, "float32"),
        "audit f64": _audit_cell(row, "float64"),
        "train time s": fmt_plain(s.get("train_time_s")),
    }


#: columns of the report's table and of the README summary
REPORT_COLUMNS = (
    "model",
    "params",
    "seeds",
    "energy MAE eV [95% CI]",
    "forces MAE eV/Å [95% CI]",
    "energy/atom MAE eV",
    "energy × ref [95% CI]",
    "forces × ref [95% CI]",
    "steps",
    "train step ms",
    "infer ms (1 molecule)",
    "audit f32",
    "audit f64",
    "train time s",
)
SUMMARY_COLUMNS = (
    "model",
    "params",
    "energy MAE eV [95% CI]",
    "forces MAE eV/Å [95% CI]",
    "energy/atom MAE eV",
    "energy × ref [95% CI]",
    "forces × ref [95% CI]",
    "train step ms",
    "infer ms (1 molecule)",
    "audit f32",
    "audit f64",
)


def table(group: dict[str, Any], columns=REPORT_COLUMNS):
    """``(header, rows, align)`` of the group's table with ``columns`` (titles of :func:`table_cells`)."""
    body = [[table_cells(r)[c] for c in columns] for r in energy_rows(group)]
    return list(columns), body, ["l"] + ["r"] * (len(columns) - 1)


def heading(group: dict[str, Any]) -> list[str]:
    """Title, sizes, the force RMS, the fitted atom energies and the data of an energy group."""
    sizes = group.get("sizes") or {}
    ref = group.get("reference") or {}
    atoms = ", ".join(f"{z} {fmt_sig(mu)}" for z, mu in (ref.get("atom_energies") or {}).items())
    facts = [
        "molecules " + " / ".join(f"{k} {sizes.get(k, MISSING)}" for k in ("train", "valid", "test")),
        f"training force RMS {fmt_sig(group.get('force_rms'))} eV/Å",
    ]
    if atoms:
        facts.append(f"reference atom energies (eV) {atoms}")
    data = group.get("data") or {}
    text = (
        "; ".join(f"{k}: {v}" for k, v in data.items() if not isinstance(v, (dict, list)))
        if isinstance(data, dict)
        else str(data)
    )
    title = f"## {group.get('id')}" + (f": {group.get('task')}" if group.get("task") != group.get("id") else "")
    return [title + ", energy and forces", "", "; ".join(facts) + ".", ""] + ([f"Data: {text}", ""] if text else [])


def protocol(group: dict[str, Any]) -> list[str]:
    """Loss weights, seeds, budget and resampling of an energy group, in one paragraph."""
    w = group.get("loss_weights") or {}
    loss = (
        f"loss {fmt_sig(w.get('energy_weight'))} × MSE(energy per atom) + {fmt_sig(w.get('force_weight'))} × "
        "MSE(forces), in units of the training force RMS"
    )
    facts = [loss] + seed_budget_facts(group, fmt_int)
    b = group.get("bootstrap") or {}
    if b:
        facts.append(f"95% intervals: bootstrap over {b.get('n_units')} test molecules, {b.get('resamples')} resamples")
    return ["Protocol: " + "; ".join(facts) + ".", ""]


def comparison_sentences(group: dict[str, Any]) -> list[str]:
    """Each model against the reference, and the best model against the runner-up, from the paired resamples."""
    from ..stats import verdict_sentence

    models = [r for r in energy_rows(group) if r.get("kind") == "model" and r.get("comparisons")]
    lines = []
    for key, what in (("energy_mae", "energy MAE"), ("forces_mae", "forces MAE")):
        for r in models:
            c = (r["comparisons"].get(key) or {}).get("reference")
            if c:
                lines.append("- " + verdict_sentence(r["name"], c["other"], c, what=what))
        best = min(models, key=lambda r: _num(_get(r, "metrics", key)) or math.inf, default=None)
        c = ((best or {}).get("comparisons", {}).get(key) or {}).get("best_other_model")
        if c:
            lines.append(
                f"- Best model on {what} against the runner-up: "
                + verdict_sentence(best["name"], c["other"], c, what=what)
            )
    if not lines:
        return []
    intro = (
        "Paired comparisons (ratio of MAEs on the same bootstrap resamples of test molecules; *within noise* "
        "when the 95% interval contains 1):"
    )
    return [intro, ""] + lines + [""]


def units_note() -> list[str]:
    """How to read an energy table."""
    text = (
        "**How to read the energy tables.** Energy MAE is the mean absolute error of the energy of a molecule "
        "(eV); energy/atom divides each molecule's error by its atom count; forces MAE is over all force "
        "components (eV/Å), the forces being the negative gradient of the predicted energy. The reference row "
        "*atom energies* predicts the sum of per-element energies fitted by least squares on the training "
        "molecules, and zero forces; × ref is a model's MAE over the reference's on the same test molecules "
        "(below 1 = better), with a paired 95% interval. Intervals resample the test molecules (one by one) of "
        "the seed mean. Audit: the largest relative error of the trained model under rotation, reflection, "
        "translation and permutation (energy invariant, forces equivariant), in float32 and float64 (✗: above "
        "the tolerance). Infer ms: energy and forces of one molecule. – = not measured or not applicable."
    )
    return [text, ""]


def group_lines(group: dict[str, Any]) -> list[str]:
    """The heading, protocol, table and comparisons of an energy group in report.md."""
    header, body, align = table(group)
    lines = heading(group) + protocol(group)
    lines += (md_table(header, body, align) + [""]) if body else ["No row finished in this group.", ""]
    return lines + comparison_sentences(group)


def csv_cells(group: dict[str, Any], row: Row) -> list[Any]:
    """The :data:`ENERGY_CSV_COLUMNS` of a row (empty for rows of displacement groups)."""
    if not is_energy_group(group):
        return [None] * len(ENERGY_CSV_COLUMNS)
    m = row.get("metrics") or {}
    cells: list[Any | None] = [m.get(k) for k in ENERGY_CSV_COLUMNS[:7]]
    for key in ("energy_mae", "energy_per_atom_mae", "forces_mae"):
        iv = interval(row, key) or {}
        cells += [iv.get("lo"), iv.get("hi"), iv.get("seed_std")]
    for key in ("energy_mae", "forces_mae"):
        iv = interval(row, f"{key}_vs_reference") or {}
        verdict = ((row.get("comparisons") or {}).get(key) or {}).get("reference", {}).get("verdict")
        cells += [iv.get("value"), iv.get("lo"), iv.get("hi"), verdict]
    return cells
