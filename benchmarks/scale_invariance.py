"""Does a table depend on the unit of length? Every registered model on the reference chain times 0.01, 1, 100.

Issue 25 measured the shipped reference trajectory multiplied by 10 taking
radial-field from 0.011x to 1.68x the zero-displacement error, and egnn-vel to a NaN
in float32 at x100: positions, cutoffs and radial bases were in the data's unit.
Since then the training wrapper divides positions by a length fitted on the training
data (:mod:`irrepnet.train.length`). This script trains each registered model (peers
whose packages are missing are skipped) with a fixed seed on the first ``--frames``
frames of the reference trajectory (history 2, chronological 80/20 split) multiplied by
each scale, and reports test MSE / zero-displacement MSE per model and scale, the
relative spread over the scales, and, with ``--control``, the same runs with the
fitted length switched off (positions in the data's unit, as before issue 25).
Parameter-free baselines are evaluated untrained.

Usage::

    python benchmarks/scale_invariance.py --out benchmarks/results/scale-invariance
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from irrepnet.provenance import provenance

SCALES = (0.01, 1.0, 100.0)


def run_one(name: str, scale: float, *, frames: int, steps: int, dtype: str, length: bool, seed: int) -> dict:
    """One model trained on the reference chain times ``scale``: its test MSE and that of zero displacement."""
    from irrepnet.data import split_trajectory
    from irrepnet.data.reference import reference_trajectory
    from irrepnet.metrics import predict
    from irrepnet.registry import build_model
    from irrepnet.tasks import task_spec
    from irrepnet.train.config import TrainConfig
    from irrepnet.train.loop import Trainer

    train, test = split_trajectory(reference_trajectory()[:frames] * scale, history=2)
    torch.manual_seed(seed)
    model = build_model(name, task_spec("twelve_body", history=2, num_nodes=12))
    row = {"model": name, "scale": scale, "dtype": dtype, "length": length, "trained": False}
    t0 = time.perf_counter()
    try:
        if any(p.requires_grad for p in model.parameters()):
            config = TrainConfig(epochs=1000, max_steps=steps, batch_size=16, dtype=dtype, seed=seed, progress=False)
            trainer = Trainer(model, train, config=config)
            if not length:  # the control: positions in the data's unit
                trainer.model.length_scale = None
            row.update(trained=True, fitted_length=trainer.model.length_scale)
            model = trainer.fit().model
        pred, true = predict(model, test)
    except (FloatingPointError, ValueError) as exc:
        return {**row, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}", "time_s": time.perf_counter() - t0}
    mse, zero = float(((pred - true) ** 2).mean()), float((true**2).mean())
    ratio = mse / zero if np.isfinite(mse) else None
    return {**row, "mse": mse, "zero_mse": zero, "mse_over_zero": ratio, "time_s": time.perf_counter() - t0}


def spread(rows: list[dict]) -> float | None:
    """``max / min - 1`` of MSE / zero over the scales; ``None`` when a run failed."""
    r = [row.get("mse_over_zero") for row in rows]
    if any(v is None or not np.isfinite(v) for v in r):
        return None
    return max(r) / min(r) - 1.0


def table(rows: list[dict], scales) -> str:
    """Markdown: one line per model, dtype and length setting; MSE / zero per scale and their spread."""
    head = "| model | dtype | fitted length | " + " | ".join(f"x{s:g}" for s in scales) + " | spread |"
    lines = [head, "|" + "---|" * (4 + len(scales))]
    keys = sorted({(r["model"], r["dtype"], r["length"]) for r in rows}, key=lambda k: (k[0], k[1], not k[2]))
    for model, dtype, length in keys:
        group = sorted(
            (r for r in rows if (r["model"], r["dtype"], r["length"]) == (model, dtype, length)),
            key=lambda r: r["scale"],
        )
        cells = []
        for r in group:
            if "error" in r:
                cells.append(r["error"].split(":")[0])
            else:
                cells.append("nan" if r["mse_over_zero"] is None else f"{r['mse_over_zero']:.6g}")
        s = spread(group)
        on = ("on" if length else "**off**") if group[0]["trained"] else "untrained"
        lines.append(f"| {model} | {dtype} | {on} | " + " | ".join(cells) + f" | {'-' if s is None else f'{s:.1e}'} |")
    return "\n".join(lines)


def write(out: Path | None, rows: list[dict], args, skipped: list[str], started: dict) -> str:
    """The markdown report of ``rows``; with ``out``, also written there with the json record."""
    text = (
        f"# Scale invariance: test MSE / zero-displacement MSE\n\n"
        f"Reference trajectory, first {args.frames} frames times each scale, history 2, "
        f"{args.steps} Adam steps (batch 16, seed {args.seed}); spread = max / min - 1 over the scales. "
        "A few steps compare the scales, not the models. Rows with the fitted length **off** are the "
        "control: positions, cutoffs and radial bases in the data's unit, as before issue 25.\n"
        + (f"Not installed, skipped: {', '.join(skipped)}.\n" if skipped else "")
        + "\n"
        + table(rows, args.scales)
        + f"\n\nCommit {started.get('commit')}, {started.get('machine')}.\n"
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "scale_invariance.md").write_text(text)
        record = {"provenance": started, "settings": vars(args), "skipped": skipped, "rows": rows}
        (out / "scale_invariance.json").write_text(json.dumps(record, indent=2))
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="folder for scale_invariance.md and .json (refused if they exist)")
    p.add_argument("--models", nargs="*", help="registered model names (default: every one installed)")
    p.add_argument("--scales", nargs="*", type=float, default=list(SCALES))
    p.add_argument("--frames", type=int, default=200, help="first frames of the reference trajectory (200)")
    p.add_argument("--steps", type=int, default=20, help="optimiser steps per run (20)")
    p.add_argument("--dtypes", nargs="*", default=["float64", "float32"])
    p.add_argument("--control", action="store_true", help="also train float32 with the fitted length off")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from irrepnet.registry import list_models, unavailable_reason

    out = Path(args.out) if args.out else None
    if out is not None and (out / "scale_invariance.json").exists():
        print(f"{out / 'scale_invariance.json'} exists; choose another --out or remove it", file=sys.stderr)
        return 2
    names = args.models or [n for n in list_models() if unavailable_reason(n) is None]
    skipped = sorted(n for n in list_models() if unavailable_reason(n) is not None)
    started = provenance()
    settings = [(d, True) for d in args.dtypes] + ([("float32", False)] if args.control else [])
    rows = []
    for name in names:
        for dtype, length in settings:
            for scale in args.scales:
                row = run_one(
                    name, scale, frames=args.frames, steps=args.steps, dtype=dtype, length=length, seed=args.seed
                )
                rows.append(row)
                shown = row.get("error") or f"{row['mse_over_zero']}"
                print(
                    f"{name:24s} {dtype} length={'on' if length else 'off'} x{scale:g}: {shown} ({row['time_s']:.1f} s)",
                    flush=True,
                )
                write(out, rows, args, skipped, started)  # after every row: a cut-short run keeps what it measured
            if not rows[-1]["trained"]:  # a parameter-free baseline: one setting says it all
                break
    print(write(out, rows, args, skipped, started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
