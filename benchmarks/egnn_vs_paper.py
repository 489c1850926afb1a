"""Step time of irrepnet's ``egnn-vel`` against the EGNN paper's own ``EGNN_vel``.

The paper: V. G. Satorras, E. Hoogeboom, M. Welling, "E(n) Equivariant Graph Neural
Networks", ICML 2021 (https://arxiv.org/abs/2102.09844); its code,
https://github.com/vgsatorras/egnn, is not shipped with irrepnet: clone it and pass its
path (``--egnn-repo`` or the environment variable ``IRREPNET_EGNN_REPO``). Its
``n_body_system/model.py`` (class ``EGNN_vel``, which imports ``models.gcl``) is
imported from there as is.

What is measured: both models at the paper's N-body size (hidden 64, 4 layers,
``recurrent=True`` i.e. residual features, SiLU; 134,020 parameters each, checked before
timing) on the same batch: the first ``--batch-size`` (default 100, the paper's) graphs
of irrepnet's ``nbody`` task, 5 charged particles each, fully connected, float32, CPU.

- irrepnet: ``model(batch)["displacement"]``, MSE against ``target_disp``; the model
  builds its full graph, ``q_i q_j`` and ``|x_i - x_j|^2`` itself, inside the forward
  (``make_steps`` of ``benchmarks/speed.py``; Adam, lr 1e-3).
- paper: what ``train()`` of its ``main_nbody.py`` does per batch for ``egnn_vel``,
  inside the timed step: ``nodes = |v|``, ``loc_dist = |x_row - x_col|^2``,
  ``edge_attr = cat([q_i q_j, loc_dist])``, ``loc_pred = model(nodes, loc, edges, vel,
  edge_attr)``, MSE against the positions at the target frame (``pos + target_disp``),
  Adam with the script's lr 5e-4 and weight decay 1e-12. What the paper's data loader
  provides is built once, outside the timing: the edge list (``NBodyDataset.get_edges``'s
  pattern: all ordered pairs ``i != j`` of each graph, ``i``-major, offset by 5 per
  graph; ``edges[0]`` is the receiver) and the per-edge charge product ``q_i q_j``
  (``edges_*.npy`` of its dataset). The model is given a fresh copy of the positions
  each step because ``E_GCL`` updates its coordinate argument in place (the paper's
  loader hands it a new tensor every batch).

A training step is forward + loss + backward + ``Adam.step``; inference is the same
forward (with the paper's per-step input preparation) under ``torch.no_grad`` in eval
mode. After ``--warmup`` untimed runs, ``--repeats`` runs of each model are timed in
turn (one of each, interleaved, so machine load hits both alike; ``time_interleaved``
of ``benchmarks/speed.py``) and the medians are reported with the ratio
paper / irrepnet (> 1: irrepnet is faster). Before timing, the paper's weights are
copied into a copy of the irrepnet model and the two displacements compared, to show
that both compute the same function on the same inputs.

``--compile`` also times ``irrepnet.compile.compile_model(egnn-vel)`` when that
function exists.

Run::

    git clone https://github.com/vgsatorras/egnn /path/to/egnn
    python benchmarks/egnn_vs_paper.py --egnn-repo /path/to/egnn [--repeats 20] [--warmup 5]
        [--threads 1] [--batch-size 100] [--json OUT] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import torch

from irrepnet import keys as K
from irrepnet.graph import full_graph
from irrepnet.provenance import git_commit, provenance
from irrepnet.registry import build_model
from irrepnet.tasks import load_task

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ as a scripts dir, also when loaded by path
from speed import fmt_ms, fmt_ratio, make_steps, time_interleaved

ENV_VAR = "IRREPNET_EGNN_REPO"
PAPER_MODEL = Path("n_body_system") / "model.py"
HINT = (
    f"The EGNN paper's code is not part of irrepnet. Get it with\n"
    f"    git clone https://github.com/vgsatorras/egnn\n"
    f"and pass its path: python benchmarks/egnn_vs_paper.py --egnn-repo PATH "
    f"(or set {ENV_VAR}=PATH)."
)
# the paper's N-body EGNN_vel (main_nbody.py: --nf 64 --n_layers 4, recurrent=True)
HIDDEN, LAYERS = 64, 4
PAPER_LR, PAPER_WEIGHT_DECAY = 5e-4, 1e-12


class SizeMismatch(RuntimeError):
    """The two models are not the same size; timing them would compare different things."""


def load_paper_class(repo: Path):
    """``EGNN_vel`` from ``repo/n_body_system/model.py``, importing ``models.gcl`` from ``repo``."""
    path = repo / PAPER_MODEL
    root = str(repo.resolve())
    for name in list(sys.modules):  # a ``models`` package imported from elsewhere would shadow repo's
        if name == "models" or name.startswith("models."):
            mod_file = getattr(sys.modules[name], "__file__", None) or ""
            if not os.path.abspath(mod_file).startswith(root + os.sep):
                del sys.modules[name]
    sys.path.insert(0, root)
    try:
        spec = importlib.util.spec_from_file_location("egnn_paper_nbody_model", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(root)
    return module.EGNN_vel


def paper_edges(batch_size: int, n_nodes: int):
    """The edge list of the paper's ``NBodyDataset.get_edges``: ``[rows, cols]``, global indices.

    Per graph all ordered pairs ``(i, j)``, ``i != j``, ``i``-major, offset by
    ``n_nodes`` per graph. Aggregation is over ``rows`` (the receiver).
    """
    # irrepnet's full graph has the same order (by receiver, then sender): the paper's
    # rows are its receivers (row 1), its cols the senders (row 0)
    sender, receiver = full_graph(torch.full((batch_size,), n_nodes))
    return [receiver, sender]


def make_paper_steps(model: torch.nn.Module, batch: dict[str, torch.Tensor], n_nodes: int):
    """``(train_step, infer_step, predict)`` of the paper's model, as its ``train()`` feeds ``egnn_vel``."""
    num_graphs = batch[K.NUM_NODES].numel()
    edges = paper_edges(num_graphs, n_nodes)
    rows, cols = edges
    loc, vel = batch[K.POS], batch[K.VEL]
    charge_product = batch[K.CHARGE][rows] * batch[K.CHARGE][cols]  # the dataset's edge_attr [E, 1]
    loc_end = batch[K.TARGET_POS]  # pos + target_disp
    opt = torch.optim.Adam(model.parameters(), lr=PAPER_LR, weight_decay=PAPER_WEIGHT_DECAY)
    loss_mse = torch.nn.MSELoss()

    def predict():
        # main_nbody.py train(), model == 'egnn_vel'
        nodes = torch.sqrt(torch.sum(vel**2, dim=1)).unsqueeze(1).detach()
        loc_dist = torch.sum((loc[rows] - loc[cols]) ** 2, 1).unsqueeze(1)
        edge_attr = torch.cat([charge_product, loc_dist], 1).detach()
        # a fresh tensor, as from the paper's loader: E_GCL adds to its coordinates in place
        return model(nodes, loc.clone(), edges, vel, edge_attr)

    def train_step():
        model.train()
        opt.zero_grad()
        loss = loss_mse(predict(), loc_end)
        loss.backward()
        opt.step()

    def infer_step():
        model.eval()
        with torch.no_grad():
            predict()

    return train_step, infer_step, predict


