"""Training-step and inference time of every registered model, relative to ``e3nn-reference``.

Every model is built with its default config for the ``twelve_body`` task and run on
the same batch: ``--batch-size`` frames of the 12-bead polymer from the built-in
simulator (float32). A training step is forward + MSE loss on the displacement +
backward + ``Adam.step``; inference is a forward under ``torch.no_grad`` in eval mode.
After ``--warmup`` untimed runs, ``--repeats`` runs are timed with ``time.perf_counter``
and the median is reported. Models are interleaved (one run of each in turn), so a
change of machine load during the run hits all of them alike; the ratios are against
``e3nn-reference`` measured in the same run. ``tfn@reference`` is ``tfn`` at the
reference's size (:func:`irrepnet.models.tfn.reference_config`).

A shared or busy CPU distorts multi-threaded timings badly (OpenMP threads wait on
each other when a core is taken); ``--threads 1`` gives the most stable ratios.

Run: ``python benchmarks/speed.py [--batch-size 32] [--repeats 10] [--warmup 3]
[--models tfn e3nn-reference] [--history 2] [--threads 1] [--json OUT] [--profile tfn]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

from irrepnet import keys as K
from irrepnet.models.tfn import reference_config
from irrepnet.provenance import provenance
from irrepnet.registry import ConfigError, build_model, list_models
from irrepnet.tasks import load_task

REFERENCE = "e3nn-reference"
TFN_AT_REFERENCE = "tfn@reference"


def build(name: str, spec):
    """A registered model, or ``tfn`` at the reference's configuration."""
    if name == TFN_AT_REFERENCE:
        return build_model("tfn", spec, reference_config())
    return build_model(name, spec)


def make_steps(model: torch.nn.Module, batch: Dict[str, torch.Tensor], target: str):
    """``(train_step or None, infer_step)``; parameter-free models have no training step."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3) if params else None

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = (model(batch)[target] - batch[K.TARGET_DISP]).pow(2).mean()
        loss.backward()
        opt.step()

    def infer_step():
        model.eval()
        with torch.no_grad():
            model(batch)

    return (train_step if opt is not None else None), infer_step


def time_interleaved(steps: Dict[str, Callable], warmup: int, repeats: int) -> Dict[str, float]:
    """Median seconds per call of each step, running them in turn ``repeats`` times."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, List[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def profile_step(step: Callable, rows: int = 25) -> str:
    """torch.profiler table of three calls of ``step``, by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def fmt_ms(t: Optional[float]) -> str:
    return f"{'-':>9}" if t is None else f"{1e3 * t:9.1f}"


def fmt_ratio(t: Optional[float], ref: Optional[float]) -> str:
    return f"{'-':>7}" if t is None or not ref else f"{t / ref:7.3f}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32, help="frames per batch (12 nodes each)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per model (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per model first")
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"default: every registered model plus {TFN_AT_REFERENCE}")
    parser.add_argument("--history", type=int, default=2, help="velocity history of the twelve_body task")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="write the results to this file")
    parser.add_argument("--profile", default=None, metavar="MODEL", help="print a profile of MODEL's training step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = provenance()  # the code that runs is the code checked out now, not at the end
    if args.repeats < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error("need --repeats >= 1, --warmup >= 0 and --batch-size >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.models or list_models() + [TFN_AT_REFERENCE]
    if REFERENCE not in names:
        names = [REFERENCE] + names

    task = load_task("twelve_body", history=args.history, dtype=torch.float32)
    batch = task.train.batch(range(args.batch_size))
    train_steps, infer_steps, info = {}, {}, {}
    for name in names:
        torch.manual_seed(args.seed)
        try:
            model = build(name, task.spec)
            train, infer = make_steps(model, batch, task.spec.target)
            infer()  # fail here, not in the timing loop
        except ConfigError as exc:
            info[name] = {"skipped": str(exc)}
            continue
        except Exception as exc:  # a broken model must not hide the others' numbers
            info[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        info[name] = {"parameters": sum(p.numel() for p in model.parameters())}
        infer_steps[name] = infer
        if train is not None:
            train_steps[name] = train

    if args.profile:
        steps = train_steps if args.profile in train_steps else infer_steps
        print(f"profile of {args.profile} ({'training step' if steps is train_steps else 'inference'}):")
        print(profile_step(steps[args.profile]))

    t_train = time_interleaved(train_steps, args.warmup, args.repeats)
    t_infer = time_interleaved(infer_steps, args.warmup, args.repeats)
    ref_train, ref_infer = t_train.get(REFERENCE), t_infer.get(REFERENCE)
    print(f"twelve_body, batch {args.batch_size} x 12 nodes, history {args.history}, float32, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} after {args.warmup} warm-up; "
          f"ratio = time / time of {REFERENCE} (< 1: faster)")
    print(f"{'model':<24} {'params':>9} {'train ms':>9} {'ratio':>7} {'infer ms':>9} {'ratio':>7}")
    for name in names:
        entry = info[name]
        if "parameters" not in entry:
            print(f"{name:<24} {'':>9} {entry.get('skipped') and 'skipped' or 'ERROR'}: "
                  f"{entry.get('skipped') or entry.get('error')}")
            continue
        tt, ti = t_train.get(name), t_infer.get(name)
        entry.update(train_s=tt, infer_s=ti, train_ratio=tt / ref_train if tt and ref_train else None,
                     infer_ratio=ti / ref_infer if ti and ref_infer else None)
        print(f"{name:<24} {entry['parameters']:>9} {fmt_ms(tt)} {fmt_ratio(tt, ref_train)} "
              f"{fmt_ms(ti)} {fmt_ratio(ti, ref_infer)}")
    result = {"batch_size": args.batch_size, "history": args.history, "repeats": args.repeats,
              "warmup": args.warmup, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "provenance": started, "models": info}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
