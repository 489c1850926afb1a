"""Plots of an ``irrepnet bench`` run, read from ``results.json`` and its artifacts.

Every function takes the results dict (see :mod:`irrepnet.bench.schema`), the folder
of ``results.json`` (artifact paths are relative to it) and an output folder, writes
one PNG per group and returns ``{group id: path}``. A group with nothing to draw
(e.g. no rollout on ``nbody``, or no ``predictions.npz`` written) gets no file and
no key, so callers can treat every plot as optional.

Figures are built as :class:`matplotlib.figure.Figure` objects with their own Agg
canvas: nothing global (backend, rcParams, pyplot's figure list) is touched, so
importing this module from a notebook changes nothing there.

Plot kinds (the keys of :data:`PLOTS`):

``loss``           validation MSE per epoch of each model, baselines' test MSE dashed
``parity``         predicted vs true test displacement components, a panel per row
``trajectory``     x-y paths of a fed-back rollout, truth vs prediction, best rows
``rollout``        rollout MSE vs horizon, log-log
``accuracy_time``  test MSE vs total training time, log-log
``energy_curves``  energy groups: validation energy and forces MAE per epoch
                   (:mod:`irrepnet.bench.plots_energy`)

The displacement plots draw displacement groups only, the energy one energy groups
only (schema 3 ``target``): a plot that does not apply to a group is not drawn.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

# the readers stay importable from here (they were defined here before plots_energy shared them)
from .artifacts import artifact_path, load_predictions, ok_rows, read_log  # noqa: F401
from .plot_style import baseline_style, figure, finite_positive, legend, legend_outside, log_ticks, save

Results = dict[str, Any]
PathLike = Any

#: at most this many points per parity panel (a scatter of 10^5 points is slow and big).
MAX_PARITY_POINTS = 3000
#: at most this many panels in the parity and trajectory figures.
MAX_PARITY_PANELS = 8
MAX_TRAJECTORY_PANELS = 4

_COMPONENTS = ("x", "y", "z")


# ---------------------------------------------------------------------------- helpers


def _metric(row: dict[str, Any], key: str) -> float | None:
    value = (row.get("metrics") or {}).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _sort_key(row: dict[str, Any]) -> tuple[int, float]:
    """Best (lowest finite test MSE) first; rows without a usable MSE last."""
    mse = _metric(row, "test_mse")
    return (0, mse) if mse is not None and math.isfinite(mse) else (1, 0.0)


def group_stems(results: Results) -> dict[str, str]:
    """File-name-safe stem per group id, unique within the file."""
    stems: dict[str, str] = {}
    used = set()
    for gi, group in enumerate(results.get("groups", [])):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(group.get("id", gi))).strip("_") or f"group{gi}"
        if stem in used:  # two ids that differ only in odd characters
            stem = f"{stem}_{gi}"
        used.add(stem)
        stems[str(group.get("id", gi))] = stem
    return stems


def model_colors(results: Results) -> dict[str, Any]:
    """One colour per model name across the whole file (stable across groups and plots)."""
    import matplotlib

    names: list[str] = []
    for group in results.get("groups", []):
        for row in group.get("rows", []):
            if row.get("kind") == "model" and row.get("name") not in names:
                names.append(row.get("name"))
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _group_title(group: dict[str, Any]) -> str:
    title = f"{group.get('id')} ({group.get('task')}"
    if group.get("task") == "twelve_body":
        title += f", h = {group.get('history')}"
    return title + ")"


def _per_group(
    results: Results,
    results_dir: PathLike,
    out_dir: PathLike | None,
    kind: str,
    draw: Callable[[dict[str, Any], Path], Figure | None],
    target: str = "displacement",
) -> dict[str, Path]:
    """Call ``draw(group, results_dir)`` per group of ``target`` (schema 3; absent: displacement) and save the
    figures it returns.

    A plot that fails on one group is reported as a ``RuntimeWarning`` and skipped: a
    figure is never worth losing the report over (tests turn the warning into an error).
    """
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "plots"
    stems = group_stems(results)
    paths: dict[str, Path] = {}
    for group in results.get("groups", []):
        gid = str(group.get("id"))
        if group.get("target", "displacement") != target:
            continue
        try:
            fig = draw(group, Path(results_dir))
            if fig is not None:
                paths[gid] = save(fig, out / f"{kind}-{stems[gid]}.png")
        except Exception as exc:  # noqa: BLE001 - see the docstring
            warnings.warn(
                f"plot {kind!r} of group {gid!r} failed: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2
            )
    return paths


def _baseline_hlines(ax, baselines: Sequence[dict[str, Any]]) -> None:
    """Each baseline's test MSE as a labelled horizontal reference line."""
    for i, row in enumerate(baselines):
        mse = _metric(row, "test_mse")
        if finite_positive(mse):
            ax.axhline(mse, label=f"{row.get('name')} (baseline)", **baseline_style(i))


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return int(math.ceil(n / cols)), cols


