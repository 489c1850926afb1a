r"""Peers: other projects' implementations behind the interface, to compare in the same harness.

Two of Phil Wang's (lucidrains) packages, the implementations people use, wrapped by
import (``pip install 'irrepnet[peers]'``); nothing of their code is copied:

- ``egnn-pytorch``: ``egnn_pytorch.EGNN_Network`` (egnn-pytorch 0.2.8) of Satorras,
  Hoogeboom, Welling, "E(n) Equivariant Graph Neural Networks", ICML 2021
  (https://arxiv.org/abs/2102.09844). Per layer

  .. math::

      m_{ij} = \phi_e(h_i, h_j, \|x_i - x_j\|^2, a_{ij}), \qquad
      x_i \leftarrow x_i + \sum_j (x_i - x_j)\,\phi_x(m_{ij}), \qquad
      h_i \leftarrow h_i + \phi_h(\mathrm{LN}(h_i), \textstyle\sum_j m_{ij})

  (the package's sum over every node of the graph, ``i = j`` included). The inputs are
  irrepnet ``egnn``'s: :math:`h^0 = W[\,1, \|v_{i,1}\|, \dots, \|v_{i,C}\|, q_i\,]` (a
  ``Linear`` to ``dim``; the package takes features of width ``dim``) and edge features
  :math:`a_{ij} = [\,q_i q_j,\ \|x^0_i - x^0_j\|^2\,]` (``edge_dim``), the charge product
  only when the task has charges. The displacement is the package's output coordinates
  minus its input coordinates, :math:`x^L - x^0`. The coordinates are given centred on
  each graph's centroid: the function is the same (it reads differences only), and
  float32 then rounds the displacement against the size of the system rather than
  against the absolute position (the float32 translation error of a fresh model on
  nbody: 5.6e-7 instead of 1.8e-6). Claims E(3), the paper's E(n).
- ``se3-transformer-pytorch``: ``se3_transformer_pytorch.SE3Transformer``
  (se3-transformer-pytorch 0.9.0) of Fuchs, Worrall, Fischer, Welling, "SE(3)-Transformers:
  3D Roto-Translation Equivariant Attention Networks", NeurIPS 2020
  (https://arxiv.org/abs/2006.10503): attention whose keys and values are equivariant
  convolutions :math:`W^{lk}(r_{ij}) = \sum_J \varphi^{lk}_J(\|r_{ij}\|)\,\sum_m Q^{lk}_{Jm} Y_{Jm}(\hat r_{ij})`,
  every pair of nodes a neighbour (the package's default). Type-0 inputs
  :math:`[\,1, q_i\,]`, type-1 inputs the task's velocity channels (the package's type-1
  components are Cartesian ``x, y, z``, so vectors go in and come out unchanged); the
  displacement is its type-1 output of one channel (``out_fiber_dict={1: 1}``,
  ``return_type=1``). Claims SE(3), as its authors do: its type-1 to type-1 kernels include
  :math:`J = 1` (a cross product with :math:`\hat r_{ij}`), which turns a vector into a
  pseudovector, so reflections are not expected to hold; the audit reports them
  (relative errors 0.01 to 0.7 on fresh models). The package rounds its basis change
  :math:`Q` to float32 (``basis_transformation_Q_J``), so its float64 rotation errors
  sit between 1e-10 and 1e-8 (5.5e-9 after a few training steps), not near 1e-15,
  often above the audit's float64 tolerance of 1e-9; translations and permutations are
  exact. It caches :math:`Q` on disk in ``~/.cache.equivariant_attention`` (its
  ``CACHE_PATH`` variable) and prints a line per entry the first time.

Both packages take dense ``(G, N, ...)`` tensors with a node ``mask``: the flattened
batch is padded to the largest graph and the output unpadded (:class:`Padding`), so
graphs of different sizes share a batch and each node sees only its own graph.

Shapes/irreps
-------------
in: ``pos 1o (n, 3)`` and, when the task has them, ``vel_history hx1o (n, 3h)`` (else
``vel 1o``), ``charge 0e (n, 1)``; ``batch``/``num_nodes`` as in :mod:`irrepnet.batch`;
out: ``displacement 1o (n, 3)``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from dataclasses import dataclass

import torch

from .. import keys as K
from ..batch import ensure_batch
from ..graph._periodic import refuse_periodic
from ..interface import IrrepsModel, Symmetry, TaskSpec, cast_inputs
from ..irreps import unpack_vectors
from ..registry import ConfigError, get_model_entry, register_model
from .egnn import velocity_vectors

EGNN_PYTORCH, SE3T_PYTORCH = "egnn-pytorch", "se3-transformer-pytorch"


def _import(model: str, module: str):
    """``module``, or a ConfigError with the install command (an install that fails to import too)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"model {model!r} could not import {module} ({exc}): {get_model_entry(model).install_command}"
        ) from exc


