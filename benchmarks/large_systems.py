"""Large systems: forward+backward time and peak memory of the models against the number of particles.

One 3-D system of ``N`` particles at fixed density (uniform random points in a cube
sized so that each has ``--neighbors`` neighbours on average within the cutoff ``r``,
``k = rho 4/3 pi r^3``), with small random velocities (history 2). Every model builds
its radius graph at ``r`` inside its forward, so graph construction is timed too.
Per model and ``N``, a fresh process (so that peak memory is its own) builds the model
(``egnn``: ``graph = "radius"``; ``tfn`` and ``se3-transformer``: radius graph and
``edge_chunk`` edges per chunk under activation checkpointing), warms up on a small
system, makes one untimed pass of ``sum(displacement^2)`` forward and backward at the
full size (reported as the *cold* time), then times ``--repeats`` more and reports
their median. Memory is the process's peak resident set size (``ru_maxrss``) and, as
*working memory*, that peak minus the resident size before the first full-size pass
(the interpreter, libraries, model and inputs).

The allocator matters more than the models here: glibc returns every freed block
above 32 MB to the system, so each large tensor of every pass is page-faulted in anew,
and those passes run 2-4x slower and grow faster than N (egnn: 0.21 s, 3.5 s, 65 s at
N = 1e3, 1e4, 1e5 in a first run of this script). Keeping freed memory in glibc
(``MALLOC_MMAP_MAX_=0``) fixes the time but fragments: egnn at N = 1e5 peaked at 20.8 GB
against 10.6 GB, and tfn ran out of the machine's 24 GB. The children therefore run
under mimalloc with purging off (``--allocator mimalloc``, the default when the
``cmeel-mimalloc`` package is installed: ``pip install cmeel-mimalloc``), PyTorch's CPU
advice to use a caching allocator; ``--allocator system`` keeps glibc's defaults.

The table gives the log-log slope between consecutive sizes,
``log(t2 / t1) / log(N2 / N1)``: 1 is linear in ``N`` (and in the edge count, which is
``k N``). Usage::

    python benchmarks/large_systems.py --sizes 1000 10000 100000 --out benchmarks/results/large_systems
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODELS = ("egnn", "tfn", "se3-transformer")
ALLOCATORS = ("mimalloc", "system")


def box_side(n: int, neighbors: float, r: float) -> float:
    """Side of the cube holding ``n`` points at the density that gives ``neighbors`` within ``r``."""
    return (n / (neighbors / (4.0 / 3.0 * math.pi * r**3))) ** (1.0 / 3.0)


def model_config(name: str, r: float, neighbors: float, edge_chunk: int) -> dict:
    if name == "egnn":
        return {"graph": "radius", "radius": r}
    if name == "tfn":
        return {"graph": "radius", "r_max": r, "avg_num_neighbors": neighbors, "edge_chunk": edge_chunk}
    if name == "se3-transformer":
        return {"graph": "radius", "radius": r, "edge_chunk": edge_chunk}
    raise ValueError(f"no large-system configuration for {name!r}; choose from {MODELS}")


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(name: str, n: int, args) -> dict:
    """One model at one size, in this process: time and memory (printed as one JSON line)."""
    import torch

    from irrepnet import keys as K
    from irrepnet.graph import radius_graph
    from irrepnet.interface import TaskSpec
    from irrepnet.registry import build_model
    from irrepnet.tasks import task_spec

    torch.set_num_threads(args.threads)
    base = task_spec("twelve_body", history=2)
    spec = TaskSpec(base.name, base.inputs, base.target, num_nodes=None, extras=base.extras)
    torch.manual_seed(0)
    model = build_model(name, spec, model_config(name, args.radius, args.neighbors, args.edge_chunk))

    def system(size: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        pos = torch.rand(size, 3, generator=g) * box_side(size, args.neighbors, args.radius)
        hist = 0.01 * torch.randn(size, 6, generator=g)
        return {
            K.POS: pos,
            K.VEL: hist[:, :3].clone(),
            K.VEL_HISTORY: hist,
            K.NODE_INDEX: torch.arange(size),
            K.BATCH: torch.zeros(size, dtype=torch.long),
            K.NUM_NODES: torch.tensor([size]),
        }

    def step(data):
        model.zero_grad(set_to_none=True)
        model(data)[K.DISPLACEMENT].pow(2).sum().backward()

    step(system(min(n, 500), 1))  # warm-up: e3nn's code paths, thread pools
    data = system(n, 0)
    edges = int(radius_graph(data[K.POS], args.radius).shape[1])
    before = _rss_kb()
    t0 = time.perf_counter()
    step(data)  # the first full-size pass: memory is faulted in
    cold = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step(data)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    return {
        "model": name,
        "n": n,
        "edges": edges,
        "time_s": statistics.median(times),
        "times_s": times,
        "cold_time_s": cold,
        "allocator": os.environ.get("LD_PRELOAD") or "system",
        "peak_rss_mb": peak / 1024,
        "rss_before_mb": before / 1024,
        "working_mb": (peak - before) / 1024,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def mimalloc_library():
    """The path of mimalloc's shared library from the ``cmeel-mimalloc`` package, or ``None``."""
    import glob
    import sysconfig

    found = glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "cmeel.prefix", "lib", "libmimalloc.so"))
    return found[0] if found else None