def same_function_check(
    paper: torch.nn.Module, ours: torch.nn.Module, paper_predict, batch: dict[str, torch.Tensor]
) -> dict[str, object]:
    """Copy ``paper``'s parameters into a copy of ``ours`` (in order) and compare the displacements."""
    ours = copy.deepcopy(ours)
    p_src, p_dst = list(paper.parameters()), list(ours.parameters())
    if [p.shape for p in p_src] != [p.shape for p in p_dst]:
        return {"checked": False, "why": "the parameter lists differ in order or shape; weights not transferable"}
    with torch.no_grad():
        for src, dst in zip(p_src, p_dst):
            dst.copy_(src)
        paper.eval(), ours.eval()
        want = paper_predict() - batch[K.POS]
        got = ours(batch)[K.DISPLACEMENT]
    scale = float(want.abs().max())
    diff = float((got - want).abs().max())
    return {
        "checked": True,
        "max_abs_diff": diff,
        "max_abs_displacement": scale,
        "same": diff <= 1e-5 * max(scale, 1.0),
    }


def try_compile(model: torch.nn.Module):
    """``(compiled model, None)`` or ``(None, why not)``."""
    try:
        from irrepnet.compile import compile_model
    except Exception as exc:  # ImportError, or a half-written module
        return None, f"irrepnet.compile.compile_model unavailable ({type(exc).__name__}: {exc})"
    try:
        return compile_model(model), None
    except Exception as exc:
        return None, f"compile_model failed ({type(exc).__name__}: {exc})"