class Padding:
    """Flattened nodes to ``(G, N_max)`` slots and back.

    Nodes need not be sorted by graph: each node's slot is its rank within its graph.

    Shapes/irreps
    -------------
    ``batch (n,)``, ``num_nodes (G,)``; :meth:`pad` ``(n, ...) -> (G, N, ...)``, zeros in
    empty slots; :meth:`unpad` ``(G, N, ...) -> (n, ...)``; ``mask (G, N)`` bool.
    """

    def __init__(self, batch: torch.Tensor, num_nodes: torch.Tensor, min_size: int = 1):
        counts = torch.bincount(batch, minlength=num_nodes.numel())
        self.size = max(int(counts.max()) if counts.numel() else 0, min_size)  # the one host sync
        order = torch.argsort(batch, stable=True)
        first = torch.cumsum(counts, 0) - counts
        slot = torch.empty_like(batch)
        slot[order] = torch.arange(batch.numel(), device=batch.device) - first[batch[order]]
        self.graph, self.slot = batch, slot
        self.mask = torch.zeros(counts.numel(), self.size, dtype=torch.bool, device=batch.device)
        self.mask[batch, slot] = True

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, ...) -> (G, N, ...)``: the nodes in their graphs' slots, zeros in empty ones."""
        out = x.new_zeros(self.mask.shape + x.shape[1:])
        out[self.graph, self.slot] = x
        return out

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """``(G, N, ...) -> (n, ...)``: back to the batch's node order."""
        return x[self.graph, self.slot]


def node_scalars(data: dict[str, torch.Tensor], vectors: str | None, charge: bool, norms: bool) -> torch.Tensor:
    """``[1, |v_1|, ..., |v_C|, q]`` per node: the norms only when ``norms``, each part only when present.

    Shapes/irreps
    -------------
    ``(n, F)`` ``Fx0e``.
    """
    pos = data[K.POS]
    h = [pos.new_ones(pos.shape[0], 1)]
    if norms and vectors is not None:
        h.append(torch.linalg.vector_norm(unpack_vectors(data[vectors]), dim=-1))
    if charge:
        h.append(data[K.CHARGE])
    return torch.cat(h, dim=-1)


def node_scalars_width(task: TaskSpec, vectors: str | None, charge: bool, norms: bool) -> int:
    """Width ``F`` of :func:`node_scalars` for ``task``."""
    channels = task.inputs[vectors].count("1o") if (norms and vectors is not None) else 0
    return 1 + channels + int(charge)


def _task_fields(task: TaskSpec) -> tuple:
    """``(irreps_in, velocity field or None, has charge)`` of what the peers read of ``task``."""
    vectors = velocity_vectors(task)
    charge = task.inputs.get(K.CHARGE) is not None
    irreps_in = {K.POS: "1o"}
    if vectors is not None:
        irreps_in[vectors] = task.inputs[vectors]
    if charge:
        irreps_in[K.CHARGE] = "0e"
    return irreps_in, vectors, charge


# --- egnn-pytorch ---------------------------------------------------------------


