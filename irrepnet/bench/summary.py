"""A compact markdown table of a benchmark's results, for the README.

``python -m irrepnet.bench.summary benchmarks/results/quick`` prints, per group, one
row per model and baseline: test MSE, MSE / zero displacement, rollout MSE at the
longest horizon, the float32 equivariance error, training step time and total
training time, plus a line naming the commit and machine. The README's results
tables are this output, pasted between ``<!-- summary:NAME -->`` markers (energy groups,
the molecules task, have their own columns: :mod:`irrepnet.bench.report_energy`);
``tests/test_readme.py`` regenerates them from the committed ``results.json`` and
fails if the README drifts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import report_energy
from .formatting import (
    equivariance_error,
    fmt_int,
    fmt_plain,
    fmt_sci,
    fmt_vs_zero,
    interval,
    is_energy_group,
    md_table,
    ordered_rows,
    rollout_cell,
    with_ci,
)
from .report import _name, _steps_cell, load_results


def _group_line(results: dict, group: dict) -> str:
    bonds = ", bonds given" if group.get("bonds") else ""  # absent in results before bonds existed
    text = (
        f"**{results['suite']['name']} / {group['id']}** ({group['task']}, history {group['history']}{bonds}; "
        f"{group['sizes']['train']} train / {group['sizes']['test']} test samples"
    )
    if "bootstrap" in group:  # schema 2: the protocol of the rows
        seeds = group.get("seeds") or []
        text += f"; residual {group.get('residual')}"
        if group.get("input_noise"):
            text += f", input noise {group['input_noise']:g}"
        text += f"; {len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
        b = group.get("bootstrap") or {}
        if b:
            text += f"; 95% CI: block bootstrap, blocks of {b.get('block_length')} test samples"
    return text + ")"


def _energy_group_line(results: dict, group: dict) -> str:
    seeds, b = group.get("seeds") or [], group.get("bootstrap") or {}
    w = group.get("loss_weights") or {}
    text = (
        f"**{results['suite']['name']} / {group['id']}** ({group['task']}: energy and forces; "
        f"{group['sizes']['train']} train / {group['sizes']['test']} test molecules; loss weights energy "
        f"{w.get('energy_weight'):g}, forces {w.get('force_weight'):g}; "
        f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
    )
    if b:
        text += f"; 95% CI: bootstrap over {b.get('n_units')} test molecules"
    return text + ")"


def _energy_lines(results: dict, group: dict) -> list[str]:
    header, body, align = report_energy.table(group, report_energy.SUMMARY_COLUMNS)
    return [_energy_group_line(results, group), ""] + md_table(header, body, align) + [""]


def summary_markdown(results: dict) -> str:
    """A short Markdown summary of a run: per group, the best rows and the commit they ran at."""
    prov = results["provenance"]
    commit = (prov.get("commit") or "unknown")[:7] + (" (dirty)" if prov.get("dirty") else "")
    lines: list[str] = []
    for group in results["groups"]:
        if is_energy_group(group):
            lines += _energy_lines(results, group)
            continue
        horizons = group.get("rollout_horizons") or []
        ks = [h for h in (25, max(horizons) if horizons else None) if h in horizons]
        v2 = "bootstrap" in group
        header = (
            [
                "model",
                "symmetry",
                "params",
                "test MSE" + (" [95% CI]" if v2 else ""),
                "MSE / zero" + (" [95% CI]" if v2 else ""),
            ]
            + [f"rollout MSE @{k}" + (" [95% CI]" if v2 else "") for k in ks]
            + ["equiv. err f32", "train steps", "step ms", "train s"]
        )
        rows = []
        for r in ordered_rows(group):
            m, s, t = r.get("metrics") or {}, r.get("speed") or {}, r.get("training") or {}
            rows.append(
                [
                    _name(r),
                    r.get("symmetry") or "–",
                    fmt_int(r.get("parameters")),
                    with_ci(fmt_sci(m.get("test_mse")), interval(r, "test_mse")),
                    with_ci(fmt_vs_zero(m.get("mse_vs_zero")), interval(r, "mse_vs_zero"), fmt_vs_zero),
                ]
                + [with_ci(rollout_cell(r, k), interval(r, "rollout", k)) for k in ks]
                + [
                    fmt_sci(equivariance_error(r, "float32")),
                    _steps_cell(t.get("steps")),
                    fmt_plain(s.get("train_step_ms")),
                    fmt_plain(s.get("train_time_s")),
                ]
            )
        lines.append(_group_line(results, group))
        lines.append("")
        lines += md_table(header, rows, ["l", "l"] + ["r"] * (len(header) - 2))
        lines.append("")
    lines.append(
        f"Commit `{commit}`, {prov.get('machine')}, {prov.get('device')}, {prov.get('torch_threads')} torch "
        f"thread(s), {prov.get('date')}."
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """``python -m irrepnet.bench.summary BENCH_FOLDER``: print the summary of a run."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m irrepnet.bench.summary BENCH_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    print(summary_markdown(load_results(folder / "results.json" if folder.is_dir() else folder)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