def _finish(fig: Figure, ax, group: dict[str, Any], title: str, xlabel: str, ylabel: str) -> Figure:
    """The common ending of the single-axes plots: labels, title, grid, outside legend, layout."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}, {_group_title(group)}", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    legend_outside(ax)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- plots


def plot_loss_curves(results: Results, results_dir: PathLike, out_dir: PathLike | None = None) -> dict[str, Path]:
    """Validation MSE (physical units) vs epoch per model, log y; baselines' test MSE dashed.

    Reads each model's ``log.jsonl`` (``epoch``, ``valid_mse``), one curve per seed
    (the spread over seeds is visible as a bundle); models without a log, or whose log
    has no positive finite ``valid_mse``, are left out.
    """
    colors = model_colors(results)

    def draw(group, rdir):
        fig = figure(7.5, 3.8)
        ax = fig.add_subplot()
        drawn = 0
        for row in sorted(ok_rows(group, "model"), key=_sort_key):
            # every seed's curve (schema 2 keeps each seed's log): the first labelled, the others thin
            records = row.get("seeds") or [row]
            labelled = False
            for rec in records:
                path = artifact_path(rdir, rec, "log")
                if path is None:
                    continue
                pts = [
                    (r["epoch"], r["valid_mse"])
                    for r in read_log(path)
                    if isinstance(r.get("epoch"), (int, float)) and finite_positive(r.get("valid_mse"))
                ]
                if not pts:
                    continue
                ep, mse = zip(*pts)
                ax.plot(
                    ep,
                    mse,
                    color=colors.get(row.get("name")),
                    linewidth=1.4 if not labelled else 0.7,
                    alpha=1.0 if not labelled else 0.5,
                    label=None if labelled else row.get("name"),
                )
                if not labelled:
                    drawn += 1
                labelled = True
        if not drawn:
            return None
        _baseline_hlines(ax, ok_rows(group, "baseline"))
        target = group.get("target_valid_mse")
        if finite_positive(target):
            ax.axhline(target, color="tab:red", linewidth=0.8, alpha=0.6, label="target valid MSE")
        ax.set_yscale("log")
        return _finish(fig, ax, group, "Validation loss", "epoch", "validation MSE per coordinate")

    return _per_group(results, results_dir, out_dir, "loss", draw)


def _parity_arrays(
    pred: np.ndarray, true: np.ndarray, rng: np.random.Generator
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per component ``(label, true, pred)``, z dropped on 2-D data, at most MAX_PARITY_POINTS in all."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, true.shape[-1])
    true = np.asarray(true, dtype=np.float64).reshape(-1, true.shape[-1])
    comps = [c for c in range(true.shape[-1]) if not (c == 2 and not np.any(true[:, c]))]
    per = max(1, MAX_PARITY_POINTS // len(comps))
    idx = rng.choice(len(true), size=min(per, len(true)), replace=False) if len(true) > per else np.arange(len(true))
    return [(_COMPONENTS[c] if c < 3 else str(c), true[idx, c], pred[idx, c]) for c in comps]


def plot_parity(results: Results, results_dir: PathLike, out_dir: PathLike | None = None) -> dict[str, Path]:
    """Predicted vs true test displacement components, one panel per row with predictions.

    Models (best first) then baselines, at most :data:`MAX_PARITY_PANELS` panels; the
    z component is dropped when the truth is all zeros (2-D data padded with z = 0).
    """

    def draw(group, rdir):
        rows = sorted(ok_rows(group, "model"), key=_sort_key) + sorted(ok_rows(group, "baseline"), key=_sort_key)
        panels = []
        for row in rows:
            arrays = load_predictions(rdir, row)
            if arrays is None or "pred" not in arrays or "true" not in arrays:
                continue
            if arrays["pred"].shape != arrays["true"].shape or arrays["true"].size == 0:
                continue
            panels.append((row, arrays))
            if len(panels) == MAX_PARITY_PANELS:
                break
        if not panels:
            return None
        nr, nc = _grid(len(panels))
        fig = figure(max(2.4 * nc + 0.3, 4.5), 2.4 * nr + 0.5)
        rng = np.random.default_rng(0)  # same subsample every time the report is rebuilt
        for i, (row, arrays) in enumerate(panels):
            ax = fig.add_subplot(nr, nc, i + 1)
            lo, hi = np.inf, -np.inf
            for j, (label, t, p) in enumerate(_parity_arrays(arrays["pred"], arrays["true"], rng)):
                ax.scatter(t, p, s=2, alpha=0.4, linewidths=0, color=f"C{j}", label=label, rasterized=True)
                lo, hi = min(lo, t.min(), p.min()), max(hi, t.max(), p.max())
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [lo, hi], color="k", linewidth=0.8, label="y = x")
                pad = 0.05 * (hi - lo) or 1.0
                ax.set_xlim(lo - pad, hi + pad)
                ax.set_ylim(lo - pad, hi + pad)
                ax.set_aspect("equal", adjustable="box")
            name = row.get("name") + (" (baseline)" if row.get("kind") == "baseline" else "")
            mse = _metric(row, "test_mse")
            ax.set_title(name + (f"\nMSE {mse:.2e}" if mse is not None else ""), fontsize=8)
            ax.tick_params(labelsize=6)
            ax.ticklabel_format(style="sci", scilimits=(-2, 3))
            ax.xaxis.get_offset_text().set_fontsize(6)
            ax.yaxis.get_offset_text().set_fontsize(6)
            if i % nc == 0:
                ax.set_ylabel("predicted", fontsize=8)
            if i >= (nr - 1) * nc:
                ax.set_xlabel("true displacement", fontsize=8)
            if i == 0:
                legend(ax, loc="upper left", markerscale=4)
        fig.suptitle(f"Parity of test displacements, {_group_title(group)}", fontsize=10)
        fig.tight_layout()
        return fig

    return _per_group(results, results_dir, out_dir, "parity", draw)


def _trajectory_rows(group: dict[str, Any], rdir: Path) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Best models with a rollout, plus the best such baseline as a reference panel."""

    def with_rollout(rows: Iterable[dict[str, Any]]):
        for row in sorted(rows, key=_sort_key):
            arrays = load_predictions(rdir, row)
            if (
                arrays is not None
                and "rollout_pred" in arrays
                and "rollout_true" in arrays
                and arrays["rollout_pred"].shape == arrays["rollout_true"].shape
                and arrays["rollout_true"].ndim == 3
            ):
                yield row, arrays

    baseline = next(with_rollout(ok_rows(group, "baseline")), None)
    n_models = MAX_TRAJECTORY_PANELS - (baseline is not None)
    picked = []
    for item in with_rollout(ok_rows(group, "model")):
        picked.append(item)
        if len(picked) == n_models:
            break
    return picked + ([baseline] if baseline is not None else [])