def run(args, repo: Path) -> dict:
    torch.set_num_threads(args.threads)
    started = provenance()  # the code that runs is the code checked out now, not at the end
    EGNN_vel = load_paper_class(repo)

    task = load_task("nbody", dtype=torch.float32)
    n_nodes = task.spec.num_nodes
    batch = task.train.batch(range(args.batch_size))
    torch.manual_seed(args.seed)
    ours = build_model("egnn-vel", task.spec)
    torch.manual_seed(args.seed)
    paper = EGNN_vel(
        in_node_nf=1,
        in_edge_nf=2,
        hidden_nf=HIDDEN,
        device="cpu",
        n_layers=LAYERS,
        recurrent=True,
        norm_diff=False,
        tanh=False,
    )
    counts = {
        "irrepnet": sum(p.numel() for p in ours.parameters()),
        "paper": sum(p.numel() for p in paper.parameters()),
    }
    print(f"parameters: irrepnet egnn-vel {counts['irrepnet']:,}, paper EGNN_vel {counts['paper']:,}")
    if counts["irrepnet"] != counts["paper"]:
        raise SizeMismatch(
            f"parameter counts differ (irrepnet {counts['irrepnet']:,} != paper "
            f"{counts['paper']:,}): the models are not the same size, no timing done"
        )

    paper_train, paper_infer, paper_predict = make_paper_steps(paper, batch, n_nodes)
    check = same_function_check(paper, ours, paper_predict, batch)
    if check["checked"]:
        print(
            f"same function with the paper's weights: max |displacement difference| "
            f"{check['max_abs_diff']:.2e} (max |displacement| {check['max_abs_displacement']:.2e})"
            f"{'' if check['same'] else '  <-- NOT the same function'}"
        )
    else:
        print(f"same-function check skipped: {check['why']}")

    our_train, our_infer = make_steps(ours, batch, task.spec.target)
    train_steps = {"paper": paper_train, "irrepnet": our_train}
    infer_steps = {"paper": paper_infer, "irrepnet": our_infer}
    compiled_note = None
    if args.compile:
        torch.manual_seed(args.seed)
        compiled, compiled_note = try_compile(build_model("egnn-vel", task.spec))
        if compiled is not None:
            c_train, c_infer = make_steps(compiled, batch, task.spec.target)
            try:
                c_infer(), c_train()  # compile here, and fail here, not in the timing loop
            except Exception as exc:
                compiled_note = f"compiled model failed to run ({type(exc).__name__}: {exc})"
            else:
                train_steps["irrepnet (compiled)"], infer_steps["irrepnet (compiled)"] = c_train, c_infer
        if compiled_note:
            print(f"compiled timing unavailable: {compiled_note}")
    for step in (*train_steps.values(), *infer_steps.values()):
        step()  # fail before timing

    t_train = time_interleaved(train_steps, args.warmup, args.repeats)
    t_infer = time_interleaved(infer_steps, args.warmup, args.repeats)
    print(
        f"nbody, batch {args.batch_size} x {n_nodes} nodes fully connected, float32, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} after {args.warmup} warm-up; "
        f"ratio = paper time / time (> 1: faster than the paper)"
    )
    print(f"{'model':<22} {'params':>9} {'train ms':>9} {'ratio':>7} {'infer ms':>9} {'ratio':>7}")
    models = {}
    for name in train_steps:
        tt, ti = t_train[name], t_infer[name]
        models[name] = {
            "parameters": counts["paper" if name == "paper" else "irrepnet"],
            "train_s": tt,
            "infer_s": ti,
            "train_ratio": t_train["paper"] / tt,
            "infer_ratio": t_infer["paper"] / ti,
        }
        print(
            f"{name:<22} {models[name]['parameters']:>9} {fmt_ms(tt)} {fmt_ratio(t_train['paper'], tt)} "
            f"{fmt_ms(ti)} {fmt_ratio(t_infer['paper'], ti)}"
        )
    return {
        "task": "nbody",
        "batch_size": args.batch_size,
        "nodes_per_graph": n_nodes,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "provenance": started,
        "paper_repo": {
            "path": str(repo),
            **git_commit(repo),
            "model_py_sha256": hashlib.sha256((repo / PAPER_MODEL).read_bytes()).hexdigest(),
        },
        "parameters": counts,
        "same_function": check,
        "compiled": (compiled_note or "timed") if args.compile else None,
        "models": models,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--egnn-repo",
        default=os.environ.get(ENV_VAR),
        help=f"checkout of github.com/vgsatorras/egnn (default: ${ENV_VAR})",
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per model (median reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per model first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=100, help="graphs per batch (5 nodes each)")
    parser.add_argument("--json", default=None, help="write the results to this file")
    parser.add_argument(
        "--compile", action="store_true", help="also time irrepnet.compile.compile_model(egnn-vel) when available"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.batch_size < 1 or args.threads < 1:
        parser.error("need --repeats >= 1, --warmup >= 0, --batch-size >= 1 and --threads >= 1")
    if not args.egnn_repo:
        print(HINT)
        return 0
    repo = Path(args.egnn_repo).expanduser()
    if not (repo / PAPER_MODEL).is_file():
        print(
            f"error: {repo / PAPER_MODEL} not found; --egnn-repo must be a checkout of "
            f"https://github.com/vgsatorras/egnn",
            file=sys.stderr,
        )
        return 2
    try:
        result = run(args, repo)
    except SizeMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
