"""Training-step and inference time of every registered model, relative to ``e3nn-reference``.

Every model is built with its default config for the ``twelve_body`` task and run on
the same batch: ``--batch-size`` frames of the 12-bead polymer from the built-in
simulator (float32). A training step is forward + MSE loss on the displacement +
backward + ``Adam.step``; inference is a forward under ``torch.no_grad`` in eval mode.
After ``--warmup`` untimed runs, ``--repeats`` runs are timed with ``time.perf_counter``
and the median is reported. Models are interleaved (one run of each in turn), so a
change of machine load during the run hits all of them alike; the ratios are against
``e3nn-reference`` measured in the same run. ``tfn@reference`` is ``tfn`` at the
reference's size (:func:`irrepnet.models.tfn.reference_config`). ``NAME@e3nn-weights`` is a
model that has a ``parametrization`` option built with ``parametrization="e3nn"``: next to
``NAME`` (its default ``"linear"``, through ``torch.nn.utils.parametrize``) it gives the
cost of that parametrisation, the same function with its weights stored another way
(:mod:`irrepnet.nn.parametrization`).

A shared or busy CPU distorts multi-threaded timings badly (OpenMP threads wait on
each other when a core is taken); ``--threads 1`` gives the most stable ratios.

``--compile`` adds the same timings of every model compiled with
:func:`irrepnet.compile.compile_model` (graph topology built eagerly, the rest one
``torch.compile`` graph), the compiled / eager ratio (``c/e``) and the compilation
time (first training call, untimed). Eager and compiled models are timed in two
interleaved rounds, one after the other; ratios to ``e3nn-reference`` are within a
mode (compiled model over compiled reference).

Run: ``python benchmarks/speed.py [--batch-size 32] [--repeats 10] [--warmup 3]
[--models tfn e3nn-reference] [--history 2] [--threads 1] [--compile] [--device cuda]
[--json OUT] [--profile tfn]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

from irrepnet import keys as K
from irrepnet.batch import to as batch_to
from irrepnet.compile import compile_model
from irrepnet.models.tfn import reference_config
from irrepnet.provenance import provenance
from irrepnet.registry import ConfigError, build_model, list_models
from irrepnet.tasks import load_task
from irrepnet.train.optim import make_optimizer

REFERENCE = "e3nn-reference"
TFN_AT_REFERENCE = "tfn@reference"
E3NN_WEIGHTS = "@e3nn-weights"


def build(name: str, spec):
    """A registered model, ``tfn`` at the reference's configuration, or ``NAME@e3nn-weights``."""
    if name == TFN_AT_REFERENCE:
        return build_model("tfn", spec, reference_config())
    if name.endswith(E3NN_WEIGHTS):
        return build_model(name[: -len(E3NN_WEIGHTS)], spec, {"parametrization": "e3nn"})
    return build_model(name, spec)


