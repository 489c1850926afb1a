r"""Non-equivariant learned baselines: an MLP and a plain GNN on raw Cartesian numbers.

They claim no geometric symmetry (``symmetry = none``), so that the benefit of
equivariance is measured rather than assumed; the audit still reports their errors,
which shows it bites (rotation errors of order one).

- ``mlp``: one MLP on the flattened inputs of a whole graph,
  :math:`[x_1, v_1, q_1, \dots, x_N, v_N, q_N] \mapsto [\Delta x_1, \dots, \Delta x_N]`.
  It needs a fixed node count :math:`N` and sees nodes in their batch order, so it is
  not even permutation equivariant (``permutation_equivariant = False``).
- ``gnn``: the EGNN paper's GNN baseline (Satorras et al., ICML 2021, Table 2; Gilmer et
  al. 2017 message passing): node features :math:`h^0_i = [1, x_i, v_i, q_i]` and edge
  features :math:`e_{ij} = [x_i - x_j, \|x_i - x_j\|^2, q_i q_j, t_{ij}]` as plain numbers
  (:math:`t_{ij}` the one-hot chain separation on a task with bonds, :mod:`irrepnet.nn.topology`),

  .. math::

      m_{ij} = \phi_e(h_i, h_j, e_{ij}), \qquad
      h_i \leftarrow h_i + \phi_h\big(h_i, \textstyle\sum_{j \ne i} m_{ij}\big), \qquad
      \Delta x_i = \phi_{out}(h_i).

  Messages are summed over neighbours, so it is permutation equivariant (claimed and
  audited) but neither rotation nor translation equivariant.

Shapes/irreps
-------------
in: ``pos 1o (n, 3)``, and when the task has them ``vel 1o`` / ``vel_history hx1o``,
``charge 0e (n, 1)``; out: ``displacement 1o (n, 3)`` (the declared target irreps; the
claim ``none`` says the model does not honour them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import keys as K
from ..batch import ensure_batch
from ..compile import checking
from ..interface import IrrepsModel, Symmetry, TaskSpec, cast_inputs
from ..nn.egnn import activation
from ..nn.topology import CHAIN_CLASSES, chain_bonds, chain_separation_of
from ..registry import ConfigError, register_model
from ..scatter import segment_sum
from .egnn import graph_layer, velocity_vectors


def raw_node_fields(task: TaskSpec) -> list[str]:
    """Positions, then velocity channels and charge when the task has them."""
    fields = [K.POS]
    vec = velocity_vectors(task)
    if vec is not None:
        fields.append(vec)
    if task.inputs.get(K.CHARGE) is not None:
        fields.append(K.CHARGE)
    return fields


def _mlp(dims: list[int], act: str) -> nn.Sequential:
    """Linear layers through ``dims`` with ``act`` between them (none after the last)."""
    mods: list[nn.Module] = []
    for i in range(len(dims) - 1):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            mods.append(activation(act))
    return nn.Sequential(*mods)


def _reset_linears(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            m.reset_parameters()


class MLP(IrrepsModel):
    """MLP on the flattened inputs of each graph; fixed node count.

    Shapes/irreps
    -------------
    per graph: ``(N * F,)`` -> ``(N * 3,)``, with ``F`` the summed dims of the input fields.
    """

    symmetry = Symmetry.NONE
    permutation_equivariant = False

    def __init__(self, task: TaskSpec, num_nodes: int, hidden: int = 128, layers: int = 3, act: str = "silu"):
        fields = raw_node_fields(task)
        super().__init__({f: task.inputs[f] for f in fields}, {K.DISPLACEMENT: "1o"})
        self.fields, self.num_nodes = tuple(fields), int(num_nodes)
        width = sum(self.irreps_in[f].dim for f in fields)
        self.mlp = _mlp([num_nodes * width] + [hidden] * layers + [num_nodes * 3], act)

    def reset_parameters(self) -> None:
        _reset_linears(self)

    def forward(self, data):
        data = ensure_batch(cast_inputs(self, data))
        counts, batch = data[K.NUM_NODES], data[K.BATCH]
        wrong = counts != self.num_nodes
        if checking() and bool(wrong.any()):  # a host read: eager only
            g = int(wrong.nonzero()[0])
            raise ValueError(
                f"the mlp baseline was built for graphs of {self.num_nodes} nodes, but graph {g} of "
                f"the batch has {int(counts[g])} nodes; an MLP on flattened coordinates needs a fixed "
                "node count (use a graph model for other sizes)"
            )
        x = torch.cat([data[f] for f in self.fields], dim=-1)  # [n, F]
        order = torch.argsort(batch, stable=True)  # graph by graph, batch order inside each graph
        y = self.mlp(x[order].reshape(counts.numel(), -1)).reshape(-1, 3)  # [n, 3] in sorted order
        return {K.DISPLACEMENT: torch.zeros_like(y).index_copy(0, order, y)}

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, {super().extra_repr()}"


class MessagePassing(nn.Module):
    """One residual message-passing step on plain tensors (no irreps: the features are raw numbers).

    Shapes
    ------
    ``h (n, H)``, ``edge_index (2, E)``, ``e (E, D)`` -> ``(n, H)``
    """

    def __init__(self, hidden: int, edge_dim: int, act: str = "silu", residual: bool = True):
        super().__init__()
        self.edge_mlp = nn.Sequential(
            nn.Linear(2 * hidden + edge_dim, hidden), activation(act), nn.Linear(hidden, hidden), activation(act)
        )
        self.node_mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), activation(act), nn.Linear(hidden, hidden))
        self.residual = residual

    def forward(self, h, edge_index, e):
        send, recv = edge_index[0], edge_index[1]
        m = self.edge_mlp(torch.cat([h[recv], h[send], e], dim=-1))  # [E, H]
        out = self.node_mlp(torch.cat([h, segment_sum(m, recv, h.shape[0])], dim=-1))
        return h + out if self.residual else out


class GNN(IrrepsModel):
    """Plain message passing on raw coordinates; permutation equivariant only."""

    symmetry = Symmetry.NONE
    permutation_equivariant = True

    def __init__(
        self,
        task: TaskSpec,
        graph: nn.Module,
        hidden: int = 64,
        layers: int = 4,
        act: str = "silu",
        residual: bool = True,
    ):
        fields = raw_node_fields(task)
        self.chain = chain_bonds(task)
        irreps_in = {f: task.inputs[f] for f in fields}
        if self.chain:
            irreps_in[K.NODE_INDEX] = None
        super().__init__(irreps_in, {K.DISPLACEMENT: "1o"})
        self.fields, self.charge = tuple(fields), K.CHARGE in fields
        self.graph = graph
        in_dim = 1 + sum(self.irreps_in[f].dim for f in fields)
        edge_dim = 3 + 1 + int(self.charge) + CHAIN_CLASSES * int(self.chain)
        self.embedding = nn.Linear(in_dim, hidden)
        self.layers = nn.ModuleList(MessagePassing(hidden, edge_dim, act, residual) for _ in range(layers))
        self.decoder = _mlp([hidden, hidden, 3], act)

    def reset_parameters(self) -> None:
        _reset_linears(self)

    def forward(self, data):
        data = self.graph(cast_inputs(self, data))
        pos, ei = data[K.POS], data[K.EDGE_INDEX]
        h = self.embedding(torch.cat([pos.new_ones(pos.shape[0], 1)] + [data[f] for f in self.fields], dim=-1))
        e = [data[K.EDGE_VEC], data[K.EDGE_LEN].unsqueeze(-1).pow(2)]  # Cartesian numbers: not equivariant
        if self.charge:
            e.append(data[K.CHARGE][ei[1]] * data[K.CHARGE][ei[0]])
        if self.chain:
            e.append(chain_separation_of(data, ei, pos))
        e = torch.cat(e, dim=-1)  # [E, 4 + charge + 3 chain]
        for layer in self.layers:
            h = layer(h, ei, e)
        return {K.DISPLACEMENT: self.decoder(h)}


@dataclass
class MLPConfig:
    """Options of ``mlp``: ``layers`` hidden layers of width ``hidden``."""

    hidden: int = 128
    layers: int = 3
    act: str = "silu"


@dataclass
class GNNConfig:
    """Options of ``gnn`` (defaults: the EGNN paper's GNN baseline, 4 layers of 64, SiLU)."""

    hidden: int = 64
    layers: int = 4
    act: str = "silu"
    residual: bool = True
    graph: str = "full"  # "full" or "radius"
    radius: float | None = None  # in units of the fitted length (irrepnet.train.length) when trained


def _check_sizes(name: str, hidden: int, layers: int, act: str) -> None:
    if hidden < 1 or layers < 1:
        raise ConfigError(f"{name} needs hidden >= 1 and layers >= 1, got hidden={hidden}, layers={layers}")
    try:
        activation(act)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


@register_model(
    "mlp", config=MLPConfig, description="baseline: MLP on flattened coordinates; fixed node count, no symmetry"
)
def build_mlp(config: MLPConfig, task: TaskSpec) -> IrrepsModel:
    """Build the ``mlp`` baseline: an MLP on flattened coordinates (needs a fixed node count)."""
    if task.num_nodes is None:
        raise ConfigError(
            f"mlp needs a fixed node count, but task {task.name!r} has graphs of varying size "
            "(num_nodes is None); use a graph model"
        )
    _check_sizes("mlp", config.hidden, config.layers, config.act)
    return MLP(task, task.num_nodes, config.hidden, config.layers, config.act)


@register_model(
    "gnn", config=GNNConfig, description="baseline: message passing on raw coordinates; permutation equivariant only"
)
def build_gnn(config: GNNConfig, task: TaskSpec) -> IrrepsModel:
    """Build the ``gnn`` baseline: message passing on raw coordinates (permutation equivariant only)."""
    _check_sizes("gnn", config.hidden, config.layers, config.act)
    return GNN(task, graph_layer(config, task, "gnn"), config.hidden, config.layers, config.act, config.residual)
