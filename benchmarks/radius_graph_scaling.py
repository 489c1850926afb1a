"""How radius-graph construction scales with the number of points, per backend.

Uniform random points fill a cube whose side is set by the density that gives each
point ``--neighbors`` neighbours on average (``k = rho 4/3 pi r^3`` with ``r = 1``),
so doubling ``N`` doubles the volume at fixed density: a linear method doubles its
time. Each backend is timed over ``--repeats`` runs after one warm-up; the table
reports medians, the ratio t(2N)/t(N) between consecutive sizes, and the ratio to
the pure-PyTorch backend in the same run.

Run: ``python benchmarks/radius_graph_scaling.py [--sizes 100000 200000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch

from irrepnet.graph import available_backends, radius_graph


def box_side(n: int, neighbors: float, r: float = 1.0) -> float:
    """Side of the cube holding ``n`` points at the density giving ``neighbors`` within ``r``."""
    density = neighbors / (4.0 / 3.0 * math.pi * r**3)
    return (n / density) ** (1.0 / 3.0)


def time_backend(pos: torch.Tensor, backend: str, repeats: int):
    radius_graph(pos, 1.0, backend=backend)  # warm-up: imports, allocator, caches
    times, edges = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        edges = radius_graph(pos, 1.0, backend=backend).shape[1]
        times.append(time.perf_counter() - start)
    return statistics.median(times), edges


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000], help="numbers of points")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (median reported)")
    parser.add_argument("--backends", nargs="+", default=None, help="default: every installed backend")
    parser.add_argument("--neighbors", type=float, default=30.0, help="mean neighbours per point")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    backends = args.backends or list(available_backends()["radius"])
    generator = torch.Generator().manual_seed(args.seed)
    points = {n: torch.rand(n, 3, generator=generator) * box_side(n, args.neighbors) for n in args.sizes}

    # other processes make timings of many small parallel ops (the torch backend)
    # swing widely: the load average says how quiet the machine was
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = {}
    for backend in backends:
        for n in args.sizes:
            results[backend, n] = time_backend(points[n], backend, args.repeats)

    print(
        f"radius graph, r = 1, {args.neighbors:g} neighbours expected, float32, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}, load average before {load:.2f}"
    )
    header = (
        f"{'backend':<14}{'N':>9}{'edges':>12}{'mean nbrs':>11}{'median s':>10}{'t(N)/t(prev N)':>16}{'vs torch':>10}"
    )
    print(header)
    print("-" * len(header))
    for backend in backends:
        previous = None
        for n in args.sizes:
            seconds, edges = results[backend, n]
            ratio = f"{seconds / previous:.2f}" if previous else "-"
            torch_time = results.get(("torch", n), (None,))[0]
            versus = f"{seconds / torch_time:.2f}" if torch_time else "-"
            print(f"{backend:<14}{n:>9}{edges:>12}{edges / n:>11.2f}{seconds:>10.3f}{ratio:>16}{versus:>10}")
            previous = seconds


if __name__ == "__main__":
    main()