def plot_trajectory(results: Results, results_dir: PathLike, out_dir: PathLike | None = None) -> dict[str, Path]:
    """x-y paths of the beads in the first rollout, truth vs fed-back prediction.

    Uses ``rollout_pred`` / ``rollout_true`` (``(K+1, N, 3)`` positions) of the best
    models (at most :data:`MAX_TRAJECTORY_PANELS` panels, one kept for the best
    baseline when it has a rollout). On 3-D data this is the x-y projection.
    """

    def draw(group, rdir):
        panels = _trajectory_rows(group, rdir)
        if not panels:
            return None
        nr, nc = _grid(len(panels), max_cols=2)
        fig = figure(3.3 * nc + 0.3, 3.1 * nr + 0.5)
        for i, (row, arrays) in enumerate(panels):
            ax = fig.add_subplot(nr, nc, i + 1)
            true, pred = arrays["rollout_true"], arrays["rollout_pred"]
            for b in range(true.shape[1]):
                ax.plot(true[:, b, 0], true[:, b, 1], color="0.2", linewidth=1.0, label="true" if b == 0 else None)
                ax.plot(
                    pred[:, b, 0],
                    pred[:, b, 1],
                    color="tab:orange",
                    linewidth=1.0,
                    linestyle="--",
                    label="predicted" if b == 0 else None,
                )
            # start frame: the chain itself, so the paths can be read relative to it
            ax.plot(true[0, :, 0], true[0, :, 1], "o-", color="0.6", markersize=2.5, linewidth=0.6, label="start")
            # frame the truth: a diverging prediction leaves the panel instead of shrinking the truth to a dot
            (x0, y0), (x1, y1) = true[..., :2].reshape(-1, 2).min(0), true[..., :2].reshape(-1, 2).max(0)
            pad = 0.15 * max(x1 - x0, y1 - y0, 1e-9)
            ax.set_xlim(x0 - pad, x1 + pad)
            ax.set_ylim(y0 - pad, y1 + pad)
            ax.set_aspect("equal", adjustable="box")
            ax.tick_params(labelsize=6)
            kind = " (baseline)" if row.get("kind") == "baseline" else ""
            ax.set_title(f"{row.get('name')}{kind}, {true.shape[0] - 1} steps", fontsize=8)
            if i == 0:
                handles, labels = ax.get_legend_handles_labels()
        fig.suptitle(f"Rollout, x-y paths, {_group_title(group)}", fontsize=10)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        # one legend for all panels, below them, so it covers no path
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
        return fig

    return _per_group(results, results_dir, out_dir, "trajectory", draw)