@dataclass
class EGNNPytorchConfig:
    """Options of ``egnn-pytorch`` (``EGNN_Network`` arguments; defaults: small, the package's own otherwise)."""

    dim: int = 32  # node feature width
    depth: int = 4  # EGNN layers
    m_dim: int = 16  # message width (the package's default)
    neighbors: int = 0  # num_nearest_neighbors; 0: every node of the graph
    m_pool_method: str = "sum"  # "sum" or "mean" over neighbours
    norm_coors: bool = False  # the package's CoorsNorm of x_i - x_j
    input_distance: bool = True  # |x^0_i - x^0_j|^2 as an edge feature (the paper's N-body a_ij)


class EGNNPytorch(IrrepsModel):
    """``egnn_pytorch.EGNN_Network`` on the task's invariants; see the module docstring."""

    symmetry = Symmetry.E3

    def __init__(self, task: TaskSpec, config: EGNNPytorchConfig):
        egnn_pytorch = _import(EGNN_PYTORCH, "egnn_pytorch")
        irreps_in, self.vectors, self.charge = _task_fields(task)
        super().__init__(irreps_in, {K.DISPLACEMENT: "1o"})
        self.input_distance = config.input_distance
        num_features = node_scalars_width(task, self.vectors, self.charge, norms=True)
        edge_dim = int(self.charge) + int(config.input_distance)
        self.embed = torch.nn.Linear(num_features, config.dim)
        self.network = egnn_pytorch.EGNN_Network(
            depth=config.depth,
            dim=config.dim,
            edge_dim=edge_dim,
            m_dim=config.m_dim,
            num_nearest_neighbors=config.neighbors,
            m_pool_method=config.m_pool_method,
            norm_coors=config.norm_coors,
        )
        # The coordinates after the last layer do not depend on that layer's feature update
        # (LayerNorm and phi_h), which would get no gradient; frozen, as in irrepnet's egnn,
        # so that the package's layout and parameter count stay.
        last = self.network.layers[-1][1]
        last.node_norm.requires_grad_(False)
        last.node_mlp.requires_grad_(False)

    def forward(self, data):
        refuse_periodic(data, f"the {EGNN_PYTORCH} peer (every pair of a graph)", "use an irrepnet model")
        data = ensure_batch(cast_inputs(self, data))
        pad = Padding(data[K.BATCH], data[K.NUM_NODES])
        mask = pad.mask.unsqueeze(-1)
        x = pad.pad(data[K.POS])
        centroid = x.sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1)
        x = (x - centroid) * mask  # centred, zeros in empty slots
        h = self.embed(pad.pad(node_scalars(data, self.vectors, self.charge, norms=True)))
        edges = []
        if self.charge:
            q = pad.pad(data[K.CHARGE])  # [G, N, 1]
            edges.append(q.unsqueeze(2) * q.unsqueeze(1))
        if self.input_distance:
            edges.append((x.unsqueeze(2) - x.unsqueeze(1)).pow(2).sum(-1, keepdim=True))
        _, x_out = self.network(h, x, edges=torch.cat(edges, -1) if edges else None, mask=pad.mask)
        return {K.DISPLACEMENT: pad.unpad(x_out - x)}


@register_model(
    EGNN_PYTORCH,
    config=EGNNPytorchConfig,
    requires=("egnn_pytorch",),
    extra="peers",
    peer=True,
    description="peer: lucidrains' egnn-pytorch EGNN_Network (Satorras et al. 2021); E(3)",
)
def build_egnn_pytorch(config: EGNNPytorchConfig, task: TaskSpec) -> IrrepsModel:
    """Build the ``egnn-pytorch`` peer (needs the ``peers`` extra)."""
    if config.dim < 1 or config.depth < 1 or config.m_dim < 1 or config.neighbors < 0:
        raise ConfigError(f"{EGNN_PYTORCH}: need dim, depth, m_dim >= 1 and neighbors >= 0; got {config}")
    if config.m_pool_method not in ("sum", "mean"):
        raise ConfigError(f"{EGNN_PYTORCH}: m_pool_method must be 'sum' or 'mean', got {config.m_pool_method!r}")
    return EGNNPytorch(task, config)


# --- se3-transformer-pytorch ----------------------------------------------------


