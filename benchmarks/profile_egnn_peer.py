r"""Training-step time of irrepnet's ``egnn`` against ``egnn-pytorch`` as the peers suites run them, and a profile.

For each suite (default ``peers``, the packaged ``irrepnet/suites/peers.toml``, twelve_body with history 2, batch 32;
and ``peers-nbody``, nbody, batch 100) both models are built by the
harness (:func:`irrepnet.train.api.make_trainer`, the suite's ``[train]`` and model
configs: egnn-pytorch at its matched size, depth 4, dim 44, m_dim 16) on the suite's
task and splits, and two steps are timed:

- ``harness``: :meth:`Trainer._train_step` on a batch of the suite's size, what the
  suite's ``train step ms`` is the median of: batch assembly from the dataset,
  normalisation, forward, loss, backward, gradient clipping, Adam;
- ``model``: forward, MSE loss, backward, Adam on one pre-built batch
  (``make_steps`` of ``benchmarks/speed.py``, as ``benchmarks/peers_sizes.py --time``):
  the model's own cost, without the data pipeline both share.

Both suites train eagerly (no ``compile`` in their ``[train]``, whose default is off); the
script times eager steps and refuses a suite that compiles. Times are interleaved (egnn,
egnn-pytorch, egnn, ...), medians of ``--repeats`` after ``--warmup`` untimed steps, in
``--rounds`` rounds, on two clocks: wall time and the thread's CPU time (steadier when
other jobs share the cores); each round gives a ratio peer / egnn (> 1: irrepnet is
faster), and the median and range of the round ratios are printed. ``--threads 1`` (the
default) times one core. Absolute times on a shared machine are noise; the ratio within
a round is what to compare.

``--profile`` (default on) prints torch.profiler's top ops by self CPU time for three
harness steps of irrepnet's egnn on each suite (``--profile-peer`` also the peer's).

``--save-reference FILE`` / ``--check-reference FILE``: the float64 outputs and parameter
gradients of a fixed-seed ``egnn`` on each suite's batch (displacement) and of the
molecules energy model (energy, and forces by autograd, so that its parameter gradients
go through a double backward), written by one version of the code and
compared by another, so that an optimisation is shown not to change the math (relative
error per tensor against its largest entry, tolerance ``--tol`` = 1e-12); the state_dict
keys must match too.

Run: ``python benchmarks/profile_egnn_peer.py [--suites peers FILE.toml ...]
[--repeats 15] [--warmup 3] [--rounds 3] [--no-profile] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from pathlib import Path

import torch

from irrepnet import keys as K
from irrepnet.batch import to as batch_to
from irrepnet.bench.runner import prepare_group
from irrepnet.bench.suite import load_suite
from irrepnet.registry import build_model
from irrepnet.tasks import load_task
from irrepnet.train.api import make_trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import make_steps, profile_step

OWN, PEER = "egnn", "egnn-pytorch"
SUITES = ["peers", "peers-nbody"]  # packaged suites (irrepnet/suites), found by name


def suite_steps(path: str) -> dict[str, object]:
    """Harness and model steps of ``egnn`` and ``egnn-pytorch`` for the suite at ``path``."""
    suite = load_suite(path)
    variant = suite.variants[0]
    cfgs = {name: suite.train_config_for(name, variant=variant) for name in (OWN, PEER)}
    if any(c.compile for c in cfgs.values()):
        raise SystemExit(f"{path} trains compiled; this script times eager steps only")
    group = prepare_group(suite, variant, None, cfgs[OWN].valid_fraction)
    bs = cfgs[OWN].batch_size
    harness, model, params = {}, {}, {}
    for name in (OWN, PEER):
        trainer = make_trainer(name, group.task, cfgs[name], suite.model_config_for(name))
        # the same indices for both models, a new batch each call as in training
        perm = torch.randperm(len(trainer.train_set), generator=torch.Generator().manual_seed(0))
        counter = iter(range(10**9))

        def step(trainer=trainer, perm=perm, counter=counter):
            i = next(counter) % max(1, len(perm) // bs)
            trainer._train_step(perm[i * bs : (i + 1) * bs])

        harness[name] = step
        batch = trainer.train_set.batch(range(bs))
        torch.manual_seed(0)
        net = build_model(name, group.task.spec, suite.model_config_for(name))
        model[name] = make_steps(net, batch, group.task.spec.target)[0]
        params[name] = sum(p.numel() for p in net.parameters())
    return {
        "suite": suite.name,
        "task": suite.task,
        "batch_size": bs,
        "harness": harness,
        "model": model,
        "parameters": params,
        "trainer_step": harness[OWN],
    }


def time_interleaved(steps: dict[str, object], warmup: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds per call of each step, run in turn ``repeats`` times: wall clock and thread CPU time.

    The thread's CPU time (``time.thread_time``, user + system) leaves out the time the
    process waits for a core, so on a machine shared with other jobs it is the steadier
    of the two; it still counts what contention does to caches and memory bandwidth.
    """
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list] = {k: [] for k in steps}
    cpu: dict[str, list] = {k: [] for k in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            w, c = time.perf_counter(), time.thread_time()
            fn()
            cpu[name].append(time.thread_time() - c)
            wall[name].append(time.perf_counter() - w)
    return {
        "wall": {k: statistics.median(v) for k, v in wall.items()},
        "cpu": {k: statistics.median(v) for k, v in cpu.items()},
    }


def time_rounds(steps: dict[str, object], warmup: int, repeats: int, rounds: int) -> dict:
    """Per round and clock the interleaved medians of both steps and the ratio peer / own; their summary."""
    out = {}
    for r in range(rounds):
        t = time_interleaved(steps, warmup if r == 0 else 1, repeats)
        for clock, m in t.items():
            out.setdefault(clock, {"rounds": []})["rounds"].append(
                {"own_ms": 1e3 * m[OWN], "peer_ms": 1e3 * m[PEER], "ratio": m[PEER] / m[OWN]}
            )
    for res in out.values():
        ratios = [p["ratio"] for p in res["rounds"]]
        res.update(ratio_median=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios))
    return out


