"""How much of the 12-body motion a force field explains: least-squares fits as a ceiling.

A bead-spring chain moves by Newton's law; on Verlet-like data the second difference
``a(t) = x(t+1) - 2 x(t) + x(t-1)`` is the force at ``x(t)``, a function of the
positions alone. This script fits that acceleration by linear least squares on
physically named features of the training frames (chronological 80% split, as the
task) and scores each fit on the test frames two ways:

- *direct*: ``x(t+1) = x(t) + v_1 + f(x(t))`` (constant velocity plus the fitted force);
- *difference*: ``x(t+1) = x(t) + 2 v_1 - v_2 + f(x(t)) - f(x(t-1))``, constant
  acceleration corrected by the change of the fitted force, which is what
  ``residual = "force_difference"`` trains a network to do.

Feature sets (each a sum over pairs or triplets of a scalar times a relative vector):
``pairwise``: bonded pairs ``r_ij d^p`` for ``p`` in 0, 1, -1, 2, -2, -3 and non-bonded
pairs ``r_ij d^p`` for ``p`` in -14, -8, -6, -4, -2, 0 (within 3.0); ``bonds+angles``: the
bonded ones and harmonic-angle gradients ``theta^p dtheta/dx``, ``p`` = 0..3, of each
triplet (i-1, i, i+1); ``harmonic+angles``: only ``p`` = 0, -1 for the bonds; ``all``.
The fit knows which beads are bonded, which is what ``--bonds`` tells a model.

MSE is per coordinate of the displacement with z = 0 padded (three coordinates), as
in the task. Usage::

    python benchmarks/force_fit.py --data path/to/paths.npz --out benchmarks/results/force_fit
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from irrepnet.data.trajectory import load_trajectory
from irrepnet.provenance import provenance

BOND_POWERS = (0, 1, -1, 2, -2, -3)
NONBONDED_POWERS = (-14, -8, -6, -4, -2, 0)
NONBONDED_CUTOFF = 3.0
ANGLE_POWERS = (0, 1, 2, 3)


def pair_features(x: np.ndarray) -> np.ndarray:
    """``(T, N, 3, 12)``: per bead, sums over bonded / non-bonded partners of ``r_ij d^p``."""
    n = x.shape[1]
    r = x[:, :, None, :] - x[:, None, :, :]
    d = np.linalg.norm(r, axis=-1) + np.eye(n)  # the diagonal is masked out below; 1 avoids 0 ** -p
    sep = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    bonded, far = sep == 1, sep > 1
    feats = [((d**p) * bonded)[..., None] * r for p in BOND_POWERS]
    feats += [((d**p) * far * (d < NONBONDED_CUTOFF))[..., None] * r for p in NONBONDED_POWERS]
    return np.stack([f.sum(axis=2) for f in feats], axis=-1)


def angle_features(x: np.ndarray) -> np.ndarray:
    """``(T, N, 3, 4)``: ``theta^p`` times the gradient of each chain angle, summed per bead."""
    t, n, _ = x.shape
    out = np.zeros((t, n, 3, len(ANGLE_POWERS)))
    for i in range(1, n - 1):
        u, w = x[:, i - 1] - x[:, i], x[:, i + 1] - x[:, i]
        lu, lw = np.linalg.norm(u, axis=-1)[:, None], np.linalg.norm(w, axis=-1)[:, None]
        cos = np.clip((u * w).sum(-1, keepdims=True) / (lu * lw), -1 + 1e-12, 1 - 1e-12)
        sin = np.sqrt(1 - cos**2)
        dtu = -(w / (lu * lw) - cos * u / lu**2) / sin  # d theta / d x_{i-1}
        dtw = -(u / (lu * lw) - cos * w / lw**2) / sin  # d theta / d x_{i+1}
        theta = np.arccos(cos)
        for k, p in enumerate(ANGLE_POWERS):
            g = theta**p
            out[:, i - 1, :, k] += g * dtu
            out[:, i + 1, :, k] += g * dtw
            out[:, i, :, k] -= g * (dtu + dtw)
    return out


FEATURE_SETS = {
    "pairwise": lambda pf, af: pf,
    "harmonic+angles": lambda pf, af: np.concatenate([pf[..., :2], af], axis=-1),
    "bonds+angles": lambda pf, af: np.concatenate([pf[..., : len(BOND_POWERS)], af], axis=-1),
    "all": lambda pf, af: np.concatenate([pf, af], axis=-1),
}


def fit_and_score(x: np.ndarray, train_fraction: float = 0.8, top: int = 5) -> dict:
    """Every feature set's direct and difference test MSE, with the constant-acceleration reference."""
    acc = x[2:] - 2 * x[1:-1] + x[:-2]  # acc[k]: the acceleration at frame k + 1
    frames = x[1:-1]
    # the task's chronological split: samples t < floor(f (T - 1)) train (irrepnet.data.windows);
    # the test sample t is scored on a(t) = acc[t - 1]
    n_train = int(np.floor(train_fraction * (x.shape[0] - 1) + 1e-9)) - 1
    pf, af = pair_features(frames), angle_features(frames)
    ca = ((acc[n_train:] - acc[n_train - 1 : -1]) ** 2).mean(axis=(1, 2))  # constant acceleration, per test frame
    hard = np.argsort(-ca)[:top]
    out = {
        "constant_acceleration": {
            "test_mse": float(ca.mean()),
            "median_frame_mse": float(np.median(ca)),
            "hard_frames_mse": float(ca[hard].mean()),
        },
        "acceleration_mse": float((acc[n_train:] ** 2).mean()),
        "fits": {},
    }
    for name, make in FEATURE_SETS.items():
        feats = make(pf, af)
        flat = feats.reshape(-1, feats.shape[-1])
        rows = n_train * feats.shape[1] * 3  # the training frames' rows
        scale = np.sqrt((flat[:rows] ** 2).mean(axis=0)) + 1e-30
        coef, *_ = np.linalg.lstsq(flat[:rows] / scale, acc[:n_train].reshape(-1), rcond=None)
        force = ((flat / scale) @ coef).reshape(acc.shape)
        direct = ((force[n_train:] - acc[n_train:]) ** 2).mean(axis=(1, 2))
        diff = ((acc[n_train - 1 : -1] + force[n_train:] - force[n_train - 1 : -1] - acc[n_train:]) ** 2).mean(
            axis=(1, 2)
        )
        out["fits"][name] = {
            "features": feats.shape[-1],
            "direct_test_mse": float(direct.mean()),
            "difference_test_mse": float(diff.mean()),
            "difference_median_frame_mse": float(np.median(diff)),
            "difference_hard_frames_mse": float(diff[hard].mean()),
        }
    return out


