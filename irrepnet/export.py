r"""Models out: a ``torch.export`` / AOTInductor package that runs without irrepnet or e3nn.

:func:`export_model` turns a trained model (a checkpoint of ``irrepnet train``/``bench``,
or any :class:`~irrepnet.interface.IrrepsModel`) into one ``.pt2`` file whose program
takes plain tensors instead of a batch dict: for an energy model (the molecules task)

.. math::

    (x, \text{onehot}, \text{edge\_index}, \text{batch}, N_g) \;\mapsto\;
    \Bigl(E_g,\; F_i = -\frac{\partial E_{g(i)}}{\partial x_i}\Bigr),

and for a displacement model (twelve_body, nbody) its input fields and
``(displacement,)``. The program holds the normalisation of
:class:`~irrepnet.train.normalization.NormalizedModel` (positions divided by the fitted
length, outputs rescaled, per-element reference energies), so it reads and returns the
data's units.

What stays outside
------------------
The neighbour list: which pairs are edges decides the size of every edge tensor, so
it is an input (``edge_index``, sender row 0, receiver row 1), as in
:mod:`irrepnet.compile`. The package says which graph to build in its metadata
(``graph.kind`` and ``graph.cutoff``, in the data's unit: the model's cutoff times the
fitted length), with the species order, input and output names, dtype and the
irrepnet and torch versions; :mod:`irrepnet.export_runtime`, copied into the package
and beside it, builds that graph with torch alone and calls the program.

How the forces get in
---------------------
Energy models take :func:`torch.autograd.grad` inside ``forward``. ``torch.export``
(2.13) traces above autograd and lifts the tensors saved for the backward pass as
fake constants ("We found a fake tensor in the exported program constant's list").
So the program is first traced *below* autograd with ``make_fx`` (symbolic shapes,
duck sizing off so that no two sizes are assumed equal because the example's were),
which writes the backward as plain aten ops, and that graph is then exported with
``torch.export.export(strict=False)`` and :class:`torch.export.Dim` for the numbers of
atoms ``n``, edges ``E`` and graphs ``G``; on fixed-size tasks ``n = N G``. Input
checks that read values on the host are skipped while tracing, as under
``torch.compile``. AOTInductor then compiles it to a shared library inside the package
(needs a C++ compiler); without it the ``ExportedProgram`` is saved with
``torch.export.save``.

Shapes/irreps
-------------
inputs: the model's node fields ``(n, irreps.dim)`` (``pos 1o (n, 3)``,
``species_onehot kx0e (n, k)``...), ``edge_index (2, E)`` when the model builds a graph,
``batch (n,)``, ``num_nodes (G,)``; outputs: ``energy (G, 1)`` and ``forces (n, 3)``, or
``displacement (n, 3)``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__
from . import export_runtime as runtime
from . import keys as K

#: batch fields every program reads, after the model's own fields and the edges
LAYOUT_FIELDS = (K.BATCH, K.NUM_NODES)
#: metadata format tag and version
FORMAT, VERSION = "irrepnet.export", 1


class ExportError(ValueError):
    """A model that cannot be exported; the message names the family and the reason in one line."""


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and how long each stage took (seconds)."""

    path: Path
    metadata: dict
    trace_s: float
    compile_s: float | None


