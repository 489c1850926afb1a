"""Speed of MACE's symmetric contraction: irrepnet's own backend against cuEquivariance's, on this CPU.

Both backends of :class:`irrepnet.nn.SymmetricContraction` run in one process, one thread,
on the same inputs and the same function (cuEquivariance's weights are mapped from the own
ones with ``copy_contraction_weights``; the table gives the largest difference of their
outputs, relative to the largest output). Sizes: MACE's defaults (``channels x
(0e+1o+2e+3o) -> channels x (0e+1o)``, correlation 3, 10 elements, one-hot node attributes
drawn at random) on ``--nodes`` nodes, for each of ``--channels``. Per backend and size:
the construction time (once), then the median of ``--repeats`` timed calls after
``--warmup`` untimed ones, of

- forward: ``sc(x, attrs)`` under ``torch.no_grad()``;
- forward+backward: ``(sc(x, attrs) * g).sum().backward()`` with ``x.requires_grad``,
  gradients into ``x`` and the weights (``g`` a fixed random tensor).

On the CPU cuEquivariance runs its PyTorch fallback (method ``"naive"``: one einsum per
path of its descriptor); its CUDA kernels are not measured here. Usage::

    OMP_NUM_THREADS=1 python benchmarks/symmetric_contraction_speed.py \\
        --out benchmarks/results/symmetric-contraction
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

IRREPS_IN = "0e+1o+2e+3o"
IRREPS_OUT = "0e+1o"


def with_channels(irreps: str, channels: int) -> str:
    return "+".join(f"{channels}x{ir}" for ir in irreps.split("+"))


def timed(fn, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure(channels: int, args, backends: list[str]) -> dict:
    from irrepnet.nn import SymmetricContraction, copy_contraction_weights

    irreps_in, irreps_out = with_channels(IRREPS_IN, channels), with_channels(IRREPS_OUT, channels)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.nodes, channels * 16, generator=g)
    species = torch.randint(0, args.elements, (args.nodes,), generator=g)
    attrs = torch.nn.functional.one_hot(species, args.elements).float()
    grad_out = torch.randn(args.nodes, channels * 4, generator=g)
    modules, rows = {}, {}
    for backend in backends:
        start = time.perf_counter()
        torch.manual_seed(0)
        modules[backend] = SymmetricContraction(irreps_in, irreps_out, args.correlation, args.elements, backend=backend)
        build = time.perf_counter() - start
        if backend != "e3nn" and "e3nn" in modules:
            copy_contraction_weights(modules["e3nn"], modules[backend])
        rows[backend] = {"build_s": build}
    outputs = {}
    for backend, sc in modules.items():
        with torch.no_grad():
            outputs[backend] = sc(x, attrs)

        def forward(sc=sc):
            with torch.no_grad():
                sc(x, attrs)

        def forward_backward(sc=sc):
            xg = x.detach().requires_grad_(True)
            sc.zero_grad(set_to_none=True)
            (sc(xg, attrs) * grad_out).sum().backward()

        fwd = timed(forward, args.warmup, args.repeats)
        fb = timed(forward_backward, args.warmup, args.repeats)
        rows[backend].update(
            forward_s=statistics.median(fwd), forward_all=fwd, fwd_bwd_s=statistics.median(fb), fwd_bwd_all=fb
        )
        print(f"  channels {channels} {backend}: {rows[backend]}", flush=True)
    result = {"channels": channels, "irreps_in": irreps_in, "irreps_out": irreps_out, "backends": rows}
    if "e3nn" in outputs and "cueq" in outputs:
        ref = outputs["e3nn"]
        result["max_rel_diff"] = float((outputs["cueq"] - ref).abs().max() / ref.abs().max())
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| channels | backend | build (s) | forward (ms) | forward+backward (ms) | cueq / own forward | cueq / own fwd+bwd |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in results:
        rows = res["backends"]
        for backend, row in rows.items():
            ratio_f = ratio_b = ""
            if backend == "cueq" and "e3nn" in rows:
                ratio_f = f"{row['forward_s'] / rows['e3nn']['forward_s']:.2f}"
                ratio_b = f"{row['fwd_bwd_s'] / rows['e3nn']['fwd_bwd_s']:.2f}"
            name = "own (e3nn)" if backend == "e3nn" else backend
            lines.append(
                f"| {res['channels']} | {name} | {row['build_s']:.2f} | {1e3 * row['forward_s']:.4g} | "
                f"{1e3 * row['fwd_bwd_s']:.4g} | {ratio_f} | {ratio_b} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[128, 32])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--elements", type=int, default=10)
    parser.add_argument("--correlation", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backends", nargs="+", default=["e3nn", "cueq"], choices=["e3nn", "cueq"])
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for results.md and symmetric_contraction.json (not results.json: that name is for bench-suite runs, which the docs render)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from irrepnet.provenance import provenance

    start = time.perf_counter()
    results = [measure(c, args, args.backends) for c in args.channels]
    info = provenance()
    try:
        import cuequivariance_torch

        info["cuequivariance_torch"] = cuequivariance_torch.__version__
    except ImportError:
        info["cuequivariance_torch"] = None
    info["command"] = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(a) for a in sys.argv)
    info["wall_s"] = round(time.perf_counter() - start, 1)
    text = table(results)
    print(text)
    for res in results:
        if "max_rel_diff" in res:
            print(
                f"channels {res['channels']}: outputs of the two backends differ by {res['max_rel_diff']:.1e} (relative)"
            )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "symmetric_contraction.json").write_text(
            json.dumps({"provenance": info, "results": results}, indent=1) + "\n"
        )
        # other helpers' uncommitted files share this checkout: name only the ones this measures
        dirty = [f for f in info["dirty_files"] if "symmetric" in f or f.startswith("irrepnet/optional")]
        diffs = "; ".join(f"channels {r['channels']}: {r['max_rel_diff']:.1e}" for r in results if "max_rel_diff" in r)
        md = [
            "# Symmetric contraction: own backend vs cuEquivariance, CPU",
            "",
            f"`{IRREPS_IN} -> {IRREPS_OUT}` (times channels), correlation {args.correlation}, "
            f"{args.elements} elements, {args.nodes} nodes, {args.threads} thread(s); medians of "
            f"{args.repeats} calls after {args.warmup} warm-up. Forward under `no_grad`; "
            "forward+backward into `x` and the weights. cuEquivariance: its PyTorch fallback (`naive`).",
            "",
            text,
            "",
            f"Largest output difference of the two backends on the mapped weights (relative): {diffs}.",
            "",
            f"- machine: {info['machine']} (load average {info.get('load_average')} at the end: other jobs "
            "shared the cores, so absolute times are noisy; both backends ran in the same process, in turn)",
            f"- torch {info['torch']}, e3nn {info['e3nn']}, cuequivariance-torch {info['cuequivariance_torch']}, "
            f"python {info['python']}",
            f"- commit {info['commit']}"
            + (f" (uncommitted changes to: {', '.join(dirty)})" if dirty else " (the code measured was committed)"),
            f"- command: `{info['command']}`",
            f"- wall time: {info['wall_s']} s, {info['date']}",
            "",
        ]
        (args.out / "results.md").write_text("\n".join(md))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
