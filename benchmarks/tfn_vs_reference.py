"""``tfn`` at the reference's configuration against ``e3nn-reference``: step time and loss.

Both models are built from the same seed at the same size (hidden
``8x0e + 8x0o + 16x1e + 16x1o + 8x2e + 8x2o``, 3 layers, lmax 3, radius 3.5, 10 basis
functions, 128 radial neurons; :func:`irrepnet.models.tfn.reference_config`) and
trained with Adam for ``--steps`` steps on the same sequence of twelve_body batches
(built-in simulator, chronological 80/20 split), one step of each in turn so that
machine load hits both alike. Velocities and targets are divided by the standard
deviation of the training displacements (a scalar, so equivariance is untouched) and
the loss is the MSE of the scaled displacement, i.e. in units of the target variance.

Printed: median step time of each (after ``--warmup`` steps), their ratio, and the
final loss of each on the whole training and test splits (plus the raw MSE of ``dx``).

``--compile`` trains both compiled (:func:`irrepnet.compile.compile_model`; the first
``--warmup`` steps, left out of the timing, include compilation and the one recompilation
for a new edge count); both use :func:`irrepnet.train.optim.make_optimizer`, the trainer's Adam.

Run: ``python benchmarks/tfn_vs_reference.py [--steps 300] [--batch-size 32]
[--history 2] [--lr 3e-3] [--threads 1] [--compile] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from irrepnet import keys as K
from irrepnet.compile import compile_model
from irrepnet.models.tfn import reference_config
from irrepnet.provenance import provenance
from irrepnet.registry import build_model
from irrepnet.tasks import load_task
from irrepnet.train.optim import make_optimizer

VELOCITY_FIELDS = (K.VEL, K.VEL_HISTORY, K.TARGET_DISP)


def scaled(batch: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """Velocities and target displacement divided by ``scale``; positions untouched."""
    return {k: (v / scale if k in VELOCITY_FIELDS else v) for k, v in batch.items()}


def evaluate(model, dataset, scale: float, batch_size: int = 64):
    """(loss in target-variance units, raw MSE of dx) over a whole split."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            b = scaled(dataset.batch(range(start, min(start + batch_size, len(dataset)))), scale)
            err = (model(b)[K.DISPLACEMENT] - b[K.TARGET_DISP]).pow(2)
            total, count = total + float(err.sum()), count + err.numel()
    model.train()
    loss = total / count
    return loss, loss * scale**2


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--history", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="train both models compiled (irrepnet.compile.compile_model); evaluation stays eager",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:  # before provenance(), which records the thread count
        torch.set_num_threads(args.threads)
    started = provenance()  # the code that runs is the code checked out now, not at the end
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")

    task = load_task("twelve_body", history=args.history, dtype=torch.float32)
    scale = float(torch.stack([task.train[i][K.TARGET_DISP] for i in range(len(task.train))]).std())
    models, runners, optimizers = {}, {}, {}
    for name, config in (("tfn@reference", reference_config()), ("e3nn-reference", None)):
        torch.manual_seed(args.seed)  # same initial random state for both
        models[name] = build_model("tfn" if config else name, task.spec, config)
        runners[name] = compile_model(models[name]) if args.compile else models[name]
        optimizers[name] = make_optimizer(models[name].parameters(), "adam", lr=args.lr)

    order = torch.Generator().manual_seed(args.seed)
    times = {name: [] for name in models}
    last_losses = {name: [] for name in models}
    perm = torch.randperm(len(task.train), generator=order)
    cursor = 0
    for step in range(args.steps):
        if cursor + args.batch_size > len(perm):
            perm, cursor = torch.randperm(len(task.train), generator=order), 0
        batch = scaled(task.train.batch(perm[cursor : cursor + args.batch_size].tolist()), scale)
        cursor += args.batch_size
        for name, model in runners.items():
            start = time.perf_counter()
            optimizers[name].zero_grad(set_to_none=True)
            loss = (model(batch)[K.DISPLACEMENT] - batch[K.TARGET_DISP]).pow(2).mean()
            loss.backward()
            optimizers[name].step()
            elapsed = time.perf_counter() - start
            if step >= args.warmup:
                times[name].append(elapsed)
            last_losses[name].append(loss.item())
        if (step + 1) % max(1, args.steps // 10) == 0:
            print(
                f"step {step + 1:5d}  "
                + "  ".join(f"{n}: loss {statistics.mean(v[-20:]):.4e}" for n, v in last_losses.items()),
                flush=True,
            )

    result = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "history": args.history,
        "lr": args.lr,
        "seed": args.seed,
        "compiled": args.compile,
        "threads": torch.get_num_threads(),
        "target_std": scale,
        "models": {},
    }
    print(
        f"\n{args.steps} Adam steps (lr {args.lr}), batch {args.batch_size}, history {args.history}, "
        f"{'compiled' if args.compile else 'eager'}, {torch.get_num_threads()} threads; "
        f"losses in units of the target variance ({scale:.3e}^2)"
    )
    print(f"{'model':<16} {'params':>8} {'step ms':>9} {'train loss':>11} {'test loss':>11} {'test MSE dx':>12}")
    for name, model in models.items():
        train_loss, _ = evaluate(model, task.train, scale)
        test_loss, test_mse = evaluate(model, task.test, scale)
        t = statistics.median(times[name])
        params = sum(p.numel() for p in model.parameters())
        result["models"][name] = {
            "parameters": params,
            "step_s": t,
            "train_loss": train_loss,
            "test_loss": test_loss,
            "test_mse_dx": test_mse,
        }
        print(f"{name:<16} {params:>8} {1e3 * t:9.1f} {train_loss:11.4e} {test_loss:11.4e} {test_mse:12.4e}")
    ratio = result["models"]["e3nn-reference"]["step_s"] / result["models"]["tfn@reference"]["step_s"]
    result["speedup"] = ratio
    print(f"step-time ratio e3nn-reference / tfn@reference = {ratio:.2f}x")
    if args.json:
        result["provenance"] = started
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
