"""Compiling a model with ``torch.compile``: one graph per model, the graph topology kept outside.

A message-passing model does two kinds of work. Deciding *which* pairs are edges
(radius search, full graph of each molecule) produces tensors whose size depends on
the data; everything after it (edge vectors, embeddings, tensor products, MLPs,
aggregation) has shapes fixed by the number of nodes and edges. :func:`compile_model`
runs the first part eagerly, once per batch, with each
:meth:`~irrepnet.nn.GraphConstruction.topology` of the model, and compiles the
second: the model's ``forward`` then finds its edges in the batch and traces, with
``fullgraph=True``, into one graph without breaks.

What keeps the forward traceable (the rules every model here follows, and a user
model needs to follow to compile in one graph): no ``.item()``/``int(tensor)`` or
Python branch on tensor values (input checks that need them are skipped while
compiling, see :func:`checking`); no op whose output size depends on values
(``bincount``, ``nonzero``, boolean masks); e3nn objects read only at construction.

Batches of a new size recompile once; after that dynamo marks the sizes dynamic
(``torch.compile``'s automatic dynamic shapes), so a radius graph whose edge count
changes every batch costs two compilations, not one per batch.

When a model cannot be compiled (dynamo cannot trace it, or inductor has no kernel
for an op) :class:`CompiledModel` says which error and op in a warning and runs the
model eagerly from then on: a slow step, never a wrong or failed one.

Example
-------
>>> model = build_model("egnn-vel", task.spec)          # doctest: +SKIP
>>> fast = compile_model(model)                         # shares model's parameters
>>> fast(batch)["displacement"]                         # doctest: +SKIP
"""

from __future__ import annotations

import copy
import warnings

import torch

from .batch import ensure_batch
from .interface import IrrepsModel


def checking() -> bool:
    """Whether value checks (which read tensors on the host) should run: not while compiling."""
    return not torch.compiler.is_compiling()


def _graph_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    from .nn.graph_layer import GraphConstruction  # nn imports this module's checking()

    return [m for m in model.modules() if isinstance(m, GraphConstruction)]


class CompilationFallbackWarning(RuntimeWarning):
    """A model could not be compiled and runs eagerly."""


class CompiledModel(IrrepsModel):
    """A model whose forward runs compiled, after its graph topology is built eagerly.

    Same fields, irreps, symmetry and parameters as ``model`` (they are shared: train
    either, both change), so it goes through the equivariance audit like any model.
    Save checkpoints of ``model``, the eager module.

    Parameters
    ----------
    model : IrrepsModel
        the model to compile.
    fallback : bool
        on a compilation error, warn and run eagerly (default); ``False`` raises.
    **options
        passed to ``torch.compile`` (``mode``, ``dynamic``, ``backend``...);
        ``fullgraph`` is ``True`` unless given.

    Shapes/irreps
    -------------
    those of ``model``.
    """

    def __init__(self, model: IrrepsModel, *, fallback: bool = True, **options):
        if isinstance(model, CompiledModel):
            raise TypeError("the model is compiled already; pass its .model to compile it again with other options")
        if not isinstance(model, IrrepsModel):
            raise TypeError(f"compile_model takes an IrrepsModel, got {type(model).__name__}")
        super().__init__(model.irreps_in, model.irreps_out, symmetry=model.symmetry)
        self.permutation_equivariant = model.permutation_equivariant
        self.model = model
        self.options = {"fullgraph": True, **options}
        self.fallback = fallback
        self.fallback_reason: str | None = None
        _allow_recompiles()
        # kept out of the module tree: torch.compile's wrapper holds model under another
        # name, which would put every parameter twice in state_dict()
        object.__setattr__(self, "_compiled", torch.compile(model, **self.options))
        object.__setattr__(self, "_graphs", _graph_layers(model))

    @property
    def compiled(self) -> bool:
        """False once the model fell back to eager execution."""
        return self.fallback_reason is None

    def prepare(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The eager part: ``data`` with ``batch``/``num_nodes`` and the edges of every graph the model builds."""
        data = ensure_batch(data)
        for graph in self._graphs:
            data = graph.topology(data)
        return data

    def forward(self, data):
        data = self.prepare(dict(data))
        if not self.compiled:
            return self.model(data)
        try:
            return self._compiled(data)
        except Exception as exc:  # dynamo and inductor raise many types; all mean "cannot compile"
            if not self.fallback or not _is_compile_error(exc):
                raise
            self.fallback_reason = f"{type(exc).__name__}: {_first_line(exc)}"
            warnings.warn(
                f"{type(self.model).__name__} could not be compiled and runs eagerly ({self.fallback_reason})",
                CompilationFallbackWarning,
                stacklevel=2,
            )
            return self.model(data)

    def __deepcopy__(self, memo):
        # a copy of the eager model, compiled afresh: torch.compile's wrapper does not copy
        clone = CompiledModel(copy.deepcopy(self.model, memo), fallback=self.fallback, **self.options)
        clone.fallback_reason = self.fallback_reason
        memo[id(self)] = clone
        return clone.train(self.training)

    def extra_repr(self) -> str:
        state = "compiled" if self.compiled else f"eager fallback: {self.fallback_reason}"
        return f"{state}, options={self.options}"


#: recompilations dynamo allows per code object (its default is 8)
RECOMPILE_LIMIT = 64


def _allow_recompiles() -> None:
    """Let dynamo compile one ``forward`` for many model instances in a process.

    Dynamo counts compilations per code object, and every instance of a class (each
    model of a benchmark suite, each seed, each copy the audit makes, float32 and
    float64) compiles that class's ``forward`` anew; models sharing a class (``egnn``,
    ``egnn-vel`` and ``radial-field`` are all ``CoordinateModel``s) share the count. Past
    the default limit of 8, ``fullgraph=True`` turns the next one into an error, which
    here would mean an eager fallback for a model that compiles fine. Raised, never lowered.
    """
    import torch._dynamo.config as dynamo_config

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, RECOMPILE_LIMIT)
    dynamo_config.accumulated_recompile_limit = max(dynamo_config.accumulated_recompile_limit, 16 * RECOMPILE_LIMIT)


def _is_compile_error(exc: Exception) -> bool:
    import torch._dynamo.exc as dynamo_exc

    return isinstance(exc, (dynamo_exc.TorchDynamoException, dynamo_exc.BackendCompilerFailed)) or type(
        exc
    ).__module__.startswith(("torch._dynamo", "torch._inductor"))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def compile_model(model: IrrepsModel, **options) -> CompiledModel:
    """``model`` compiled with ``torch.compile`` (one graph), its topology built eagerly.

    See :class:`CompiledModel`; ``options`` go to ``torch.compile``.
    """
    return CompiledModel(model, **options)
