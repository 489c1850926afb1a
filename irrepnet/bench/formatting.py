"""Values of a results row as the report, the CSV and the README summary show them.

Accessors that read a row of ``results.json`` (:mod:`irrepnet.bench.schema`) without
failing on missing or null levels, the order of rows in a table, and the number
formats: MSEs with 3 significant digits (``2.43e-05``), intervals with 2 (``[4.1e-09,
7.3e-09]``), ratios near 1 with enough decimals to tell 0.9996 from 1; a missing value
prints as ``–``; and the markdown table that :mod:`irrepnet.bench.report`,
:mod:`irrepnet.bench.report_energy` and :mod:`irrepnet.bench.summary` all print.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Results = dict[str, Any]
Row = dict[str, Any]

MISSING = "–"
#: rollout horizons shown in the markdown table (all of them go to the CSV).
MAX_TABLE_HORIZONS = 3


def _num(x: Any) -> float | None:
    """``x`` as a float, or ``None`` when it is missing or not a number."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def _get(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...``, or ``None`` as soon as a level is missing or null."""
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def fmt_sci(x: Any) -> str:
    """3 significant digits in scientific notation (``2.43e-05``); ``–`` when missing."""
    v = _num(x)
    return MISSING if v is None else f"{v:.2e}"


def fmt_sig(x: Any) -> str:
    """3 significant digits, trailing zeros kept (``0.00680``, ``1.00``, ``6.80e-05``)."""
    v = _num(x)
    return MISSING if v is None else f"{v:#.3g}".rstrip(".")  # "460." -> "460"


def fmt_vs_zero(x: Any) -> str:
    """MSE / zero: 3 significant digits, but enough decimals near 1 that 0.9996 never prints as 1.00."""
    v = _num(x)
    if v is not None and 0.99 < v < 1.01 and v != 1.0:
        return f"{v:.5f}"
    return fmt_sig(x)


def fmt_near_one(x: Any) -> str:
    """R² or a correlation: enough decimals that ``1 - x`` keeps 2 significant digits (``0.99987``)."""
    v = _num(x)
    if v is None:
        return MISSING
    if not math.isfinite(v) or v >= 1 or v < 0.9:
        return f"{v:#.3g}" if math.isfinite(v) else f"{v}"
    decimals = min(9, math.ceil(-math.log10(1 - v)) + 1)
    return f"{v:.{decimals}f}"


def fmt_plain(x: Any) -> str:
    """A speed or time: 3 significant digits without an exponent in the usual range (``12.3``, ``4512``)."""
    v = _num(x)
    if v is None:
        return MISSING
    if not math.isfinite(v) or v == 0:
        return f"{v:g}"
    mag = math.floor(math.log10(abs(v)))
    if mag >= 6 or mag < -3:
        return f"{v:.2e}"
    return f"{v:.{max(0, 2 - mag)}f}"


def fmt_ci(interval: Any, fmt=None) -> str:
    """``[lo, hi]`` of an interval dict with 2 significant digits (``[4.1e-09, 7.3e-09]``); ``""`` when absent."""
    if not isinstance(interval, dict) or _num(interval.get("lo")) is None or _num(interval.get("hi")) is None:
        return ""
    f = fmt or (lambda v: f"{v:.1e}" if abs(v) < 1e-2 or abs(v) >= 1e3 else f"{v:#.2g}".rstrip("."))
    return f"[{f(interval['lo'])}, {f(interval['hi'])}]"


def with_ci(text: str, interval: Any, fmt=None) -> str:
    """``text`` followed by its interval when there is one."""
    ci = fmt_ci(interval, fmt)
    return f"{text} {ci}" if ci and text != MISSING else text


def interval(row: Row, key: str, horizon: int | None = None) -> dict[str, Any] | None:
    """The row's stored interval of ``key`` (``test_mse``, ``mse_vs_zero``, or ``rollout`` at ``horizon``)."""
    iv = row.get("intervals") or {}
    if key == "rollout":
        return (iv.get("rollout") or {}).get(str(horizon))
    return iv.get(key)


def seed_std(row: Row) -> float | None:
    """The standard deviation of the row's test MSE over seeds, or ``None``."""
    return _num(_get(row, "intervals", "test_mse", "seed_std"))


