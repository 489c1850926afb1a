"""Where a model's test error comes from: typical frames against the rare hard ones.

The twelve-body test MSE is a mean over 410 consecutive frames whose per-frame errors are
heavy-tailed: on the dmol-book file the five worst frames (close encounters) carry 30% of
constant acceleration's MSE. This script splits each row's error of a benchmark group
into what happens on typical frames and on the reference baseline's ``--top`` hardest
frames, from the per-frame errors that ``irrepnet bench`` leaves in each run's
``predictions.npz`` (``frame_mse``; run it on a bench output folder, not on the committed
copy, which keeps no ``.npz``).

Columns: the seed-mean test MSE; the median per-frame MSE; the median over frames of the
per-frame ratio to the reference baseline; the summed error on the baseline's ``--top``
hardest frames over the baseline's there; the same over all other frames.

Usage::

    python benchmarks/frame_errors.py runs/dmol-residual --group history-2-ca
    python benchmarks/frame_errors.py runs/dmol-residual --reference constant-velocity --top 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from irrepnet.bench.compare import unit_errors
from irrepnet.bench.report import load_results, ordered_rows


def frame_table(folder: Path, group_id: str, reference: str, top: int) -> str:
    results = load_results(folder)
    groups = {g["id"]: g for g in results["groups"]}
    if group_id not in groups:
        raise ValueError(f"no group {group_id!r} in {folder}; groups: {', '.join(groups)}")
    group = groups[group_id]
    rows = {r["name"]: r for r in ordered_rows(group)}
    if reference not in rows:
        raise ValueError(f"no row {reference!r} in group {group_id!r}; rows: {', '.join(rows)}")
    ref, _ = unit_errors(rows[reference], folder)
    if ref is None:
        raise FileNotFoundError(
            f"{folder} holds no predictions.npz with frame_mse for {reference!r}; run this on "
            "an irrepnet bench output folder (the committed copies keep no .npz)"
        )
    ref = ref.mean(axis=0)
    hard = np.argsort(ref)[-top:]
    rest = np.setdiff1d(np.arange(ref.size), hard)
    lines = [
        f"group {group_id} of {folder}: reference {reference}; its {top} hardest of {ref.size} test frames "
        f"carry {ref[hard].sum() / ref.sum():.1%} of its MSE",
        "",
        f"| row | seeds | test MSE | median frame MSE | median frame ratio to {reference} | "
        f"ratio on its {top} hardest frames | ratio on the other frames |",
        "|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        errs, _ = unit_errors(row, folder)
        if errs is None:
            continue
        e = errs.mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            frame_ratio = np.median(e / ref)
        lines.append(
            f"| {name} | {errs.shape[0]} | {e.mean():.3e} | {np.median(e):.3e} | {frame_ratio:.3f} | "
            f"{e[hard].sum() / ref[hard].sum():.3f} | {e[rest].sum() / ref[rest].sum():.3f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an irrepnet bench output folder (with predictions.npz files)")
    parser.add_argument("--group", help="group id (default: every group)")
    parser.add_argument("--reference", default="constant-acceleration", help="baseline row to split by")
    parser.add_argument("--top", type=int, default=5, help="hardest frames of the reference")
    args = parser.parse_args(argv)
    try:
        results = load_results(args.folder)
        for gid in [args.group] if args.group else [g["id"] for g in results["groups"]]:
            print(frame_table(args.folder, gid, args.reference, args.top) + "\n")
    except (ValueError, FileNotFoundError) as exc:
        print(f"frame_errors: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
