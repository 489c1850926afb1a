"""The mace-torch side of ``benchmarks/mace_vs_mace_torch.py``; runs in the other interpreter.

mace-torch pins e3nn 0.4.4 and irrepnet needs e3nn 0.6, so the reference implementation
runs in a virtual environment of its own and this file is all that crosses over: it
imports torch, numpy and mace (with the e3nn that mace brings), never irrepnet. It reads
the batch that the driver wrote (``.npz``: positions, atomic numbers, graph sizes,
energies, forces, ``edge_index`` and ``shifts``) and the model options (JSON), builds
``mace.modules.MACE`` with them, and prints one line ``MACE_TORCH_WORKER_JSON {...}``:
its parameter count (and per block) and the versions of torch, e3nn and mace-torch. With
``--serve`` it then answers the driver's commands on stdin, one result line each:
``inference`` (energy and forces) and ``train`` (energy and force loss, backward, Adam
step) run one call and answer its time; ``profile N`` answers the top operators of ``N``
training steps.

Run by the driver as ``PYTHON _mace_torch_worker.py --data batch.npz --config
config.json [--serve --threads 1 --seed 0]``, with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in the environment (e3nn 0.4.4 loads its constants
with ``torch.load``, which refuses them under torch's ``weights_only`` default since 2.6).
``--probe`` only imports mace and prints the versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

MARKER = "MACE_TORCH_WORKER_JSON"


def emit(payload: dict) -> None:
    """Print ``payload`` as the one result line the driver parses (after anything mace printed)."""
    sys.stdout.flush()
    print(f"{MARKER} {json.dumps(payload)}", flush=True)


def versions() -> dict:
    """torch, e3nn and mace-torch versions of this interpreter, as installed."""
    from importlib import metadata

    import torch

    out = {"python": platform.python_version(), "executable": sys.executable, "torch": torch.__version__}
    for name, dist in (("e3nn", "e3nn"), ("mace", "mace-torch"), ("cuequivariance", "cuequivariance")):
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def probe() -> dict:
    """Import what the benchmark needs; ``{"error": ...}`` (one line) when that fails."""
    try:
        import mace.modules  # noqa: F401  (the import that needs e3nn and torch to agree)
    except Exception as exc:  # any failure here is reported to the driver, which explains it
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return {"versions": versions()}


def block_of(name: str) -> str:
    """The part of MACE a parameter belongs to, in the driver's common names."""
    if name.startswith("node_embedding"):
        return "embedding"
    if name.startswith("readouts"):
        return "readout"
    if name.startswith("products"):
        return "product basis" if ".symmetric_contractions." in name else "message linear"
    if name.startswith("interactions"):
        part = name.split(".")[2]
        return {
            "conv_tp_weights": "radial MLP",
            "linear_up": "linear up",
            "linear": "linear out",
            "skip_tp": "skip",
        }.get(part, part)
    return name.split(".")[0]


def build(config: dict, num_elements: int):
    """``mace.modules.MACE`` with the driver's options (every layer residual, zero atomic energies).

    ``reduced_cg`` is mace-torch's ``use_reduced_cg``: the product basis in cuequivariance's
    reduced symmetric basis (mace-torch's default where cuequivariance is installed; without it,
    mace-torch falls back to its original basis, which has more weights per element).
    """
    import numpy as np
    import torch
    from e3nn import o3
    from mace import modules

    if config["reduced_cg"]:
        from mace.tools import cg

        if not cg.CUET_AVAILABLE:  # mace would silently fall back to its original, larger basis
            raise RuntimeError(
                "the reduced product basis (mace-torch's use_reduced_cg, its default) needs cuequivariance "
                "in this venv: pip install cuequivariance==0.13.0 cuequivariance-torch==0.13.0"
            )
    classes = {
        "residual": modules.RealAgnosticResidualInteractionBlock,
        "plain": modules.RealAgnosticInteractionBlock,
    }
    C = config["channels"]
    hidden = " + ".join(f"{C}x{ell}{'e' if ell % 2 == 0 else 'o'}" for ell in range(config["hidden_lmax"] + 1))
    return modules.MACE(
        r_max=config["cutoff"],
        num_bessel=config["num_bessel"],
        num_polynomial_cutoff=config["num_polynomial_cutoff"],
        max_ell=config["max_ell"],
        interaction_cls=classes["residual"],
        interaction_cls_first=classes[config["first_interaction"]],
        num_interactions=config["num_interactions"],
        num_elements=num_elements,
        hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps(f"{config['readout_mlp']}x0e"),
        atomic_energies=np.zeros(num_elements),
        avg_num_neighbors=config["avg_num_neighbors"],
        atomic_numbers=config["atomic_numbers"],
        correlation=config["correlation"],
        gate=torch.nn.functional.silu,
        radial_MLP=[config["radial_neurons"]] * config["radial_layers"],
        use_reduced_cg=config["reduced_cg"],
    )