def run_child(name: str, n: int, args) -> dict:
    """One model at one size in a fresh process (its own peak memory) under the chosen allocator."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        name,
        str(n),
        "--threads",
        str(args.threads),
        "--repeats",
        str(args.repeats),
        "--neighbors",
        str(args.neighbors),
        "--radius",
        str(args.radius),
        "--edge-chunk",
        str(args.edge_chunk),
    ]
    env = dict(os.environ)
    if args.allocator == "mimalloc":
        env.update(LD_PRELOAD=args.mimalloc, MIMALLOC_PURGE_DELAY="-1")  # keep freed memory for reuse
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    if res.returncode != 0:
        raise RuntimeError(
            f"{name} at N = {n} failed (exit {res.returncode}; -9 is usually the out-of-memory "
            f"killer):\n{res.stderr[-2000:]}"
        )
    return json.loads(res.stdout.strip().splitlines()[-1])


def slope(a: dict, b: dict, key: str) -> float:
    return math.log(b[key] / a[key]) / math.log(b["n"] / a["n"])


def markdown(rows: list, prov: dict, args) -> str:
    lines = [
        f"# Large systems: forward+backward against N ({args.neighbors:g} neighbours within r = {args.radius:g})",
        "",
        "| model | N | edges | time s | slope | cold s | peak RSS MB | working MB | slope |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(rows):
        prev = rows[i - 1] if i and rows[i - 1]["model"] == r["model"] else None
        st = f"{slope(prev, r, 'time_s'):.2f}" if prev else "–"
        sm = f"{slope(prev, r, 'working_mb'):.2f}" if prev and prev["working_mb"] > 0 and r["working_mb"] > 0 else "–"
        lines.append(
            f"| {r['model']} | {r['n']:,} | {r['edges']:,} | {r['time_s']:.3g} | {st} | "
            f"{r['cold_time_s']:.3g} | {r['peak_rss_mb']:.0f} | {r['working_mb']:.0f} | {sm} |"
        )
    malloc = "glibc's malloc" if args.allocator == "system" else "mimalloc keeping freed memory"
    lines += [
        "",
        f"Median of {args.repeats} timed passes after a full-size one (cold), {args.threads} torch "
        f"thread(s), {malloc}; working memory is the peak RSS minus the resident size before the "
        f"full-size passes; slopes are log-log between consecutive sizes; "
        f"tfn and se3-transformer take edges in chunks of {args.edge_chunk:,}. Commit {prov.get('commit')}"
        f"{' (dirty)' if prov.get('dirty') else ''}, {prov.get('machine')}, {prov.get('date')}.",
    ]
    return "\n".join(lines) + "\n"


def plot(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        axes[0].loglog([r["n"] for r in mine], [r["time_s"] for r in mine], "o-", label=name)
        axes[1].loglog([r["n"] for r in mine], [max(r["working_mb"], 1e-3) for r in mine], "o-", label=name)
    for ax, what in zip(axes, ("forward+backward s", "working memory MB")):
        ns = sorted({r["n"] for r in rows})
        ax.set_xlabel("particles N")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
        ref = ax.get_lines()[0].get_ydata()[0] if ax.get_lines() else 1.0
        ax.loglog(ns, [ref * n / ns[0] for n in ns], "k:", label="slope 1")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--neighbors", type=float, default=16.0, help="mean neighbours within the cutoff (16)")
    p.add_argument("--radius", type=float, default=3.5, help="graph cutoff r (3.5, the twelve_body models')")
    p.add_argument("--edge-chunk", type=int, default=65536, help="edges per chunk for tfn and se3-transformer")
    p.add_argument("--repeats", type=int, default=1, help="timed passes per case (median)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per case")
    p.add_argument(
        "--allocator",
        choices=ALLOCATORS,
        default=None,
        help="mimalloc (default when cmeel-mimalloc is installed) or glibc's system malloc",
    )
    p.add_argument("--out", help="folder for large_systems.md/.json/.png (refused if the json exists)")
    p.add_argument("--child", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args)))
        return 0
    args.mimalloc = mimalloc_library()
    if args.allocator is None:
        args.allocator = "mimalloc" if args.mimalloc else "system"
    if args.allocator == "mimalloc" and not args.mimalloc:
        p.error("--allocator mimalloc needs the cmeel-mimalloc package: pip install cmeel-mimalloc")
    from irrepnet.provenance import provenance

    out = Path(args.out) if args.out else None
    if out is not None and (out / "large_systems.json").exists():
        print(f"{out / 'large_systems.json'} exists; choose another --out or remove it", file=sys.stderr)
        return 2
    prov = provenance()  # the code that runs is the code checked out now
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model_config(name, args.radius, args.neighbors, args.edge_chunk)  # unknown names fail before any run
        for n in sorted(args.sizes):
            row = run_child(name, n, args)
            rows.append(row)
            print(
                f"{name:>16} N={n:>7,} edges={row['edges']:>9,} {row['time_s']:8.3g} s  peak {row['peak_rss_mb']:7.0f} MB"
                f"  working {row['working_mb']:7.0f} MB",
                flush=True,
            )
            if out is not None:  # partial results survive a run that is stopped
                out.mkdir(parents=True, exist_ok=True)
                (out / "large_systems.partial.json").write_text(
                    json.dumps({"provenance": prov, "rows": rows}, indent=2)
                )
    text = markdown(rows, prov, args)
    print(text)
    if out is not None:
        (out / "large_systems.md").write_text(text)
        (out / "large_systems.json").write_text(
            json.dumps({"provenance": prov, "args": vars(args), "rows": rows}, indent=2)
        )
        (out / "large_systems.partial.json").unlink(missing_ok=True)
        plot(rows, out / "large_systems.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
