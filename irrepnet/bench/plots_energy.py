"""The learning-curve plot of an energy group: validation energy and forces MAE per epoch.

Reads each model seed's ``log.jsonl`` (``epoch``, ``valid_energy_mae``, ``valid_forces_mae``,
written by the training loop on energy tasks), one curve per seed (the first labelled,
the others thin), and draws the atom-energy reference's validation MAEs as dashed
lines. :func:`irrepnet.bench.plots.plot_energy_curves` saves it per energy group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .artifacts import artifact_path, ok_rows, read_log
from .plot_style import baseline_style, figure, finite_positive, legend_outside, log_ticks

#: (log key, reference metric, axis label) of the two panels
PANELS = (
    ("valid_energy_mae", "valid_energy_mae", "energy MAE (eV / molecule)"),
    ("valid_forces_mae", "valid_forces_mae", "forces MAE (eV/Å)"),
)


def _curves(row: dict[str, Any], rdir: Path, key: str) -> list[tuple[list[float], list[float]]]:
    """``[(epochs, values)]`` of ``key`` per seed of ``row`` with a log; non-positive or missing values left out."""
    curves = []
    for rec in row.get("seeds") or [row]:
        path = artifact_path(rdir, rec, "log")
        if path is None:
            continue
        pts = [
            (r["epoch"], r[key])
            for r in read_log(path)
            if isinstance(r.get("epoch"), (int, float)) and r["epoch"] > 0 and finite_positive(r.get(key))
        ]
        if pts:
            curves.append(tuple(map(list, zip(*pts))))
    return curves


def _rank(row: dict[str, Any]) -> float:
    value = (row.get("metrics") or {}).get("energy_mae")
    return float(value) if finite_positive(value) else float("inf")


def draw_curves(group: dict[str, Any], rdir: Path, colors: dict[str, Any]) -> Figure | None:
    """The figure of one energy group, or ``None`` when no model left a log with validation MAEs."""
    fig = figure(9.5, 3.6)
    axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
    drawn = 0
    for row in sorted(ok_rows(group, "model"), key=_rank):
        for ax, (key, _, _) in zip(axes, PANELS):
            for i, (ep, val) in enumerate(_curves(row, rdir, key)):
                # markers: a run of one or two epochs is a point or a segment, invisible as a bare line
                ax.plot(
                    ep,
                    val,
                    color=colors.get(row.get("name")),
                    linewidth=1.4 if i == 0 else 0.7,
                    marker="o",
                    markersize=2.5 if i == 0 else 1.5,
                    alpha=1.0 if i == 0 else 0.5,
                    label=row.get("name") if i == 0 else None,
                )
                drawn += 1
    if not drawn:
        return None
    for i, row in enumerate(ok_rows(group, "baseline")):
        for ax, (_, ref_key, _) in zip(axes, PANELS):
            value = (row.get("metrics") or {}).get(ref_key)
            if finite_positive(value):
                ax.axhline(value, label=f"{row.get('name')} (reference)", **baseline_style(i))
    for ax, (_, _, label) in zip(axes, PANELS):
        ax.set_yscale("log")
        log_ticks(ax.yaxis, *ax.get_ylim())  # plain 1-2-5 labels: the MAEs span less than a decade or two
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_title(f"Validation energy MAE, {group.get('id')}", fontsize=9)
    axes[1].set_title("Validation forces MAE", fontsize=9)
    legend_outside(axes[1])
    fig.tight_layout()
    return fig
