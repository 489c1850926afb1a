"""What every plot of a bench run shares: the figure, its file, the baselines' line styles, legends and ticks.

Figures are :class:`matplotlib.figure.Figure` objects with their own Agg canvas:
nothing global (backend, rcParams, pyplot's figure list) is touched, so importing a
plot module from a notebook changes nothing there. :mod:`irrepnet.bench.plots` and
:mod:`irrepnet.bench.plots_energy` both draw with these; this module imports neither.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: resolution of every PNG; with the figure sizes of the plots files stay around 20-80 KB.
DPI = 90

# Baselines are drawn in greys with their own line styles so they read as reference
# lines, not as competitors (models get the tab10/tab20 colours).
_BASELINE_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)))
_BASELINE_GREYS = ("0.15", "0.4", "0.55", "0.3", "0.65")


def figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with its own Agg canvas (no pyplot, no global backend switch)."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at :data:`DPI` (parent folders made); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def finite_positive(x: Any) -> bool:
    """Whether ``x`` is a real number that a log axis can show (bools are not numbers here)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def baseline_style(i: int) -> dict[str, Any]:
    """Line keywords of the ``i``-th baseline: a grey and a dash pattern of its own."""
    return {
        "color": _BASELINE_GREYS[i % len(_BASELINE_GREYS)],
        "linestyle": _BASELINE_STYLES[i % len(_BASELINE_STYLES)],
        "linewidth": 1.2,
    }


def legend(ax, **kw) -> None:
    """A small frameless legend, only when something on ``ax`` has a label."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False, **kw)


def legend_outside(ax) -> None:
    """Legend to the right of the axes: with many models an inside legend hides curves."""
    legend(ax, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def log_ticks(axis, lo: float, hi: float) -> None:
    """Plain 1-2-5 ticks on a log axis spanning less than ~3 decades (the default labels overlap there)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    if not (lo > 0 and hi > lo) or hi / lo > 1e3:
        return
    ticks = [
        m * 10.0**e
        for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
        for m in (1, 2, 5)
        if lo <= m * 10.0**e <= hi
    ]
    if len(ticks) < 2:
        return
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(lambda v, _: f"{v:g}")
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())