def fmt_int(x: Any) -> str:
    """An integer with thousands separators, or the missing-value mark."""
    v = _num(x)
    return MISSING if v is None else f"{int(v):,}"


def equivariance_error(row: Row, dtype: str = "float32") -> float | None:
    """Largest relative error among the checks the model *claims* (others are expected to fail)."""
    checks = _get(row, "equivariance", dtype, "checks") or {}
    errors = [_num(c.get("rel_error")) for c in checks.values() if isinstance(c, dict) and c.get("claimed")]
    errors = [e for e in errors if e is not None]
    return max(errors) if errors else None


def equivariance_passed(row: Row, dtype: str = "float32") -> bool | None:
    """Whether the row's audit in ``dtype`` passed; ``None`` when it was not audited."""
    passed = _get(row, "equivariance", dtype, "passed")
    return bool(passed) if passed is not None else None


def rollout_mse(row: Row, horizon: int) -> float | None:
    """The row's rollout MSE after ``horizon`` fed-back steps, or ``None``."""
    roll = row.get("rollout") or {}
    for h, m in zip(roll.get("horizons") or [], roll.get("mse") or []):
        if h == horizon:
            return _num(m)
    return None


def rollout_cell(row: Row, horizon: int) -> str:
    """Formatted rollout MSE; ``diverged`` when the rollout ran but its error was not finite (JSON null)."""
    roll = row.get("rollout") or {}
    if horizon in (roll.get("horizons") or []) and rollout_mse(row, horizon) is None:
        return "diverged"
    return fmt_sci(rollout_mse(row, horizon))


def _mse_key(row: Row):
    """Sort key: lowest finite test MSE first, missing or NaN last."""
    v = _num(_get(row, "metrics", "test_mse"))
    return (0, v) if v is not None and math.isfinite(v) else (1, 0.0)


def ordered_rows(group: dict[str, Any]) -> list[Row]:
    """The group's ``ok`` rows as the table shows them: baselines (file order), then models by test MSE."""
    ok = [r for r in group.get("rows", []) if r.get("status") == "ok"]
    return [r for r in ok if r.get("kind") == "baseline"] + sorted(
        (r for r in ok if r.get("kind") != "baseline"), key=_mse_key
    )


def is_energy_group(group: dict[str, Any]) -> bool:
    """Whether a group scores energies and forces (schema 3 ``target`` ``"energy"``) rather than displacements."""
    return group.get("target") == "energy"


def _all_horizons(results: Results) -> list[int]:
    hs = set()
    for group in results.get("groups", []):
        hs.update(h for h in group.get("rollout_horizons") or [] if isinstance(h, int))
        for row in group.get("rows", []):
            hs.update(h for h in (row.get("rollout") or {}).get("horizons") or [] if isinstance(h, int))
    return sorted(hs)


def table_horizons(horizons: Sequence[int]) -> list[int]:
    """A few horizons for the table: all if at most 3, else the first, a middle one and the last."""
    hs = sorted(set(horizons))
    if len(hs) <= MAX_TABLE_HORIZONS:
        return hs
    return [hs[0], hs[len(hs) // 2], hs[-1]]


def seed_budget_facts(group: dict[str, Any], steps_text) -> list[str]:
    """A group's seeds and step budget as protocol facts: equal steps, or each model's when they differ.

    ``steps_text`` formats a step count (the displacement and energy reports format them
    their own way).
    """
    seeds = group.get("seeds") or []
    facts = [f"seeds {', '.join(str(s) for s in seeds)}" if seeds else "seeds –"]
    budget = group.get("budget") or {}
    if budget.get("equal_steps") and budget.get("steps") is not None:
        facts.append(f"every model {steps_text(budget['steps'])} optimiser steps")
    elif budget.get("per_model"):
        facts.append(
            "**unequal budgets**: "
            + ", ".join(f"{n} {steps_text(p.get('steps'))}" for n, p in budget["per_model"].items())
        )
    return facts


def md_cell(text: Any) -> str:
    """Table-safe text: a ``|`` would split the cell, a newline would end the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> list[str]:
    """The lines of a markdown table; ``align`` has ``"l"`` (left) or anything else (right) per column."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
    return lines