class ProgramModule(torch.nn.Module):
    """``model`` with a flat signature: ``forward(*tensors)`` in ``inputs`` order -> tuple of ``outputs``.

    ``edge_index`` goes to the model's graph layer under its
    :attr:`~irrepnet.nn.GraphConstruction.topology_field`, as a compiled model receives it.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        inputs: list[str],
        outputs: list[str],
        topology_field: str | None,
        num_nodes: int | None = None,
    ):
        super().__init__()
        self.model, self.inputs, self.outputs, self.topology_field = model, inputs, outputs, topology_field
        self.num_nodes = num_nodes  # nodes per graph on a fixed-size task: n = num_nodes * G

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        data = dict(zip(self.inputs, tensors))
        if self.topology_field is not None:
            data[self.topology_field] = data.pop(K.EDGE_INDEX)
        if K.EDGE_CELL_SHIFT in data:  # periodic: beside edge_index, as GraphConstruction.topology leaves it
            data[self.topology_field + K.EDGE_CELL_SHIFT] = data.pop(K.EDGE_CELL_SHIFT)
        out = self.model(data)
        return tuple(out[name] for name in self.outputs)


def graph_of(model: torch.nn.Module, family: str) -> dict:
    """``{"kind", "cutoff", "model_cutoff", "topology_field"}`` of the one graph ``model`` builds.

    ``cutoff`` is in the data's unit: the model's cutoff times the fitted length of a
    :class:`~irrepnet.train.normalization.NormalizedModel`.
    """
    from .nn.graph_layer import GraphConstruction

    layers = [m for m in model.modules() if isinstance(m, GraphConstruction)]
    if not layers:
        return {"kind": "none", "cutoff": None, "model_cutoff": None, "topology_field": None}
    fields = sorted({g.topology_field for g in layers})  # layers with one field share their edges
    if len(fields) > 1:
        raise ExportError(
            f"model family {family!r} cannot be exported: it builds {len(fields)} graphs {fields}; "
            "a package carries one edge list"
        )
    g = layers[0]
    if g.kind not in ("full", "radius"):
        raise ExportError(
            f"model family {family!r} cannot be exported: it builds a {g.kind} graph; "
            "the package runtime builds radius and full graphs"
        )
    length = getattr(model, "length_scale", None) or 1.0
    cutoff = None if g.r is None else float(g.r) * float(length)
    return {"kind": g.kind, "cutoff": cutoff, "model_cutoff": g.r, "topology_field": g.topology_field}


def example_batch(
    model, graph: dict, num_nodes: int | None, dtype: torch.dtype, seed: int = 0, periodic: bool = False
) -> dict:
    """A batch of two graphs with random node fields, for tracing: sizes 5 and 7 (or ``num_nodes`` each).

    Positions fill a cube of side ``1.2 r_c (n/6)^{1/3}``, dense enough for a few edges per
    atom; ``periodic`` adds that cube as the cell of each graph, periodic along all three axes.
    """
    gen = torch.Generator().manual_seed(seed)
    sizes = [num_nodes, num_nodes] if num_nodes else [5, 7]
    counts = torch.tensor(sizes)
    n = int(counts.sum())
    side = (graph["cutoff"] or 2.0) * 1.2 * (max(sizes) / 6) ** (1 / 3)
    data = {K.NUM_NODES: counts, K.BATCH: torch.repeat_interleave(torch.arange(len(sizes)), counts)}
    fields = {K.POS: "1o", **model.irreps_in}  # every program reads pos (a physical baseline ignores it)
    for name, irreps in fields.items():
        if name == K.POS:
            data[name] = (torch.rand(n, 3, generator=gen) * side).to(dtype)
        elif name == K.SPECIES_ONEHOT:
            index = torch.randint(0, irreps.dim, (n,), generator=gen)
            data[name] = torch.nn.functional.one_hot(index, irreps.dim).to(dtype)
        elif irreps is None:  # node_index: the position of a node in its graph
            data[name] = torch.cat([torch.arange(s) for s in sizes])
        else:
            data[name] = torch.randn(n, irreps.dim, generator=gen).to(dtype)
    if periodic:  # cubic cells as large as the cube of positions: several images within the cutoff
        data[K.CELL] = (side * torch.eye(3, dtype=dtype)).expand(len(sizes), 3, 3).contiguous()
        data[K.PBC] = torch.ones(len(sizes), 3, dtype=torch.bool)
    return data


def with_edges(data: dict, graph: dict, periodic: bool = False) -> dict:
    """``data`` with ``edge_index`` (and ``edge_cell_shift`` when ``periodic``) as the package runtime builds them."""
    if periodic:
        meta = {"graph": graph, "periodic": True}
        edges, shift = runtime.build_edges(meta, data[K.POS], data[K.BATCH], data[K.CELL], data[K.PBC])
        return {**data, K.EDGE_INDEX: edges, K.EDGE_CELL_SHIFT: shift}
    edges = runtime.build_edges({"graph": graph}, data[K.POS], data[K.BATCH])
    return data if edges is None else {**data, K.EDGE_INDEX: edges}


def _dynamic_shapes(inputs: list[str], num_nodes: int | None) -> tuple:
    """One :class:`torch.export.Dim` per varying size: ``n`` (``N G`` on fixed-size tasks), ``E``, ``G``."""
    from torch.export import Dim

    graphs = Dim("G", min=1)
    nodes = num_nodes * graphs if num_nodes else Dim("n", min=1)
    edges = Dim("E", min=0)  # an isolated atom, a sparse radius graph
    out = []
    for name in inputs:
        if name == K.EDGE_INDEX:
            out.append({1: edges})
        elif name == K.EDGE_CELL_SHIFT:
            out.append({0: edges})
        elif name in (K.NUM_NODES, K.CELL):
            out.append({0: graphs})
        else:
            out.append({0: nodes})
    return tuple(out)


def trace(module: ProgramModule, args: tuple, dynamic: bool = True):
    """``torch.export.ExportedProgram`` of ``module``: ``make_fx`` below autograd, then ``torch.export``."""
    import torch.fx.experimental._config as fx_config
    from torch._export.utils import _compiling_state_context  # sets torch.compiler.is_compiling()
    from torch.fx.experimental.proxy_tensor import make_fx

    # duck sizing would give every size equal to another in the example (E = 2 = edge_index's
    # first dim) one symbol, and a later check of one would pin the other
    with _compiling_state_context(), fx_config.patch(use_duck_shape=False):
        graph = make_fx(module, tracing_mode="symbolic" if dynamic else "fake", _allow_non_fake_inputs=True)(*args)
    shapes = _dynamic_shapes(module.inputs, module.num_nodes) if dynamic else None
    return torch.export.export(graph, args, dynamic_shapes=shapes, strict=False)


def compiler_available() -> bool:
    """Whether a C++ compiler for AOTInductor is on the PATH (``$CXX``, ``c++``, ``g++`` or ``clang++``)."""
    names = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    return any(shutil.which(name) for name in names if name)


def compile_aoti(ep, out: Path, meta: dict, source: str) -> None:
    """AOTInductor-compile ``ep`` into the package ``out``, the metadata and runtime stored in it."""
    if not compiler_available():
        raise RuntimeError("no C++ compiler on the PATH (set CXX or install g++)")
    text = json.dumps(meta, indent=2)
    configs = {"aot_inductor.metadata": {runtime.AOTI_METADATA_KEY: text, runtime.RUNTIME_NAME: source}}
    torch._inductor.aoti_compile_and_package(ep, package_path=str(out), inductor_configs=configs)


def _check_periodic(model, graph: dict, family: str) -> None:
    """A periodic package needs a radius graph and positions in the data's unit (the cell is not rescaled)."""
    if graph["kind"] != "radius":
        raise ExportError(
            f"model family {family!r} cannot be exported periodic: it builds a {graph['kind']} "
            "graph, and periodic images need a radius graph"
        )
    if getattr(model, "length_scale", None) is not None:
        raise ExportError(
            f"model family {family!r} cannot be exported periodic: its positions are divided by "
            "a fitted length, and the cell would need the same"
        )


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:240] if lines else ''}"