def load_batch(path: str, atomic_numbers: list[int], dtype) -> dict:
    """The driver's ``.npz`` as the dict ``MACE.forward`` reads."""
    import numpy as np
    import torch

    arrays = np.load(path)
    z = arrays["atomic_numbers"]
    unknown = sorted(set(z.tolist()) - set(atomic_numbers))
    if unknown:
        raise ValueError(f"atomic numbers {unknown} are not among the model's {atomic_numbers}")
    index = torch.as_tensor(np.searchsorted(np.asarray(atomic_numbers), z))
    counts = torch.as_tensor(arrays["num_nodes"]).long()
    graphs = counts.numel()
    return {
        "positions": torch.as_tensor(arrays["positions"]).to(dtype),
        "node_attrs": torch.nn.functional.one_hot(index, len(atomic_numbers)).to(dtype),
        "edge_index": torch.as_tensor(arrays["edge_index"]).long(),
        "shifts": torch.as_tensor(arrays["shifts"]).to(dtype),
        "unit_shifts": torch.as_tensor(arrays["shifts"]).to(dtype),
        "batch": torch.repeat_interleave(torch.arange(graphs), counts),
        "ptr": torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)]),
        "cell": torch.zeros(3 * graphs, 3, dtype=dtype),
        "energy": torch.as_tensor(arrays["energy"]).to(dtype).reshape(-1),
        "forces": torch.as_tensor(arrays["forces"]).to(dtype),
    }


def serve(model, batch: dict, commands, profile_top: int = 15) -> None:
    """Answer the driver's commands, one per line, until ``quit`` or the end of input.

    ``inference`` and ``train`` run one call and answer its wall time in seconds
    (``{"seconds": t}``); ``profile N`` runs ``N`` training steps under torch.profiler and
    answers the top operators. The driver alternates one call here with one of its own, so
    that a load on the machine hits both sides alike.
    """
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def fresh():  # a new positions leaf per call, as a data loader gives one per batch
        return {**batch, "positions": batch["positions"].clone()}

    def infer():
        out = model(fresh(), training=False, compute_force=True)
        return float(out["energy"].sum()) + float(out["forces"].sum())  # read the values, as a caller does

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        out = model(fresh(), training=True, compute_force=True)
        loss = (out["energy"] - batch["energy"]).pow(2).mean() + (out["forces"] - batch["forces"]).pow(2).mean()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    for line in commands:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            return
        if words[0] in ("inference", "train"):
            model.train(words[0] == "train")
            step = train_step if words[0] == "train" else infer
            start = time.perf_counter()
            step()
            emit({"seconds": time.perf_counter() - start})
        elif words[0] == "profile" and len(words) == 2 and words[1].isdigit():
            model.train()
            emit({"profile": profile(train_step, int(words[1]), profile_top)})
        else:
            emit({"error": f"unknown command {line.strip()!r}; expected inference, train, profile N or quit"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help="only import mace and print the versions")
    parser.add_argument("--data", help="the driver's batch (.npz)")
    parser.add_argument("--config", help="the driver's model options (.json)")
    parser.add_argument("--serve", action="store_true", help="after the count, answer timing commands on stdin")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.probe:
        emit(probe())
        return 0
    if not args.data or not args.config:
        parser.error("--data and --config are required (or --probe)")

    import torch
    from mace.tools import cg

    torch.set_num_threads(args.threads)
    with open(args.config) as f:
        config = json.load(f)
    dtype = {"float32": torch.float32, "float64": torch.float64}[config["dtype"]]
    torch.set_default_dtype(dtype)  # mace builds its buffers (r_max, Bessel frequencies) in the default dtype
    torch.manual_seed(args.seed)
    model = build(config, len(config["atomic_numbers"]))
    blocks: dict[str, int] = {}
    for name, p in model.named_parameters():
        blocks[block_of(name)] = blocks.get(block_of(name), 0) + p.numel()
    batch = load_batch(args.data, config["atomic_numbers"], dtype)
    emit(
        {
            "versions": versions(),
            "reduced_cg": bool(config["reduced_cg"] and cg.CUET_AVAILABLE),
            "parameters": sum(p.numel() for p in model.parameters()),
            "blocks": blocks,
            "threads": torch.get_num_threads(),
            "num_nodes": int(batch["positions"].shape[0]),
            "num_edges": int(batch["edge_index"].shape[1]),
        }
    )
    if args.serve:
        serve(model, batch, sys.stdin)
    return 0


def profile(step, steps: int, top: int) -> list[dict]:
    """Top ops of ``steps`` training steps by self CPU time (torch.profiler), ms per step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3 / steps, "calls": e.count / steps} for e in rows]


if __name__ == "__main__":
    sys.exit(main())
