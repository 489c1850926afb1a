r"""irrepnet's ``mace`` against the reference implementation (mace-torch), timed on one batch.

Batatia, Kovács, Simm, Ortner, Csányi, "MACE: Higher Order Equivariant Message Passing
Neural Networks for Fast and Accurate Force Fields", NeurIPS 2022 (arXiv:2206.07697);
the reference is the ``mace-torch`` package (``mace.modules.MACE``). mace-torch pins
e3nn 0.4.4, irrepnet needs e3nn 0.6, so the two cannot share an interpreter: the
reference runs in a virtual environment that **you** make and pass in, and this script
changes nothing there::

    python3 -m venv ~/venv-mace
    ~/venv-mace/bin/pip install torch==2.13.0 mace-torch==0.3.16 \
        cuequivariance==0.13.0 cuequivariance-torch==0.13.0
    python benchmarks/mace_vs_mace_torch.py --python ~/venv-mace/bin/python --out DIR

What it does:

1. checks that ``--python`` is a Python that imports mace (one line saying how to make the
   venv otherwise);
2. builds one batch of the ``molecules`` task (:mod:`irrepnet.data.molecules`: displaced
   G2 molecules of H, C, N, O with EMT energies and forces), its radius graph at
   ``--cutoff`` (:func:`irrepnet.graph.build_graph`) and writes both to a temporary
   ``.npz`` (positions, atomic numbers, graph sizes, energies, forces, ``edge_index`` and
   zero ``shifts``), so that both models see the same atoms and the same edges;
3. builds irrepnet's ``mace`` here and ``mace.modules.MACE`` in the other interpreter
   (``benchmarks/_mace_torch_worker.py``) from the same options: hidden
   ``C x 0e + C x 1o``, spherical harmonics to ``--max-ell``, product basis of
   ``--correlation``, ``--interactions`` layers, ``--num-bessel`` Bessel functions with the
   polynomial envelope of ``p = 5``, radial MLP ``[64, 64, 64]``, last readout MLP
   ``16x0e``, the neighbour sum divided by the batch's mean degree, zero atomic energies, no
   scale or shift, and every layer residual with a per-element skip (mace-torch's
   ``RealAgnosticResidualInteractionBlock`` also in the first layer, its
   ``--interaction_first`` option; irrepnet's ``mace`` has that skip in every layer), and
   mace-torch's product basis in cuequivariance's reduced symmetric basis (its
   ``use_reduced_cg``, on by default where cuequivariance is installed: hence the two
   cuequivariance packages in the venv above), which has as many weights as irrepnet's; its
   original basis (``--original-basis``) has more: at the defaults below 14,592 product-basis
   weights against 5,376, 90,032 parameters in all against 80,816;
4. **refuses** (exit 2, one line naming the blocks whose parameter counts differ and the
   options that size them) when the two parameter counts differ by more than 1 %;
5. times, in each process with ``--threads`` threads, inference (energy and forces) and a
   training step (MSE of the energies plus MSE of the forces, backward, Adam step), one call
   of irrepnet's and one of mace-torch's in turn (the worker stays up and answers each
   request with the time of one call), so that whatever else loads the machine hits both
   alike: ``--warmup`` rounds, then the median, min and max of ``--repeats``; prints the table and
   the ratio irrepnet / mace-torch, and with ``--out DIR`` writes ``mace_vs_mace_torch.json``
   and ``mace_vs_mace_torch.md`` (machine, both sides' torch and e3nn versions, commit,
   command); not ``results.json``, the name of a benchmark suite's results, which the
   documentation renders as one (``docs/generate_results.py``).

Both sides get the graph precomputed (mace-torch's data loader builds it outside the
model; irrepnet's model gets its :meth:`~irrepnet.nn.GraphConstruction.topology` fields
from the same ``edge_index``, checked equal to what it would build), so the timings cover
the model alone. ``--profile N`` adds the top operators of ``N`` training steps on both
sides (``torch.profiler``, self CPU time).

Matching the function, not only the size
----------------------------------------
Could the two models be made to compute the *same* function by mapping mace-torch's
weights onto irrepnet's, across e3nn's change of conventions between 0.4 and 0.5?
Measured here (both e3nn versions, float64): the real spherical harmonics up to
:math:`l = 3` are identical, and ``o3.wigner_3j(l1, l2, l3)`` for all 29 triples with
:math:`l_i \le 3` agree up to an overall sign, which flips for six of them,
``(1,2,2), (2,1,2), (2,2,1), (1,3,3), (3,1,3), (3,3,1)``. The two-body parts (the linear layers and the radial MLP, e3nn's
parametrisation on both sides) would map weight by weight, but the atomic basis' tensor
product would not directly: irrepnet's :class:`~irrepnet.nn.tp_conv.EdgeTensorProduct`
groups its paths by ``(l1, l3)``, not in e3nn's instruction order, so the radial MLP's
output columns need a permutation, and a sign for the six triples above. The product basis
is the larger obstacle: mace-torch (with cuequivariance, as here) contracts with
cuequivariance's reduced symmetric basis in its own normalisation, irrepnet's own backend
with :func:`~irrepnet.nn.symmetric_basis.symmetric_coupling_basis`; both span the same
space of symmetric couplings but are different bases of it, so each (element, correlation
order, output irrep) block of weights needs a change of basis fitted between the two
(:func:`~irrepnet.nn.symmetric_contraction.copy_contraction_weights` does that between
irrepnet's two backends, not for mace-torch's normalisation). That was not attempted: it is a
weight converter of its own with its test, across two interpreters, and a timing comparison
needs equal sizes, not equal functions. This script compares cost at equal parameter
count; accuracy is compared by training both (not done here).

Run: ``python benchmarks/mace_vs_mace_torch.py --python PATH [--channels 32 --max-ell 3
--correlation 3 --interactions 2 --cutoff 5.0 --num-bessel 8 --batch 32 --repeats 20
--warmup 5 --threads 1 --dtype float32 --profile 0 --out DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

WORKER = Path(__file__).with_name("_mace_torch_worker.py")
MARKER = "MACE_TORCH_WORKER_JSON"  # the worker's result line starts with it (mace prints other lines)
TOLERANCE = 0.01  # largest relative difference of the parameter counts that is still compared
REFUSED = 2  # exit status when the sizes differ
VENV_HELP = (
    "make a separate venv for it: python3 -m venv ~/venv-mace && ~/venv-mace/bin/pip install "
    "torch==2.13.0 mace-torch==0.3.16 cuequivariance==0.13.0 cuequivariance-torch==0.13.0, then pass --python ~/venv-mace/bin/python (the worker runs it "
    "with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, which e3nn 0.4.4 needs to import under torch >= 2.6)"
)
#: what sizes each block, for the refusal line
BLOCK_OPTIONS = {
    "embedding": "irrepnet's NodeEmbedding reads a constant 0e besides the element one-hot (--channels more weights)",
    "radial basis": "irrepnet trains the Bessel frequencies (--num-bessel weights), mace-torch keeps them fixed",
    "linear up": "--channels / --hidden-lmax",
    "radial MLP": "--radial-neurons / --radial-layers",
    "linear out": "--channels / --max-ell (the atomic basis' tensor-product paths)",
    "skip": "--first-interaction (residual: a per-element skip in every layer, as irrepnet's)",
    "product basis": (
        "--correlation / --max-ell; mace-torch's reduced basis (its default, needs cuequivariance in its venv) "
        "has irrepnet's size, --original-basis does not"
    ),
    "message linear": "--channels / --hidden-lmax",
    "readout": "--readout-mlp",
}


class WorkerError(RuntimeError):
    """The other interpreter cannot run the worker; the message is one line that says why and what to do."""


# --- the other interpreter --------------------------------------------------------------


def worker_env(threads: int) -> dict[str, str]:
    """This process' environment for the worker, without what would make it import this venv's packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(
        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONWARNINGS="ignore",  # e3nn 0.4.4 and TorchScript warn at import; the result line is what counts
    )
    return env