@dataclass
class SE3TransformerPytorchConfig:
    """Options of ``se3-transformer-pytorch`` (``SE3Transformer`` arguments; defaults: small).

    ``radial_hidden`` sets the width of every radial MLP, which the package fixes at
    ``RadialFunc``'s ``mid_dim=128`` (two 128x128 layers per pair of degrees, the bulk of
    its parameters); ``None`` keeps the package's 128.
    """

    dim: int = 16  # channels of every hidden degree
    depth: int = 2  # attention blocks
    heads: int = 4
    dim_head: int = 8
    num_degrees: int = 2  # hidden degrees 0 .. num_degrees - 1
    radial_hidden: int | None = None
    tie_key_values: bool = False
    linear_proj_keys: bool = False


@contextlib.contextmanager
def _radial_width(module, width: int | None):
    """While building, the package's ``RadialFunc`` with ``mid_dim=width`` (an argument its
    convolutions do not pass on); the module attribute is restored afterwards."""
    if width is None:
        yield
        return
    original = module.RadialFunc
    module.RadialFunc = functools.partial(original, mid_dim=width)
    try:
        yield
    finally:
        module.RadialFunc = original


class SE3TransformerPytorch(IrrepsModel):
    """``se3_transformer_pytorch.SE3Transformer``, type-1 output per node; see the module docstring."""

    symmetry = Symmetry.SE3

    def __init__(self, task: TaskSpec, config: SE3TransformerPytorchConfig):
        package = _import(SE3T_PYTORCH, "se3_transformer_pytorch.se3_transformer_pytorch")
        irreps_in, self.vectors, self.charge = _task_fields(task)
        super().__init__(irreps_in, {K.DISPLACEMENT: "1o"})
        scalars = node_scalars_width(task, self.vectors, self.charge, norms=False)
        channels = task.inputs[self.vectors].count("1o") if self.vectors else 0
        dim_in = (scalars, channels) if channels else scalars
        with _radial_width(package, config.radial_hidden):
            self.network = package.SE3Transformer(
                dim=config.dim,
                depth=config.depth,
                heads=config.heads,
                dim_head=config.dim_head,
                num_degrees=config.num_degrees,
                input_degrees=2 if channels else 1,
                dim_in=dim_in,
                out_fiber_dict={1: 1},
                tie_key_values=config.tie_key_values,
                linear_proj_keys=config.linear_proj_keys,
            )

    def forward(self, data):
        refuse_periodic(data, f"the {SE3T_PYTORCH} peer (every pair of a graph)", "use an irrepnet model")
        data = ensure_batch(cast_inputs(self, data))
        pad = Padding(data[K.BATCH], data[K.NUM_NODES], min_size=2)  # the package wants n - 1 >= 1 neighbours
        feats = {"0": pad.pad(node_scalars(data, self.vectors, self.charge, norms=False)).unsqueeze(-1)}
        if self.vectors is not None:
            feats["1"] = pad.pad(unpack_vectors(data[self.vectors]))  # [G, N, C, 3]
        out = self.network(feats, pad.pad(data[K.POS]), mask=pad.mask, return_type=1)  # [G, N, 1, 3]
        return {K.DISPLACEMENT: pad.unpad(out[:, :, 0])}


@register_model(
    SE3T_PYTORCH,
    config=SE3TransformerPytorchConfig,
    requires=("se3_transformer_pytorch",),
    extra="peers",
    peer=True,
    description="peer: lucidrains' se3-transformer-pytorch SE3Transformer (Fuchs et al. 2020); SE(3)",
)
def build_se3_transformer_pytorch(config: SE3TransformerPytorchConfig, task: TaskSpec) -> IrrepsModel:
    """Build the ``se3-transformer-pytorch`` peer (needs the ``peers`` extra)."""
    if min(config.dim, config.depth, config.heads, config.dim_head, config.num_degrees) < 1:
        raise ConfigError(f"{SE3T_PYTORCH}: dim, depth, heads, dim_head and num_degrees must be >= 1; got {config}")
    if config.radial_hidden is not None and config.radial_hidden < 1:
        raise ConfigError(f"{SE3T_PYTORCH}: radial_hidden must be >= 1 or None, got {config.radial_hidden}")
    return SE3TransformerPytorch(task, config)