def _resolve(model_or_checkpoint, task, name):
    """``(model, family, spec)`` from a checkpoint path or a model (and its optional TaskSpec and name)."""
    if isinstance(model_or_checkpoint, (str, Path)):
        from .train import load_trained, spec_from_meta

        model, ck = load_trained(model_or_checkpoint)
        return model, ck["meta"]["model"], spec_from_meta(ck["meta"]["task"])
    model = model_or_checkpoint
    inner = getattr(model, "model", model)  # a NormalizedModel's network
    inner = getattr(inner, "backbone", inner)  # an EnergyModel's
    return model, name or type(inner).__name__, task


def _metadata(family, spec, inputs, outputs, graph, dtype, dynamic, aoti, periodic) -> dict:
    extras = getattr(spec, "extras", {}) or {}
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": family,
        "task": getattr(spec, "name", None),
        "inputs": inputs,
        "outputs": outputs,
        "graph": {k: v for k, v in graph.items() if k != "topology_field"},
        "periodic": periodic,
        "species": list(extras["species"]) if "species" in extras else None,
        "num_nodes": getattr(spec, "num_nodes", None),
        "dtype": str(dtype).removeprefix("torch."),
        "dynamic": dynamic,
        "aoti": aoti,
        "irrepnet_version": __version__,
        "torch_version": torch.__version__,
    }


def _check_example(ep, module: ProgramModule, args: tuple, family: str) -> None:
    """The exported program must give the eager model's outputs on the tracing example."""
    eager, got = module(*args), ep.module()(*args)
    tol = 1e-4 if args[0].dtype == torch.float32 else 1e-9
    for name, a, b in zip(module.outputs, eager, got):
        scale = float(a.detach().abs().max()) if a.numel() else 0.0
        err = float((a.detach() - b.detach()).abs().max()) if a.numel() else 0.0
        if not math.isfinite(err) or err > tol * max(scale, 1.0):
            raise ExportError(
                f"model family {family!r}: the exported program's {name} differs from the "
                f"eager model's by {err:.3g} (scale {scale:.3g}) on the tracing example"
            )