def parse_worker_output(stdout: str) -> dict:
    """The JSON of the worker's last ``MACE_TORCH_WORKER_JSON`` line; :class:`WorkerError` without one."""
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER + " ")]
    if not lines:
        tail = " | ".join(line.strip() for line in stdout.strip().splitlines()[-2:]) or "nothing"
        raise WorkerError(f"the mace-torch worker printed no {MARKER} line (its last output: {tail})")
    try:
        payload = json.loads(lines[-1][len(MARKER) + 1 :])
    except json.JSONDecodeError as exc:
        raise WorkerError(f"the mace-torch worker's {MARKER} line is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise WorkerError(f"the mace-torch worker's {MARKER} line holds a {type(payload).__name__}, not an object")
    return payload


def run_worker(python: str, args: list[str], *, threads: int = 1, worker: Path = WORKER, timeout: float = 600) -> dict:
    """Run ``python worker args`` and return its parsed result; one-line :class:`WorkerError` on failure."""
    try:
        done = subprocess.run(
            [python, str(worker), *args], capture_output=True, text=True, env=worker_env(threads), timeout=timeout
        )
    except OSError as exc:
        raise WorkerError(f"--python {python}: cannot run it ({exc.strerror or exc}); {VENV_HELP}") from None
    except subprocess.TimeoutExpired:
        raise WorkerError(f"the mace-torch worker ran past {timeout:.0f} s; lower --repeats or --batch") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
        raise WorkerError(f"the mace-torch worker failed (exit {done.returncode}): {last.strip()}")
    return parse_worker_output(done.stdout)


def check_python(python: str, worker: Path = WORKER) -> dict:
    """Versions on the mace-torch side; :class:`WorkerError` if ``python`` is no Python or lacks mace."""
    if not Path(python).exists():
        raise WorkerError(f"--python {python}: no such file; {VENV_HELP}")
    token = "irrepnet-python-check"
    try:
        done = subprocess.run(
            [python, "-c", f"import sys; print({token!r}, *sys.version_info[:2])"],
            capture_output=True,
            text=True,
            env=worker_env(1),
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorkerError(f"--python {python} is not a Python interpreter ({exc}); {VENV_HELP}") from None
    words = done.stdout.split()
    if done.returncode != 0 or token not in words:
        raise WorkerError(f"--python {python} is not a Python interpreter (it did not run a -c script); {VENV_HELP}")
    major, minor = (int(w) for w in words[words.index(token) + 1 : words.index(token) + 3])
    if (major, minor) < (3, 8):
        raise WorkerError(f"--python {python} is Python {major}.{minor}; mace-torch needs 3.8 or newer. {VENV_HELP}")
    probe = run_worker(python, ["--probe"], worker=worker, timeout=600)
    if "error" in probe:
        raise WorkerError(f"mace is not importable by {python} ({probe['error']}); {VENV_HELP}")
    return probe["versions"]


# --- the batch and the config ----------------------------------------------------------


def make_batch(n_graphs: int, cutoff: float, dtype: torch.dtype):
    """``(task spec, batch with edges, arrays for the worker)`` of ``n_graphs`` molecules."""
    from ase.data import atomic_numbers  # the molecules task needs ASE anyway

    from irrepnet import keys as K
    from irrepnet.data.molecules import molecules
    from irrepnet.graph import build_graph
    from irrepnet.tasks import task_spec

    data = molecules("train", n_train=n_graphs, use_cache=False, dtype=dtype)
    batch = build_graph(data.batch(), "radius", r=cutoff)
    edge_index = batch[K.EDGE_INDEX]
    z_table = [atomic_numbers[s] for s in data.species]
    kinds = batch[K.SPECIES_ONEHOT].argmax(dim=1).numpy()
    arrays = {
        "positions": batch[K.POS].double().numpy(),
        "atomic_numbers": np.asarray(z_table, dtype=np.int64)[kinds],
        "num_nodes": batch[K.NUM_NODES].numpy(),
        "energy": batch[K.TARGET_ENERGY].double().reshape(-1).numpy(),
        "forces": batch[K.TARGET_FORCES].double().numpy(),
        "edge_index": edge_index.numpy(),
        "shifts": np.zeros((edge_index.shape[1], 3)),  # molecules: no periodic images
    }
    return task_spec("molecules", species=data.species), batch, edge_index, arrays, z_table


def model_options(args, avg_num_neighbors: float, z_table: list[int]) -> dict:
    """The options both sides build from (the worker's ``--config``)."""
    return {
        "channels": args.channels,
        "max_ell": args.max_ell,
        "correlation": args.correlation,
        "num_interactions": args.interactions,
        "hidden_lmax": args.hidden_lmax,
        "cutoff": args.cutoff,
        "num_bessel": args.num_bessel,
        "num_polynomial_cutoff": args.num_polynomial_cutoff,
        "radial_neurons": args.radial_neurons,
        "radial_layers": args.radial_layers,
        "readout_mlp": args.readout_mlp,
        "avg_num_neighbors": avg_num_neighbors,
        "atomic_numbers": z_table,
        "first_interaction": args.first_interaction,
        "reduced_cg": not args.original_basis,
        "dtype": args.dtype,
    }


# --- irrepnet's side -------------------------------------------------------------------


def build_irrepnet(options: dict, spec):
    """irrepnet's ``mace`` (an :class:`~irrepnet.models.energy.EnergyModel`) with ``options``."""
    import irrepnet.models.mace  # noqa: F401  (registers "mace" where irrepnet.models does not import it)
    from irrepnet.registry import build_model

    model = build_model(
        "mace",
        spec,
        channels=options["channels"],
        max_ell=options["max_ell"],
        correlation=options["correlation"],
        num_interactions=options["num_interactions"],
        hidden_lmax=options["hidden_lmax"],
        num_bessel=options["num_bessel"],
        radial_basis="bessel",  # mace-torch's default radial_type, pinned here against a change of irrepnet's
        num_polynomial_cutoff=options["num_polynomial_cutoff"],
        r_max=options["cutoff"],
        graph="radius",
        radial_neurons=options["radial_neurons"],
        radial_layers=options["radial_layers"],
        avg_num_neighbors=options["avg_num_neighbors"],
        readout_mlp=options["readout_mlp"],
    )
    return model.to({"float32": torch.float32, "float64": torch.float64}[options["dtype"]])


#: parameters of irrepnet's MACEInteraction (by attribute) -> the block names the worker also uses
_INTERACTION_PARTS = (
    ("conv.lin_in.", "linear up"),
    ("conv.radial.", "radial MLP"),
    ("conv.lin_out.", "linear out"),
    ("product.", "product basis"),
    ("message.", "message linear"),
    ("skip.", "skip"),
)


def irrepnet_blocks(model: torch.nn.Module) -> dict[str, int]:
    """Parameter count of irrepnet's ``mace`` per block, named as the worker names mace-torch's."""
    from irrepnet.nn import RadialEmbedding
    from irrepnet.nn.mace_blocks import EnergyReadout, MACEInteraction, NodeEmbedding

    whole = {NodeEmbedding: "embedding", EnergyReadout: "readout", RadialEmbedding: "radial basis"}
    block_of: dict[int, str] = {}
    for module in model.modules():
        if isinstance(module, MACEInteraction):
            for name, p in module.named_parameters():
                block_of[id(p)] = next((b for prefix, b in _INTERACTION_PARTS if name.startswith(prefix)), "other")
        for kind, block in whole.items():
            if isinstance(module, kind):
                block_of.update({id(p): block for p in module.parameters()})
    blocks: dict[str, int] = {}
    for p in model.parameters():
        block = block_of.get(id(p), "other")
        blocks[block] = blocks.get(block, 0) + p.numel()
    return blocks


def size_mismatch(ours: int, theirs: int, blocks_ours: dict, blocks_theirs: dict) -> str | None:
    """``None`` when the counts agree within :data:`TOLERANCE`, else the one-line refusal."""
    if abs(ours - theirs) <= TOLERANCE * max(theirs, 1):
        return None
    diffs = sorted(
        (b for b in set(blocks_ours) | set(blocks_theirs) if blocks_ours.get(b, 0) != blocks_theirs.get(b, 0)),
        key=lambda b: -abs(blocks_ours.get(b, 0) - blocks_theirs.get(b, 0)),
    )
    parts = [
        f"{b} {blocks_ours.get(b, 0):,} vs {blocks_theirs.get(b, 0):,} ({BLOCK_OPTIONS.get(b, 'not a MACE block')})"
        for b in diffs
    ]
    return (
        f"refusing to compare: irrepnet's mace has {ours:,} parameters and mace-torch's {theirs:,} "
        f"({100 * (ours - theirs) / max(theirs, 1):+.1f} %, more than {100 * TOLERANCE:.0f} %); "
        f"blocks that differ (irrepnet vs mace-torch, what sizes them): {'; '.join(parts) or 'none'}"
    )


def graph_prepared(model: torch.nn.Module, batch: dict, edge_index: torch.Tensor) -> dict:
    """``batch`` with the topology fields of every graph layer of ``model``, checked equal to ``edge_index``."""
    from irrepnet.nn import GraphConstruction

    layers = [m for m in model.modules() if isinstance(m, GraphConstruction)]
    if not layers:
        raise RuntimeError("irrepnet's mace has no GraphConstruction layer; the shared graph cannot be handed to it")
    for layer in layers:
        batch = layer.topology(batch)
        if not torch.equal(batch[layer.topology_field], edge_index):
            raise RuntimeError(f"irrepnet's graph layer ({layer.kind}, r={layer.r}) built other edges than the export")
    return batch


class ServedWorker:
    """The worker in ``--serve`` mode: built once, then one timed call per request.

    Its stderr goes to a file (mace and TorchScript warn at length; a full pipe would stall
    it), of which the last line explains a failure.
    """

    def __init__(self, python: str, args: list[str], *, threads: int, worker: Path, stderr_path: Path):
        self._stderr = open(stderr_path, "w+")
        try:
            self.proc = subprocess.Popen(
                [python, str(worker), *args, "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                env=worker_env(threads),
            )
        except OSError as exc:
            self._stderr.close()
            raise WorkerError(f"--python {python}: cannot run it ({exc.strerror or exc}); {VENV_HELP}") from None
        self.info = self._answer()

    def _answer(self) -> dict:
        """The next result line (other output skipped); :class:`WorkerError` if the worker ended first."""
        assert self.proc.stdout is not None
        seen = []
        for line in self.proc.stdout:
            if line.startswith(MARKER + " "):
                answer = parse_worker_output(line)
                if "error" in answer:
                    raise WorkerError(f"the mace-torch worker answered: {answer['error']}")
                return answer
            seen.append(line)
        self.proc.wait()
        self._stderr.seek(0)
        last = ([ln.strip() for ln in self._stderr.read().splitlines() if ln.strip()] or seen or ["no output"])[-1]
        raise WorkerError(f"the mace-torch worker failed (exit {self.proc.returncode}): {last.strip()}")

    def request(self, command: str) -> dict:
        """Send one command (``inference``, ``train``, ``profile N``) and return its answer."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it ended: _answer says why
        return self._answer()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def summary(seconds: list[float]) -> dict:
    """Median, min and max of the timed calls, and all of them, in seconds."""
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds), "all": seconds}


def irrepnet_steps(model, batch: dict) -> dict:
    """``{"inference": f, "train_step": g}``: one call of irrepnet's model each, as the worker's."""
    from irrepnet import keys as K

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    dtype = next(model.parameters()).dtype
    energy, forces = batch[K.TARGET_ENERGY].to(dtype), batch[K.TARGET_FORCES].to(dtype)

    def infer():
        model.eval()
        with torch.no_grad():  # irrepnet's EnergyModel takes the force gradient itself
            out = model(batch)
        return float(out[K.ENERGY].sum()) + float(out[K.FORCES].sum())

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        out = model(batch)
        loss = (out[K.ENERGY] - energy).pow(2).mean() + (out[K.FORCES] - forces).pow(2).mean()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return {"inference": infer, "train_step": train_step}


#: the worker's command for each kind of call
COMMANDS = {"inference": "inference", "train_step": "train"}


def time_both(steps: dict, worker: ServedWorker, repeats: int, warmup: int) -> tuple[dict, dict]:
    """Alternate one call of irrepnet's and one of mace-torch's, ``warmup + repeats`` rounds per kind.

    In turn, so that whatever else loads the machine hits both sides alike; the first
    ``warmup`` rounds are left out. Returns ``(irrepnet, mace_torch)`` summaries per kind.
    """
    mine: dict[str, list[float]] = {kind: [] for kind in steps}
    theirs: dict[str, list[float]] = {kind: [] for kind in steps}
    for kind, step in steps.items():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            step()
            elapsed = time.perf_counter() - start
            answer = worker.request(COMMANDS[kind])
            if i >= warmup:
                mine[kind].append(elapsed)
                theirs[kind].append(float(answer["seconds"]))
    return {k: summary(v) for k, v in mine.items()}, {k: summary(v) for k, v in theirs.items()}


def profile(step, steps: int, top: int = 15) -> list[dict]:
    """Top ops of ``steps`` training steps by self CPU time (torch.profiler), ms per step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3 / steps, "calls": e.count / steps} for e in rows]


# --- report ----------------------------------------------------------------------------


def fmt(t: dict) -> str:
    """``median [min, max]`` in ms."""
    return f"{1e3 * t['median']:.1f} [{1e3 * t['min']:.1f}, {1e3 * t['max']:.1f}]"


def table(result: dict) -> str:
    """The comparison as a Markdown table (also what is printed)."""
    ours, theirs = result["irrepnet"], result["mace_torch"]
    rows = [
        "| model | parameters | inference ms, median [min, max] | training step ms, median [min, max] |",
        "| --- | ---: | ---: | ---: |",
        f"| irrepnet mace | {ours['parameters']:,} | {fmt(ours['inference'])} | {fmt(ours['train_step'])} |",
        f"| mace-torch MACE | {theirs['parameters']:,} | {fmt(theirs['inference'])} | {fmt(theirs['train_step'])} |",
        f"| ratio irrepnet / mace-torch | | {result['ratio']['inference']:.2f} | {result['ratio']['train_step']:.2f} |",
    ]
    return "\n".join(rows)


def profile_table(rows: list[dict]) -> str:
    lines = ["| op | self ms / step | calls / step |", "| --- | ---: | ---: |"]
    lines += [f"| `{r['op']}` | {r['self_ms']:.2f} | {r['calls']:.0f} |" for r in rows]
    return "\n".join(lines)


#: the files ``--out`` gets (a suite's ``results.json`` is another schema; see the module docstring)
RESULT_FILES = ("mace_vs_mace_torch.json", "mace_vs_mace_torch.md")


def write_results(out: Path, result: dict) -> None:
    """:data:`RESULT_FILES` under ``out``: the result as JSON and as a Markdown report."""
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT_FILES[0]).write_text(json.dumps(result, indent=2) + "\n")
    prov, other = result["provenance"], result["mace_torch"]["versions"]
    opts, data = result["options"], result["batch"]
    changed = ", ".join(f"`{f}`" for f in prov.get("dirty_files") or [])
    dirty = f" with uncommitted changes in {changed}" if prov.get("dirty") else ""
    md = [
        "# irrepnet mace vs mace-torch: time per call",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {prov['machine']}; {result['threads']} thread(s) on each side; {opts['dtype']}.",
        f"irrepnet {prov['irrepnet']} at commit `{prov['commit']}`{dirty}: "
        f"torch {prov['torch']}, e3nn {prov['e3nn']}, Python {prov['python']}.",
        f"mace-torch {other['mace']}: torch {other['torch']}, e3nn {other['e3nn']}, Python {other['python']}.",
        "",
        f"Batch: {data['graphs']} molecules of the molecules task (G2 H/C/N/O, EMT labels), {data['nodes']} atoms, "
        f"{data['edges']} edges within {opts['cutoff']} Å (the same edges on both sides). Model: "
        f"{opts['channels']}x0e + {opts['channels']}x1o hidden, max_ell {opts['max_ell']}, correlation "
        f"{opts['correlation']}, {opts['num_interactions']} interactions, {opts['num_bessel']} Bessel functions, "
        f"radial MLP {[opts['radial_neurons']] * opts['radial_layers']}, readout MLP {opts['readout_mlp']}x0e, "
        f"first interaction {opts['first_interaction']}. {result['warmup']} warm-up calls, then {result['repeats']} timed.",
        "",
        table(result),
        "",
    ]
    for side, name in (("irrepnet", "irrepnet"), ("mace_torch", "mace-torch")):
        if "profile" in result[side]:
            md += [f"Top operators of one {name} training step (torch.profiler, self CPU time):", ""]
            md += [profile_table(result[side]["profile"]), ""]
    (out / RESULT_FILES[1]).write_text("\n".join(md))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", required=True, help="the Python of a venv with mace-torch (see the docstring)")
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--max-ell", type=int, default=3)
    p.add_argument("--correlation", type=int, default=3)
    p.add_argument("--interactions", type=int, default=2)
    p.add_argument("--hidden-lmax", type=int, default=1, help="hidden C x (0e + 1o + ...) up to this degree")
    p.add_argument("--cutoff", type=float, default=5.0, help="Å")
    p.add_argument("--num-bessel", type=int, default=8)
    p.add_argument("--num-polynomial-cutoff", type=int, default=5)
    p.add_argument("--radial-neurons", type=int, default=64)
    p.add_argument("--radial-layers", type=int, default=3)
    p.add_argument("--readout-mlp", type=int, default=16, help="hidden 0e neurons of the last readout")
    p.add_argument(
        "--first-interaction",
        choices=("residual", "plain"),
        default="residual",
        help="mace-torch's first layer: residual (per-element skip, as irrepnet's) or plain (its CLI default)",
    )
    p.add_argument(
        "--original-basis",
        action="store_true",
        help="mace-torch's original product basis (use_reduced_cg=False): more weights than irrepnet's",
    )
    p.add_argument("--batch", type=int, default=32, help="molecules in the batch")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", type=int, default=0, help="training steps to profile on each side (0: none)")
    p.add_argument("--out", type=Path, default=None, help="folder for mace_vs_mace_torch.json and .md")
    p.add_argument("--worker", type=Path, default=WORKER, help=argparse.SUPPRESS)  # tests feed a fake one
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = parser().parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.batch < 1 or args.threads < 1:
        print("error: need --repeats >= 1, --warmup >= 0, --batch >= 1 and --threads >= 1", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    try:
        versions = check_python(args.python, args.worker)
    except WorkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from irrepnet.provenance import provenance

    started = provenance()
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    spec, batch, edge_index, arrays, z_table = make_batch(args.batch, args.cutoff, dtype)
    n_nodes, n_edges = arrays["positions"].shape[0], edge_index.shape[1]
    options = model_options(args, n_edges / n_nodes, z_table)
    torch.manual_seed(args.seed)
    model = build_irrepnet(options, spec)
    ours = sum(p.numel() for p in model.parameters())
    common = ["--threads", str(args.threads), "--seed", str(args.seed)]
    with tempfile.TemporaryDirectory(prefix="mace-vs-mace-torch-") as tmp:
        np.savez(Path(tmp) / "batch.npz", **arrays)
        (Path(tmp) / "config.json").write_text(json.dumps(options))
        files = ["--data", str(Path(tmp) / "batch.npz"), "--config", str(Path(tmp) / "config.json")]
        try:
            with ServedWorker(
                args.python, [*files, *common], threads=args.threads, worker=args.worker, stderr_path=Path(tmp) / "err"
            ) as worker:
                counted = worker.info
                print(f"parameters: irrepnet mace {ours:,}, mace-torch MACE {counted['parameters']:,}", flush=True)
                refusal = size_mismatch(ours, counted["parameters"], irrepnet_blocks(model), counted.get("blocks", {}))
                if refusal:
                    print(refusal, file=sys.stderr)
                    return REFUSED
                print(f"timing, one call of each in turn ({args.warmup} + {args.repeats} of each kind) ...", flush=True)
                steps = irrepnet_steps(model, graph_prepared(model, batch, edge_index))
                mine, timed = time_both(steps, worker, args.repeats, args.warmup)
                theirs = {**counted, **timed}
                if args.profile > 0:
                    mine["profile"] = profile(steps["train_step"], args.profile)
                    theirs["profile"] = worker.request(f"profile {args.profile}")["profile"]
        except WorkerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    result = {
        "command": " ".join(shlex.quote(a) for a in ["python", "benchmarks/mace_vs_mace_torch.py", *argv]),
        "provenance": started,
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "options": options,
        "batch": {"graphs": args.batch, "nodes": int(n_nodes), "edges": int(n_edges)},
        "irrepnet": {"parameters": ours, "blocks": irrepnet_blocks(model), **mine},
        "mace_torch": {**theirs, "versions": theirs.get("versions", versions)},
    }
    result["ratio"] = {kind: mine[kind]["median"] / theirs[kind]["median"] for kind in ("inference", "train_step")}
    print(table(result))
    for side, name in (("irrepnet", "irrepnet"), ("mace_torch", "mace-torch")):
        if "profile" in result[side]:
            print(f"\ntop ops of one {name} training step (self CPU ms per step):")
            print(profile_table(result[side]["profile"]))
    if args.out is not None:
        write_results(args.out, result)
        print(f"wrote {args.out / RESULT_FILES[0]} and {args.out / RESULT_FILES[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