def reference_outputs() -> dict[str, torch.Tensor]:
    """Float64 outputs and gradients of fixed-seed egnn models (see the module docstring)."""
    out: dict[str, torch.Tensor] = {}
    cases = [("twelve_body", {"history": 2}, 32), ("nbody", {}, 100), ("molecules", {}, 8)]
    for task_name, kw, bs in cases:
        task = load_task(task_name, dtype=torch.float64, **kw)
        torch.manual_seed(0)
        model = build_model(OWN, task.spec).double()
        for p in model.parameters():  # the frozen last MLP too: its outputs must not change either
            p.requires_grad_(True)
        with torch.no_grad():  # move weights off their small init, so every term is exercised
            for p in model.parameters():
                p.add_(0.02 * torch.randn_like(p))
        batch = batch_to(task.train.batch(range(bs)), dtype=torch.float64)
        batch[K.POS] = batch[K.POS].clone().requires_grad_(True)
        pred = model(batch)
        fields = [f for f in (K.DISPLACEMENT, K.ENERGY, K.FORCES) if f in pred]
        loss = sum((pred[f] ** 2).sum() * (i + 1) for i, f in enumerate(fields))
        grads = torch.autograd.grad(loss, [batch[K.POS], *model.parameters()], allow_unused=True)
        for f in fields:
            out[f"{task_name}/{f}"] = pred[f].detach()
        out[f"{task_name}/grad_pos"] = grads[0]
        for (name, _), g in zip(model.named_parameters(), grads[1:]):
            out[f"{task_name}/grad/{name}"] = torch.zeros(0) if g is None else g
        out[f"{task_name}/keys"] = torch.tensor([zlib.crc32(k.encode()) for k in model.state_dict()])
    return out


def check_reference(path: str, tol: float) -> bool:
    ref, new = torch.load(path), reference_outputs()
    ok = set(ref) == set(new)
    if not ok:
        print(f"tensor names differ: missing {sorted(set(ref) - set(new))}, new {sorted(set(new) - set(ref))}")
    worst = 0.0
    for key in sorted(set(ref) & set(new)):
        a, b = ref[key], new[key]
        if key.endswith("/keys"):
            same = torch.equal(a, b)
            ok &= same
            print(f"{key:<60} {'same' if same else 'DIFFERENT'} state_dict keys")
            continue
        if a.shape != b.shape:
            print(f"{key:<60} shape {tuple(a.shape)} != {tuple(b.shape)}")
            ok = False
            continue
        scale = a.abs().max().item() if a.numel() else 0.0
        err = (a - b).abs().max().item() / scale if scale else (a - b).abs().max().item() if a.numel() else 0.0
        worst = max(worst, err)
        if err > tol:
            ok = False
            print(f"{key:<60} relative error {err:.2e} > {tol:.0e}")
    print(f"{len(new)} tensors, largest relative error {worst:.2e}: {'OK' if ok else 'FAILED'}")
    return ok


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="+", default=SUITES)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", nargs="+", default=["harness", "model"], choices=["harness", "model"])
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--profile-peer", action="store_true", help="also profile egnn-pytorch's step")
    parser.add_argument("--rows", type=int, default=20, help="rows of the profile tables")
    parser.add_argument("--save-reference", metavar="FILE")
    parser.add_argument("--check-reference", metavar="FILE")
    parser.add_argument("--tol", type=float, default=1e-12)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.save_reference:
        torch.save(reference_outputs(), args.save_reference)
        print(f"wrote {args.save_reference}")
        return {}
    if args.check_reference:
        sys.exit(0 if check_reference(args.check_reference, args.tol) else 1)
    results = {}
    for path in args.suites:
        s = suite_steps(path)
        res = results[path] = {"suite": s["suite"], "batch_size": s["batch_size"], "parameters": s["parameters"]}
        print(
            f"\n{path}: {s['task']}, batch {s['batch_size']}, eager, {args.threads} thread(s); parameters "
            + ", ".join(f"{k} {v:,}" for k, v in s["parameters"].items())
        )
        if args.profile:
            print(f"profile of {OWN}'s harness step (3 steps, top ops by self CPU time):")
            print(profile_step(s["trainer_step"], rows=args.rows))
            if args.profile_peer:
                print(f"profile of {PEER}'s harness step:")
                print(profile_step(s["harness"][PEER], rows=args.rows))
        for kind in args.steps:
            res[kind] = time_rounds(s[kind], args.warmup, args.repeats, args.rounds)
            for clock, t in res[kind].items():
                rounds = "; ".join(
                    f"{p['own_ms']:.1f} vs {p['peer_ms']:.1f} ms ({p['ratio']:.2f}x)" for p in t["rounds"]
                )
                print(
                    f"{kind:<8} {clock:<4} {OWN} vs {PEER}, median of {args.repeats} per round: {rounds}; "
                    f"ratio {t['ratio_median']:.2f}x (rounds {t['ratio_min']:.2f}-{t['ratio_max']:.2f})"
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
