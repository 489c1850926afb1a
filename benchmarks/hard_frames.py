"""Per-frame errors of a displacement benchmark run on the hardest test frames of constant acceleration.

On the dmol-book trajectory a handful of close encounters carry much of constant acceleration's
error (``benchmarks/results/force_fit``: its 5 hardest test frames average 1.36e-07 against a
median frame of 2.16e-09). This script reads a bench run folder that still holds its
``predictions.npz`` files (they are not committed) and reports, for each trained row, the mean
squared error per coordinate over those frames, seed by seed and as the seed mean, beside
constant acceleration's and as a ratio to it, and the same over all test frames.

Usage::

    python benchmarks/hard_frames.py RUN_FOLDER [RUN_FOLDER ...] [--group history-2-ca-bonds] [--top 5]

Several folders (the shards of one run) are read together. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def frame_mse(path: Path) -> np.ndarray:
    """Per-test-frame MSE per coordinate stored by the bench (``frame_mse``, shape ``(frames,)``)."""
    return np.load(path)["frame_mse"]


def collect(folders: list[Path], group: str) -> dict[str, list[np.ndarray]]:
    """``{row: [frame MSEs of each seed]}``; baselines (no seed folders) give one entry."""
    rows: dict[str, list[np.ndarray]] = {}
    for folder in folders:
        base = folder / group
        if not base.is_dir():
            raise SystemExit(f"hard_frames: {base} is not a group folder of a bench run (try --group)")
        for row in sorted(p for p in base.iterdir() if p.is_dir()):
            files = sorted(row.glob("seed-*/predictions.npz")) or sorted(row.glob("predictions.npz"))
            for f in files:
                entry = rows.setdefault(row.name, [])
                if f.parent.name.startswith("seed-") or not entry:  # a baseline is the same in every shard
                    entry.append(frame_mse(f))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--group", default="history-2-ca-bonds")
    p.add_argument("--top", type=int, default=5)
    args = p.parse_args(argv)
    rows = collect(args.folders, args.group)
    if "constant-acceleration" not in rows:
        raise SystemExit("hard_frames: the run has no constant-acceleration row to pick the hard frames from")
    ca = rows["constant-acceleration"][0]
    hard = np.argsort(-ca)[: args.top]
    ca_hard, ca_all = float(ca[hard].mean()), float(ca.mean())
    print(f"Hardest {args.top} test frames of constant acceleration: {sorted(int(i) for i in hard)} of {ca.size}")
    print()
    print(
        f"| row | seeds | MSE on the {args.top} hard frames (seeds) | seed mean | / constant acceleration | all frames / c.a. |"
    )
    print("|:---|---:|:---|---:|---:|---:|")
    for name, seeds in sorted(rows.items(), key=lambda kv: float(np.mean([s[hard].mean() for s in kv[1]]))):
        per_seed = [float(s[hard].mean()) for s in seeds]
        mean = float(np.mean(per_seed))
        overall = float(np.mean([s.mean() for s in seeds]))
        shown = ", ".join(f"{v:.3e}" for v in per_seed)
        print(f"| {name} | {len(seeds)} | {shown} | {mean:.3e} | {mean / ca_hard:.3f} | {overall / ca_all:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
