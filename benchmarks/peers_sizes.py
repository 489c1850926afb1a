"""Matched sizes of the peers: parameter counts, the configs that match, training-step times.

For each task (``twelve_body`` with history 2, ``nbody``) and each pair of irrepnet's
family and its peer (``egnn`` / ``egnn-pytorch``, ``se3-transformer`` /
``se3-transformer-pytorch``, :mod:`irrepnet.models.peers`) this prints

1. the parameter counts at default configs;
2. the peer config whose parameter count is within ``--tolerance`` (10%) of irrepnet's
   default: depth (and heads, and the number of hidden degrees) fixed to irrepnet's,
   a grid search over the peer's widths (:data:`GRIDS`), taking the widest hidden
   features (``dim``) that fit and then the count closest to irrepnet's;
3. with ``--time SUITE...``, for the models of those suite files at their configs: the
   median time of one training step (forward, MSE loss, backward, Adam step;
   ``make_steps`` of ``benchmarks/speed.py``) on a batch of the suite's size, after
   ``--warmup`` untimed steps, and the times of forwards without gradients (per graph
   on a batch of 256, a rollout step, one graph), then an estimate of the suite's
   duration from them (:func:`estimate_seconds`). ``--threads 1`` (the default) times
   one core.

The suites ``irrepnet/suites/peers.toml`` and ``irrepnet/suites/peers-nbody.toml`` carry the
matched configs and, in their comments, the figures this script printed.

Run: ``python benchmarks/peers_sizes.py [--tolerance 0.1] [--threads 1] [--json OUT]``, then
``python benchmarks/peers_sizes.py --time peers peers-nbody
[--repeats 5] [--warmup 2]``
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import statistics
import time

import torch
from e3nn import o3
from speed import make_steps

from irrepnet.bench.runner import prepare_group
from irrepnet.bench.suite import load_suite
from irrepnet.registry import build_model, get_model_entry, unavailable_reason
from irrepnet.tasks import task_spec

#: irrepnet's family -> its peer
PAIRS = {"egnn": "egnn-pytorch", "se3-transformer": "se3-transformer-pytorch"}
TASKS = {"twelve_body": {"history": 2}, "nbody": {}}
#: widths searched; the package's other defaults stay (egnn-pytorch's m_dim = 16). Heads of
#: width 1 and radial MLPs narrower than 8 are left out: they would make the peer degenerate.
GRIDS = {
    "egnn-pytorch": {"dim": list(range(8, 129, 2))},
    "se3-transformer-pytorch": {"dim": list(range(2, 17)), "dim_head": [2, 4, 8], "radial_hidden": [8, 12, 16, 24, 32]},
}


def parameters(name: str, spec, config: dict | None = None) -> int:
    return sum(p.numel() for p in build_model(name, spec, config or {}).parameters())


def fixed_knobs(own: str, spec) -> dict[str, int]:
    """The peer's depth (and heads, hidden degrees) set to those of irrepnet's default ``own``."""
    cfg = get_model_entry(own).default_config()
    if own == "egnn":
        return {"depth": cfg.layers}
    lmax = max(ir.l for _, ir in o3.Irreps(cfg.hidden_irreps))
    return {"depth": cfg.layers, "heads": cfg.heads, "num_degrees": lmax + 1}


def match(own: str, peer: str, spec, tolerance: float) -> dict:
    """The matched peer config of ``own`` on ``spec``: see the module docstring."""
    target = parameters(own, spec)
    fixed = fixed_knobs(own, spec)
    grid = GRIDS[peer]
    fits = []
    for values in itertools.product(*grid.values()):
        cfg = {**fixed, **dict(zip(grid, values))}
        n = parameters(peer, spec, cfg)
        if abs(n / target - 1) <= tolerance:
            fits.append((cfg, n))
    if not fits:
        raise RuntimeError(f"no {peer} config within {tolerance:.0%} of {own} ({target} parameters) in {grid}")
    cfg, n = min(fits, key=lambda f: (-f[0]["dim"], abs(f[1] - target)))
    return {
        "own": own,
        "own_parameters": target,
        "peer": peer,
        "peer_default_parameters": parameters(peer, spec),
        "config": cfg,
        "parameters": n,
        "difference": n / target - 1,
        "candidates": len(fits),
    }


def _seconds(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_suite(path: str, args) -> dict:
    """Step and forward times of the models of suite ``path`` (its configs, batch size, task), and its duration.

    Per model: ``train_step_s`` (batch of the suite's ``batch_size``), ``graph_s`` (forward
    without gradients per graph, on a batch of 256), ``rollout_s`` (forward of the
    ``rollout_starts`` frames of a rollout step), ``one_s`` (one graph). The duration of
    the suite is estimated from them (:func:`estimate_seconds`), not measured.
    """
    suite = load_suite(path)
    variant = suite.variants[0]
    valid_fraction = suite.train_config_for(suite.model_names()[0], variant=variant).valid_fraction
    task = prepare_group(suite, variant, None, valid_fraction).task  # the splits the harness uses
    sizes = {"train": len(task.train), "valid": len(task.valid), "test": len(task.test)}
    out = {"suite": suite.name, "task": suite.task, "sizes": sizes, "models": {}}
    for name in suite.model_names():
        cfg = suite.train_config_for(name, variant=variant)
        torch.manual_seed(0)
        model = build_model(name, task.spec, suite.model_config_for(name))
        batches = {
            "train": task.train.batch(range(cfg.batch_size)),
            "graph": task.test.batch(range(256)),
            "rollout": task.test.batch(range(suite.rollout_starts)),
            "one": task.test.batch([0]),
        }
        train, _ = make_steps(model, batches["train"], task.spec.target)
        times = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_step_s": _seconds(train, args.warmup, args.repeats),
        }
        for key in ("graph", "rollout", "one"):
            _, infer = make_steps(model, batches[key], task.spec.target)
            times[f"{key}_s"] = _seconds(infer, 1, 3) / (256 if key == "graph" else 1)
        out["models"][name] = {**times, "estimate_s": estimate_seconds(suite, name, times, sizes)}
    out["estimate_s"] = sum(m["estimate_s"] for m in out["models"].values())
    return out


def estimate_seconds(suite, name: str, t: dict, sizes: dict) -> float:
    """Seconds of model ``name`` in ``suite``, all seeds, from its measured times ``t``.

    Per seed: the optimiser steps; a validation pass per epoch and one more with the test
    set after training; the rollout (a forward of the starts per step up to the longest
    horizon); the inference timing of the harness (12 forwards of 256 graphs and of one);
    the audit (float32 and float64, each an unchanged and 4 x ``audit_trials`` changed
    forwards of 4 graphs, float64 counted twice). Baselines, data loading and checkpoints are left out.
    """
    cfg = suite.train_config_for(name, variant=suite.variants[0])
    per_epoch = cfg.steps_per_epoch or math.ceil(sizes["train"] / cfg.batch_size)
    steps = cfg.epochs * per_epoch if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * per_epoch)
    epochs = math.ceil(steps / per_epoch)
    horizon = max(suite.rollout_horizons) if (suite.task == "twelve_body" and suite.rollout_horizons) else 0
    seed = (
        steps * t["train_step_s"]
        + (epochs * sizes["valid"] + sizes["valid"] + sizes["test"]) * t["graph_s"]
        + horizon * t["rollout_s"]
        + 12 * (min(256, sizes["test"]) * t["graph_s"] + t["one_s"])
        + 3 * (1 + 4 * suite.audit_trials) * 4 * t["graph_s"]
    )
    return seed * len(suite.seeds)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=0.1)
    parser.add_argument(
        "--time",
        nargs="+",
        metavar="SUITE",
        help="time the models of these suite files and estimate each suite's duration",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    missing = [r for r in (unavailable_reason(p) for p in PAIRS.values()) if r]
    if missing:
        parser.error("; ".join(missing))
    results = {}
    for task, kw in ({} if args.time else TASKS).items():
        spec = task_spec(task, **kw)
        rows = [match(own, peer, spec, args.tolerance) for own, peer in PAIRS.items()]
        results[task] = {"matches": rows}
        print(f"\n{task}{' (history 2)' if kw else ''}: parameters at default configs and matched peer configs")
        print(f"{'model':<16} {'params':>8}  {'peer':<24} {'default':>8} {'matched':>8} {'diff':>6}  config")
        for r in rows:
            cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items())
            print(
                f"{r['own']:<16} {r['own_parameters']:>8}  {r['peer']:<24} {r['peer_default_parameters']:>8} "
                f"{r['parameters']:>8} {r['difference']:>+6.1%}  {cfg}"
            )
    for path in args.time or []:
        res = results.setdefault("suites", {})[path] = time_suite(path, args)
        print(
            f"\n{path} ({res['task']}; {res['sizes']}): median of {args.repeats} training steps after "
            f"{args.warmup} warm-up, {args.threads} thread(s), the suite's batch size"
        )
        print(f"{'model':<24} {'params':>8} {'step ms':>8} {'ms/graph':>9} {'rollout ms':>10}  suite estimate")
        for name, t in res["models"].items():
            print(
                f"{name:<24} {t['parameters']:>8} {1e3 * t['train_step_s']:>8.1f} {1e3 * t['graph_s']:>9.2f} "
                f"{1e3 * t['rollout_s']:>10.1f}  {t['estimate_s'] / 60:5.1f} min"
            )
        print(f"{'':<24} estimated duration of the suite: {res['estimate_s'] / 60:.1f} min")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=lambda o: dataclasses.asdict(o))
    return results


if __name__ == "__main__":
    main()
