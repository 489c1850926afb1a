"""Compare bench runs of one model that differ only in training options, paired on the same test set.

A suite gives all its models one training configuration, so a sweep over training options
(a schedule, weight decay, a weight average, input noise) is several `irrepnet bench` runs.
This script puts them side by side: the options in which each run differs from the
reference run (the first folder), the best epoch and its validation MSE, the test MSE with
its 95% bootstrap interval, and the paired ratio of each run's test MSE to the reference's
on the same bootstrap resamples of the test samples (irrepnet.stats.Bootstrap, the
reference run's resampling scheme). It reads each run's ``results.json`` and the per-sample
errors in ``<variant>/<model>/seed-<s>/predictions.npz``; runs on other data (another
``data`` description or test size) are refused.

    python benchmarks/training_options.py --model segnn runs/reference runs/ema runs/cosine \
        [--out table.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from irrepnet.stats import Bootstrap

#: options that say how a run was bookkept, not how it trained
IGNORED = {"progress", "device", "eval_batch_size", "epochs"}


def load_run(folder: Path, model: str, seeds=None):
    """The model's row of the run in ``folder`` and the per-sample test errors ``(seeds, n)`` of ``seeds`` (default all)."""
    results = json.loads((folder / "results.json").read_text())
    group = results["groups"][0]
    rows = [r for r in group["rows"] if r["name"] == model]
    if not rows:
        raise SystemExit(f"{folder}: no row for model {model!r} (rows: {[r['name'] for r in group['rows']]})")
    row = rows[0]
    have = [s["seed"] for s in row["seeds"]]
    seeds = have if seeds is None else seeds
    if not set(seeds) <= set(have):
        raise SystemExit(f"{folder}: {model} was trained with seeds {have}, not {seeds}")
    errors, valid = [], []
    for seed in seeds:
        npz = folder / group["id"] / model / f"seed-{seed}" / "predictions.npz"
        if not npz.exists():
            raise SystemExit(f"{folder}: {npz} is missing; the paired comparison needs the per-sample errors")
        errors.append(np.load(npz)["frame_mse"])
        valid.append(json.loads((npz.parent / "seed.json").read_text())["metrics"]["valid_mse"])
    return {
        "folder": folder,
        "group": group,
        "row": row,
        "seeds": seeds,
        "frame_mse": np.stack(errors),
        "valid_mse": float(np.mean(valid)),
        "commit": results["provenance"]["commit"][:7],
    }


def changed_options(run, reference) -> str:
    a, b = run["row"]["train"], reference["row"]["train"]
    # a key one run's version did not have yet took its default, None for the options added later
    diff = [f"{k} = {a.get(k)!r}" for k in sorted(set(a) | set(b)) if k not in IGNORED and a.get(k) != b.get(k)]
    return ", ".join(diff) or "(reference)"


def table(runs, boot: Bootstrap) -> str:
    ref = runs[0]
    lines = [
        "| training options | seeds | epochs | best epoch | valid MSE | test MSE [95% CI] | "
        "ratio to reference [95% CI] | commit |",
        "|:---|:---|---:|---:|---:|---:|---:|:---|",
    ]
    for run in runs:
        r = run["row"]
        cmp = boot.compare(run["frame_mse"], ref["frame_mse"])
        iv = boot.interval(run["frame_mse"])
        ratio = "–" if run is ref else f"{cmp['ratio']:.3f} [{cmp['lo']:.3f}, {cmp['hi']:.3f}]"
        best = ", ".join(map(str, _best_epochs(r, run["seeds"])))
        lines.append(
            f"| {changed_options(run, ref)} | {', '.join(map(str, run['seeds']))} | {r['train']['epochs']} | "
            f"{best} | {run['valid_mse']:.3e} | {iv['value']:.3e} [{iv['lo']:.2e}, {iv['hi']:.2e}] | "
            f"{ratio} | {run['commit']} |"
        )
    return "\n".join(lines)


def _best_epochs(row, seeds):
    """Best epoch of each of ``seeds``, from the row's per-seed records."""
    by_seed = {s["seed"]: s for s in row["seeds"]}
    return [by_seed[s]["training"]["best_epoch"] for s in seeds]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, help="bench output folders; the first is the reference")
    p.add_argument("--model", required=True)
    p.add_argument("--seeds", help="comma-separated seeds to compare (default: every seed of the reference run)")
    p.add_argument("--out", type=Path, help="write the table here (default: print it)")
    args = p.parse_args(argv)
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
    ref = load_run(args.folders[0], args.model, seeds)
    runs = [ref] + [load_run(f, args.model, ref["seeds"]) for f in args.folders[1:]]
    for run in runs[1:]:
        if run["group"]["data"] != ref["group"]["data"] or run["frame_mse"].shape[1] != ref["frame_mse"].shape[1]:
            raise SystemExit(
                f"{run['folder']} was run on other data ({run['group']['data']}) than the reference "
                f"{ref['folder']} ({ref['group']['data']}): a paired comparison needs the same test set"
            )
    scheme = ref["group"]["bootstrap"]  # the resampling the reference's own report used
    boot = Bootstrap(
        ref["frame_mse"].shape[1],
        block_length=scheme["block_length"],
        resamples=scheme["resamples"],
        confidence=scheme["confidence"],
        seed=scheme["seed"],
    )
    text = table(runs, boot) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