def _rollout_points(row: dict[str, Any]) -> tuple[list[float], list[float]] | None:
    roll = row.get("rollout") or {}
    pts = [
        (h, m)
        for h, m in zip(roll.get("horizons") or [], roll.get("mse") or [])
        if finite_positive(h) and finite_positive(m)
    ]
    return tuple(map(list, zip(*pts))) if pts else None


def _rollout_band(row: dict[str, Any]) -> tuple[list[float], list[float], list[float]] | None:
    """``(horizons, lo, hi)`` of the row's 95% rollout intervals (schema 2), finite points only."""
    iv = (row.get("intervals") or {}).get("rollout") or {}
    pts = [
        (float(h), v.get("lo"), v.get("hi"))
        for h, v in iv.items()
        if isinstance(v, dict) and finite_positive(v.get("lo")) and finite_positive(v.get("hi"))
    ]
    if len(pts) < 2:
        return None
    pts.sort()
    return tuple(map(list, zip(*pts)))


def plot_rollout_error(results: Results, results_dir: PathLike, out_dir: PathLike | None = None) -> dict[str, Path]:
    """Rollout MSE of positions vs horizon (fed-back steps) per row, log-log; baselines dashed.

    Models with intervals (schema 2) get a shaded 95% band over rollout start frames.
    """
    colors = model_colors(results)

    def draw(group, rdir):
        fig = figure(7.5, 3.8)
        ax = fig.add_subplot()
        drawn = 0
        for i, row in enumerate(ok_rows(group, "baseline")):
            pts = _rollout_points(row)
            if pts:
                ax.plot(*pts, marker=".", label=f"{row.get('name')} (baseline)", **baseline_style(i))
                drawn += 1
        for row in sorted(ok_rows(group, "model"), key=_sort_key):
            pts = _rollout_points(row)
            if pts:
                color = colors.get(row.get("name"))
                ax.plot(*pts, marker="o", markersize=3, color=color, label=row.get("name"))
                band = _rollout_band(row)
                if band:
                    ax.fill_between(*band, color=color, alpha=0.15, linewidth=0)
                drawn += 1
        if not drawn:
            return None
        ax.set_xscale("log")
        ax.set_yscale("log")
        return _finish(fig, ax, group, "Rollout error", "horizon k (fed-back steps)", "position MSE per coordinate")

    return _per_group(results, results_dir, out_dir, "rollout", draw)


