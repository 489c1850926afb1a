"""Training-step time of ``mace`` against ``tfn`` on a molecules batch, and parameter counts.

The molecules task's training split (ASE's G2 molecules with EMT energies and forces,
:mod:`irrepnet.data.molecules`), its first ``--batch-size`` molecules in one batch,
float32. A training step is forward (energy and forces, the forces by a gradient kept
for the backward), the loss ``MSE(energy per atom) + MSE(forces)``, backward and
``Adam.step``. After ``--warmup`` untimed steps of each model, ``--repeats`` steps are
timed in turn (interleaved, so a change of load hits both alike) and the median is
printed. ``--set KEY=VALUE`` overrides options of the ``mace`` config (repeatable);
``--paper`` starts from :func:`irrepnet.models.mace.paper_config`.

Run: ``python benchmarks/mace_step_time.py [--threads 1] [--batch-size 32] [--repeats 20]
[--warmup 5] [--set channels=32] [--paper] [--cache-dir DIR]``
"""

from __future__ import annotations

import argparse
import ast
import statistics
import time

import torch

from irrepnet import keys as K
from irrepnet.batch import to as batch_to
from irrepnet.data.molecules import molecules
from irrepnet.models.mace import MACEConfig, paper_config
from irrepnet.registry import build_model
from irrepnet.tasks import task_spec
from irrepnet.train.optim import make_optimizer


def train_step_fn(model, batch):
    """One training step of an energy model on ``batch`` (closure over its own Adam)."""
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], "adam", lr=1e-3)
    counts = batch[K.NUM_NODES].to(batch[K.POS].dtype)[:, None]

    def step():
        model.train()
        opt.zero_grad(set_to_none=True)
        out = model(batch)
        loss = ((out[K.ENERGY] - batch[K.TARGET_ENERGY]) / counts).pow(2).mean()
        loss = loss + (out[K.FORCES] - batch[K.TARGET_FORCES]).pow(2).mean()
        loss.backward()
        opt.step()

    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a mace option")
    parser.add_argument("--paper", action="store_true", help="mace at paper_config()")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = ast.literal_eval(value) if value[:1].isdigit() or value[:1] in "-[(" else value
    config = paper_config(**overrides) if args.paper else MACEConfig(**overrides)

    data = molecules("train", n_train=max(args.batch_size, 64), cache_dir=args.cache_dir)
    batch = batch_to(data.batch(list(range(args.batch_size))), dtype=torch.float32)
    spec = task_spec("molecules", species=data.species)
    models = {}
    for name, cfg in (("tfn", None), ("mace", config)):
        torch.manual_seed(0)
        models[name] = build_model(name, spec, cfg)
    steps = {name: train_step_fn(m, batch) for name, m in models.items()}
    for fn in steps.values():
        for _ in range(args.warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    atoms = int(batch[K.NUM_NODES].sum())
    print(f"molecules batch: {args.batch_size} molecules, {atoms} atoms, float32, {args.threads} thread(s)")
    print(f"mace config: {config}")
    for name, m in models.items():
        n_params = sum(p.numel() for p in m.parameters() if p.requires_grad)
        print(f"{name:5s} {n_params:9,d} parameters  train step median {1e3 * statistics.median(times[name]):8.1f} ms")
    ratio = statistics.median(times["mace"]) / statistics.median(times["tfn"])
    print(f"mace / tfn: {ratio:.2f}")


if __name__ == "__main__":
    main()