def markdown(res: dict, source: str, top: int) -> str:
    ca = res["constant_acceleration"]
    lines = [
        f"# Least-squares force fits on {source}",
        "",
        f"Test MSE per coordinate; constant acceleration {ca['test_mse']:.3e} (median frame "
        f"{ca['median_frame_mse']:.3e}, mean over its {top} hardest test frames {ca['hard_frames_mse']:.3e}); "
        f"the acceleration itself {res['acceleration_mse']:.3e}.",
        "",
        f"| features | count | direct | difference | difference, median frame | difference, {top} hardest |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    for name, f in res["fits"].items():
        lines.append(
            f"| {name} | {f['features']} | {f['direct_test_mse']:.3e} | {f['difference_test_mse']:.3e} | "
            f"{f['difference_median_frame_mse']:.3e} | {f['difference_hard_frames_mse']:.3e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a 12-body trajectory in the dmol format (the dmol-book paths.npz)")
    p.add_argument("--out", help="folder for force_fit.md and force_fit.json (refused if they exist)")
    p.add_argument("--top", type=int, default=5, help="hardest frames of constant acceleration to report (5)")
    args = p.parse_args(argv)
    started = provenance()
    x = load_trajectory(args.data).astype(np.float64)  # (T, N, 3), z = 0 padded for 2-D files
    res = fit_and_score(x, top=args.top)
    text = markdown(res, Path(args.data).name, args.top)
    print(text)
    if args.out:
        out = Path(args.out)
        if (out / "force_fit.json").exists():
            print(f"{out / 'force_fit.json'} exists; choose another --out or remove it", file=sys.stderr)
            return 2
        out.mkdir(parents=True, exist_ok=True)
        (out / "force_fit.md").write_text(text + f"\nCommit {started.get('commit')}, {started.get('machine')}.\n")
        (out / "force_fit.json").write_text(json.dumps({"provenance": started, "data": args.data, **res}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