def plot_accuracy_vs_time(results: Results, results_dir: PathLike, out_dir: PathLike | None = None) -> dict[str, Path]:
    """Test MSE vs total training time per model (labelled points), log-log; baselines as lines.

    With schema 2 each point is the mean over seeds with its 95% interval as an error
    bar, and every seed's own MSE as a small hollow marker.
    """
    colors = model_colors(results)

    def draw(group, rdir):
        pts = []
        for row in ok_rows(group, "model"):
            mse, t = _metric(row, "test_mse"), (row.get("speed") or {}).get("train_time_s")
            if finite_positive(mse) and finite_positive(t):
                pts.append((row.get("name"), float(t), mse))
        if not pts:
            return None
        fig = figure(7.5, 3.8)
        ax = fig.add_subplot()
        rows = {r.get("name"): r for r in ok_rows(group, "model")}
        for name, t, mse in pts:
            row = rows[name]
            ax.scatter([t], [mse], s=25, color=colors.get(name), zorder=3)
            iv = (row.get("intervals") or {}).get("test_mse") or {}
            if finite_positive(iv.get("lo")) and finite_positive(iv.get("hi")):  # 95% interval over test frames
                ax.errorbar(
                    [t],
                    [mse],
                    yerr=[[mse - iv["lo"]], [iv["hi"] - mse]],
                    color=colors.get(name),
                    linewidth=0.9,
                    capsize=2,
                    zorder=2,
                )
            seed_mse = [_metric(rec, "test_mse") for rec in row.get("seeds") or []]
            seed_mse = [m for m in seed_mse if finite_positive(m)]
            if len(seed_mse) > 1:  # each seed as a small hollow marker: the spread over seeds
                ax.scatter(
                    [t] * len(seed_mse),
                    seed_mse,
                    s=10,
                    facecolors="none",
                    edgecolors=colors.get(name),
                    linewidths=0.7,
                    zorder=3,
                )
            ax.annotate(name, (t, mse), xytext=(4, 3), textcoords="offset points", fontsize=7)
        _baseline_hlines(ax, ok_rows(group, "baseline"))
        ax.set_xscale("log")
        ax.set_yscale("log")
        # a single point (or equal times) gives a degenerate log axis; widen it by a factor 2
        ts = [t for _, t, _ in pts]
        lo, hi = min(ts) / 1.5, max(ts) * 1.5
        if hi / lo < 4:
            lo, hi = min(ts) / 2, max(ts) * 2
        ax.set_xlim(lo, hi)
        log_ticks(ax.xaxis, lo, hi)
        return _finish(fig, ax, group, "Accuracy vs training time", "training time (s)", "test MSE per coordinate")

    return _per_group(results, results_dir, out_dir, "accuracy_time", draw)


def plot_energy_curves(results: Results, results_dir: PathLike, out_dir: PathLike | None = None) -> dict[str, Path]:
    """Energy groups: validation energy and forces MAE per epoch (:func:`irrepnet.bench.plots_energy.draw_curves`)."""
    from .plots_energy import draw_curves

    colors = model_colors(results)
    return _per_group(
        results, results_dir, out_dir, "energy_curves", lambda g, d: draw_curves(g, d, colors), target="energy"
    )


#: plot kind -> (function, caption used in the report), in report order.
PLOTS: dict[str, tuple[Callable[..., dict[str, Path]], str]] = {
    "loss": (plot_loss_curves, "Validation MSE per epoch (log scale); dashed: the baselines' test MSE"),
    "accuracy_time": (
        plot_accuracy_vs_time,
        "Test MSE vs total training time (seed mean with 95% interval, hollow: single seeds); lines: baselines",
    ),
    "parity": (plot_parity, "Predicted vs true test displacement components (subsampled); black: y = x"),
    "rollout": (
        plot_rollout_error,
        "Position MSE after k fed-back steps (bands: 95% intervals over start frames); dashed/dotted: baselines",
    ),
    "trajectory": (plot_trajectory, "x-y bead paths of the first rollout: truth (solid) vs prediction (dashed)"),
    "energy_curves": (
        plot_energy_curves,
        "Validation MAE of the energy per molecule and of the forces per epoch "
        "(log scale; thin: other seeds); dashed: the atom-energy reference",
    ),
}


def plot_all(results: Results, results_dir: PathLike, out_dir: PathLike | None = None) -> dict[str, Path]:
    """Every plot of :data:`PLOTS`; returns ``{"<kind>/<group id>": path}`` for the files written."""
    paths: dict[str, Path] = {}
    for kind, (fn, _) in PLOTS.items():
        for gid, path in fn(results, results_dir, out_dir).items():
            paths[f"{kind}/{gid}"] = path
    return paths