def export_model(
    model_or_checkpoint,
    out_path,
    example: dict | None = None,
    dynamic: bool = True,
    aoti: bool = True,
    *,
    dtype: torch.dtype | str | None = None,
    task=None,
    name: str | None = None,
    periodic: bool = False,
) -> ExportResult:
    """Export a model to a ``.pt2`` package that runs with torch alone (see the module docstring).

    Parameters
    ----------
    model_or_checkpoint : IrrepsModel or str or Path
        a model (in physical units: a :class:`~irrepnet.train.normalization.NormalizedModel`
        for a trained one) or a ``best.pt``/``last.pt`` checkpoint.
    out_path : str or Path
        the package (``.pt2``); ``<stem>.json`` (metadata) and ``<stem>_runtime.py`` (the
        torch-only runtime) are written beside it.
    example : dict, optional
        a batch to trace with (at least two graphs and two edges, so that no size is
        traced as 0 or 1); default: :func:`example_batch`.
    dynamic : bool
        any number of atoms, edges and graphs (``False``: the example's sizes only).
    aoti : bool
        compile with AOTInductor (a C++ compiler is needed); ``False`` saves the ExportedProgram.
    dtype : torch.dtype or str, optional
        cast the model first (``"float32"``/``"float64"``); default: its own.
    task : TaskSpec, optional
        the task of a model given as an object (species order, fixed node count).
    name : str, optional
        the model's registered name, for the metadata and messages (a checkpoint has its own).
    periodic : bool
        also read ``cell (G, 3, 3)`` and ``edge_cell_shift (E, 3)`` (periodic images of a
        radius graph; the runtime takes ``cell`` and ``pbc``).

    Returns
    -------
    ExportResult
        the package's path, its metadata and the trace and compile times.
    """
    model, family, spec = _resolve(model_or_checkpoint, task, name)
    if isinstance(dtype, str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        dtype = getattr(torch, dtype)
    param = next(model.parameters(), None)
    dtype = dtype or (param.dtype if param is not None else torch.get_default_dtype())
    model = copy.deepcopy(model).to(dtype).eval()  # the caller's model keeps its dtype and mode
    graph = graph_of(model, family)
    if periodic:
        _check_periodic(model, graph, family)
    fixed = getattr(spec, "num_nodes", None)
    names = [K.POS] + [k for k in model.irreps_in if k not in (K.POS, K.CELL)]
    inputs = names + ([K.EDGE_INDEX] if graph["kind"] != "none" else []) + list(LAYOUT_FIELDS)
    inputs += [K.CELL, K.EDGE_CELL_SHIFT] if periodic else []
    outputs = list(model.irreps_out)
    if example is None:
        example = example_batch(model, graph, fixed, dtype, periodic=periodic)
    data = with_edges(example, graph, periodic)
    if periodic:  # the model itself on the periodic batch: a family that refuses cells says so here
        try:
            model(dict(example))
        except ValueError as exc:
            raise ExportError(f"model family {family!r} cannot be exported periodic: {_first_line(exc)}") from None
    if dynamic and (data[K.NUM_NODES].numel() < 2 or data.get(K.EDGE_INDEX, torch.zeros(2, 2)).shape[1] < 2):
        raise ValueError(
            "a dynamic export traces with at least two graphs and two edges (sizes 0 and 1 "
            "would be traced as constants); give a larger example"
        )
    args = tuple(data[k].to(dtype) if data[k].is_floating_point() else data[k] for k in inputs)
    module = ProgramModule(model, inputs, outputs, graph["topology_field"], fixed)
    start = time.perf_counter()
    try:
        ep = trace(module, args, dynamic)
    except Exception as exc:  # tracing raises many types; each means "this family does not export"
        raise ExportError(f"model family {family!r} cannot be exported: {_first_line(exc)}") from exc
    _check_example(ep, module, args, family)
    trace_s = time.perf_counter() - start
    meta = _metadata(family, spec, inputs, outputs, graph, dtype, dynamic, aoti, periodic)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    source = Path(runtime.__file__).read_text()
    compile_s = None
    if aoti:
        start = time.perf_counter()
        try:
            compile_aoti(ep, out, meta, source)
            compile_s = time.perf_counter() - start
        except Exception as exc:  # no compiler, or an inductor error: the ExportedProgram still runs
            meta.update(aoti=False, aoti_fallback=_first_line(exc))
            warnings.warn(
                f"AOTInductor could not compile {family!r} ({meta['aoti_fallback']}); "
                "saving the ExportedProgram instead",
                RuntimeWarning,
                stacklevel=2,
            )
    if not meta["aoti"]:
        text = json.dumps(meta, indent=2)
        torch.export.save(ep, str(out), extra_files={runtime.METADATA_NAME: text, runtime.RUNTIME_NAME: source})
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    out.with_name(f"{out.stem}_runtime.py").write_text(source)
    return ExportResult(out, meta, trace_s, compile_s)


__all__ = ["ExportError", "ExportResult", "ProgramModule", "example_batch", "export_model", "graph_of", "trace"]