def make_steps(model: torch.nn.Module, batch: dict[str, torch.Tensor], target: str):
    """``(train_step or None, infer_step)``; parameter-free models have no training step."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, "adam", lr=1e-3) if params else None  # as the trainer

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


def time_interleaved(
    steps: dict[str, Callable], warmup: int, repeats: int, sync: Callable | None = None
) -> dict[str, float]:
    """Median seconds per call of each step, running them in turn ``repeats`` times.

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called before reading each clock,
    so that asynchronous device work is counted in the step that queued it.
    """
    sync = sync or (lambda: None)
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
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


def fmt_ms(t: float | None) -> str:
    return f"{'-':>9}" if t is None else f"{1e3 * t:9.1f}"


def fmt_ratio(t: float | None, ref: float | None, width: int = 7) -> str:
    return f"{'-':>{width}}" if t is None or not ref else f"{t / ref:{width}.3f}"


def build_steps(names, task, batch, seed: int, compiled: bool, device) -> tuple[dict, dict, dict]:
    """``(train_steps, infer_steps, info)`` of every model in ``names`` (compiled or eager).

    A model that fails to build or run is recorded in ``info`` with its error and left
    out of the timing, so that one broken model does not hide the others' numbers. The
    first call of a compiled model compiles it; its duration is ``info[name]["compile_s"]``.
    """
    train_steps, infer_steps, info = {}, {}, {}
    for name in names:
        torch.manual_seed(seed)
        try:
            model = build(name, task.spec).to(device)
            runner = compile_model(model) if compiled else model
            train, infer = make_steps(runner, batch, task.spec.target)
            start = time.perf_counter()
            for step in (train, infer):  # fail here, not in the timing loop; compiles both graphs
                if step is not None:
                    step()
            info[name] = {"parameters": sum(p.numel() for p in model.parameters())}
            if compiled:
                info[name]["compile_s"] = time.perf_counter() - start
                if not runner.compiled:
                    info[name]["fallback"] = runner.fallback_reason
        except ConfigError as exc:
            info[name] = {"skipped": str(exc)}
            continue
        except Exception as exc:  # a broken model must not hide the others' numbers
            info[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        infer_steps[name] = infer
        if train is not None:
            train_steps[name] = train
    return train_steps, infer_steps, info


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32, help="frames per batch (12 nodes each)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per model (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per model first")
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help=f"default: every registered irrepnet model plus {TFN_AT_REFERENCE} "
        "(peers such as se3-transformer-pytorch only when named)",
    )
    parser.add_argument("--history", type=int, default=2, help="velocity history of the twelve_body task")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--compile", action="store_true", help="also time every model compiled with irrepnet.compile.compile_model"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (timings synchronise the device)")
    parser.add_argument("--json", default=None, help="write the results to this file")
    parser.add_argument("--profile", default=None, metavar="MODEL", help="print a profile of MODEL's training step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:  # before provenance(), which records the thread count
        torch.set_num_threads(args.threads)
    started = provenance()  # the code that runs is the code checked out now, not at the end
    if args.repeats < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error("need --repeats >= 1, --warmup >= 0 and --batch-size >= 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device here")
    names = args.models or list_models(peers=False) + [TFN_AT_REFERENCE]
    if REFERENCE not in names:
        names = [REFERENCE] + names

    task = load_task("twelve_body", history=args.history, dtype=torch.float32)
    batch = batch_to(task.train.batch(range(args.batch_size)), device)
    modes = ("eager", "compiled") if args.compile else ("eager",)
    steps = {mode: build_steps(names, task, batch, args.seed, mode == "compiled", device) for mode in modes}

    if args.profile:
        train_steps, infer_steps, _ = steps[modes[-1]]
        which = train_steps if args.profile in train_steps else infer_steps
        print(f"profile of {args.profile} ({modes[-1]}, {'training step' if which is train_steps else 'inference'}):")
        print(profile_step(which[args.profile]))

    sync = torch.cuda.synchronize if device.type == "cuda" else None
    timings = {}
    for mode in modes:  # interleaved within a mode; eager and compiled one after the other
        train_steps, infer_steps, _ = steps[mode]
        timings[mode] = (
            time_interleaved(train_steps, args.warmup, args.repeats, sync),
            time_interleaved(infer_steps, args.warmup, args.repeats, sync),
        )
    info = merge_info(steps, timings, modes)
    print(
        f"twelve_body, batch {args.batch_size} x 12 nodes, history {args.history}, float32, {device.type}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} after {args.warmup} warm-up; "
        f"x ref = time / time of {REFERENCE} in the same mode (< 1: faster); c/e = compiled / eager"
    )
    print(format_table(names, info, modes))
    result = {
        "batch_size": args.batch_size,
        "history": args.history,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device_name(device),
        "modes": list(modes),
        "provenance": started,
        "models": info,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


def merge_info(steps: dict, timings: dict, modes) -> dict:
    """Per model: parameters, and per mode ``train_s``/``infer_s``, their ratio to the reference, compile time."""
    info: dict[str, dict] = {}
    for mode in modes:
        t_train, t_infer = timings[mode]
        ref_train, ref_infer = t_train.get(REFERENCE), t_infer.get(REFERENCE)
        for name, entry in steps[mode][2].items():
            row = info.setdefault(name, {})
            if "parameters" not in entry:
                row.setdefault("skipped" if "skipped" in entry else "error", entry.get("skipped") or entry.get("error"))
                continue
            row["parameters"] = entry["parameters"]
            tt, ti = t_train.get(name), t_infer.get(name)
            row[mode] = {
                "train_s": tt,
                "infer_s": ti,
                "train_ratio": tt / ref_train if tt and ref_train else None,
                "infer_ratio": ti / ref_infer if ti and ref_infer else None,
                **{k: entry[k] for k in ("compile_s", "fallback") if k in entry},
            }
    return info


def format_table(names, info: dict, modes) -> str:
    """One row per model: eager (and compiled) train and inference ms with their ratios."""
    head = f"{'model':<24} {'params':>9} {'train ms':>9} {'x ref':>7}"
    if "compiled" in modes:
        head += f" {'compiled':>9} {'x ref':>7} {'c/e':>6}"
    head += f" {'infer ms':>9} {'x ref':>7}"
    if "compiled" in modes:
        head += f" {'compiled':>9} {'x ref':>7} {'c/e':>6} {'compile s':>9}"
    lines = [head]
    for name in names:
        row = info.get(name, {})
        if "parameters" not in row:
            lines.append(
                f"{name:<24} {'':>9} {'skipped' if 'skipped' in row else 'ERROR'}: "
                f"{row.get('skipped') or row.get('error')}"
            )
            continue
        eager, comp = row.get("eager", {}), row.get("compiled", {})
        line = (
            f"{name:<24} {row['parameters']:>9} {fmt_ms(eager.get('train_s'))} {fmt_ratio(eager.get('train_ratio'), 1)}"
        )
        if comp:
            line += (
                f" {fmt_ms(comp.get('train_s'))} {fmt_ratio(comp.get('train_ratio'), 1)}"
                f" {fmt_ratio(comp.get('train_s'), eager.get('train_s'), 6)}"
            )
        line += f" {fmt_ms(eager.get('infer_s'))} {fmt_ratio(eager.get('infer_ratio'), 1)}"
        if comp:
            line += (
                f" {fmt_ms(comp.get('infer_s'))} {fmt_ratio(comp.get('infer_ratio'), 1)}"
                f" {fmt_ratio(comp.get('infer_s'), eager.get('infer_s'), 6)} {comp.get('compile_s', 0):9.1f}"
            )
            if comp.get("fallback"):
                line += f"  (eager fallback: {comp['fallback']})"
        lines.append(line)
    return "\n".join(lines)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
