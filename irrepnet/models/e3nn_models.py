r"""e3nn's own models behind the interface: the reference network and the polynomial model.

- ``e3nn-reference``: ``e3nn.nn.models.gate_points_2101.Network`` (Geiger et al.,
  "e3nn: Euclidean neural networks", arXiv:2207.09453), the yardstick of the speed
  benchmark, configured as in the reference write-up: node inputs ``1x0e`` plus the
  task's velocities, hidden ``8x0e + 8x0o + 16x1e + 16x1o + 8x2e + 8x2o``, 3 gated
  layers, edge spherical harmonics up to ``l = 3``, radius 3.5, 10 Gaussian basis
  functions, radial MLP of 128 neurons, ``num_neighbors`` the task's measured mean
  neighbour count, output ``1x1o`` per node. Its forward runs unchanged except for the
  neighbour search: its own ``torch.cdist`` radius graph, whose matmul formula
  :math:`|x|^2 + |y|^2 - 2 x \cdot y` leaves a node about 1e-4 from itself in float32, keeps
  spurious self-loops (22 of the 384 nodes of a float32 12-body batch), so that the model is
  neither translation invariant (audit error 3e-2) nor reproducible; irrepnet's exact
  radius graph replaces it (``graph="e3nn"`` keeps e3nn's), see
  ``E3nnReference._network_forward``. e3nn >= 0.5 needs neither torch-cluster nor
  torch-scatter; older releases imported them, and :func:`load_gate_points` stands in.
- ``e3nn-polynomial``: the small model of the dmol-book chapter "Equivariant neural
  networks with e3nn" (A. D. White, *Deep Learning for Molecules and Materials*), after
  e3nn's polynomial example: no learned radial part, the output is a polynomial of the
  relative positions and node inputs,

  .. math::

      f_i = \bigl(1 \oplus v_i\bigr) \oplus \frac{1}{\sqrt{\bar n}} \sum_{j} Y(x_j - x_i),
      \qquad g = \mathrm{TP}_1(f, f), \qquad \Delta x_i = \mathrm{TP}_2(g, f)\big|_{1o}

  with :math:`Y` the *unnormalised* spherical harmonics (homogeneous polynomials of
  degree ``l``, e3nn ``normalize=False``) and ``TP`` e3nn ``FullyConnectedTensorProduct``.

Both claim E(3). On an energy task (molecules) ``e3nn-reference`` ends in ``1x0e`` per node
instead, summed per graph and differentiated (:class:`~irrepnet.models.energy.EnergyModel`):
``energy (G, 1)`` ``0e`` and ``forces (n, 3)`` ``1o``.

Shapes/irreps
-------------
reads ``pos 1o`` and the task's node inputs; returns ``displacement (n, 3)`` ``1o``.
"""

from __future__ import annotations

import copy
import importlib
import sys
import types
from dataclasses import dataclass

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace

from .. import keys as K
from ..batch import ensure_batch
from ..graph import radius_graph
from ..graph._periodic import refuse_periodic
from ..interface import IrrepsModel, IrrepsSequential, Symmetry, TaskSpec, cast_inputs
from ..irreps import refresh_wigner_3j
from ..nn import GraphConstruction, NodeInputs
from ..registry import ConfigError, register_model
from ..scatter import segment_sum
from .energy import EnergyModel, wants_energy
from .tfn import average_neighbors

_GATE_POINTS = "e3nn.nn.models.gate_points_2101"


def _stand_ins() -> dict:
    """Minimal ``torch_cluster``/``torch_scatter`` modules backed by irrepnet (for old e3nn)."""
    cluster = types.ModuleType("torch_cluster")
    cluster.radius_graph = lambda x, r, batch=None, loop=False, max_num_neighbors=32, **_: radius_graph(
        x, r, batch, backend="torch", max_num_neighbors=max_num_neighbors, loop=loop
    )
    scatter = types.ModuleType("torch_scatter")
    scatter.scatter = lambda src, index, dim=0, dim_size=None, reduce="sum", **_: segment_sum(
        src, index, int(index.max()) + 1 if dim_size is None else dim_size, backend="torch"
    )
    return {"torch_cluster": cluster, "torch_scatter": scatter}


def load_gate_points():
    """The ``gate_points_2101`` module, importable with or without torch-cluster/torch-scatter.

    e3nn >= 0.5 needs neither. Older releases import them at module level; when they are
    missing the module is imported once with irrepnet-backed stand-ins, only for that import
    (``sys.modules`` is restored, so nothing else sees a fake torch_cluster).
    """
    try:
        return importlib.import_module(_GATE_POINTS)
    except ImportError as exc:
        if exc.name not in ("torch_cluster", "torch_scatter"):
            raise
    saved = {name: sys.modules.get(name) for name in ("torch_cluster", "torch_scatter")}
    sys.modules.update(_stand_ins())
    try:
        return importlib.import_module(_GATE_POINTS)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _ExactConstants(IrrepsModel):
    """Keeps e3nn's Wigner-3j constants exact across ``.to(dtype)``, ``load_state_dict`` and deep copies.

    Subclasses store their constructor arguments in ``self._init_args = (args, kwargs)``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_load_state_dict_post_hook(lambda module, _keys: refresh_wigner_3j(module))

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        refresh_wigner_3j(self)
        return out

    def __deepcopy__(self, memo):
        # copy.deepcopy pickles e3nn's generated code; unpickling re-traces it with the
        # (float32-rounded) Wigner-3j constants folded into anonymous tensors that no
        # refresh can find, and the float64 audit of the copy then fails at ~1e-8. A copy
        # rebuilt from the constructor keeps named, exact constants.
        args, kwargs = copy.deepcopy(self._init_args, memo)
        with torch.random.fork_rng(devices=[]):  # the rebuild's random init must not move the RNG
            clone = type(self)(*args, **kwargs)
        param = next(self.parameters(), None)
        if param is not None:
            clone.to(device=param.device, dtype=param.dtype)
        clone.load_state_dict(self.state_dict())
        memo[id(self)] = clone
        return clone.train(self.training)


@dataclass
class E3nnReferenceConfig:
    """``gate_points_2101.Network`` settings; ``num_neighbors`` None: the task's measured mean."""

    irreps_hidden: str = "8x0e + 8x0o + 16x1e + 16x1o + 8x2e + 8x2o"
    layers: int = 3
    lmax: int = 3
    max_radius: float = 3.5  # in units of the fitted length (irrepnet.train.length) when trained
    number_of_basis: int = 10
    radial_layers: int = 1
    radial_neurons: int = 128
    num_neighbors: float | None = None
    graph: str = "irrepnet"  # neighbour search: "irrepnet" (exact) or "e3nn" (its own cdist, see the module docstring)


class E3nnReference(_ExactConstants):
    """``gate_points_2101.Network`` with ``x = 1x0e + <node inputs>``, one ``1x1o`` vector per node out
    (or with ``output="node_energy"`` one ``1x0e`` scalar per node)."""

    symmetry = Symmetry.E3

    def __init__(self, task: TaskSpec, config: E3nnReferenceConfig, output: str = K.DISPLACEMENT):
        if output not in (K.DISPLACEMENT, K.NODE_ENERGY):
            raise ValueError(f"E3nnReference output must be {K.DISPLACEMENT!r} or {K.NODE_ENERGY!r}, got {output!r}")
        inputs = NodeInputs(task.inputs)
        irreps_x = inputs.irreps_out[K.NODE_FEATURES]
        irreps_out = "1x0e" if output == K.NODE_ENERGY else "1x1o"
        super().__init__({K.POS: "1o", **inputs.irreps_in}, {output: irreps_out})
        self.inputs, self.graph, self.output = inputs, config.graph, output
        self.edges = GraphConstruction("radius", r=config.max_radius)
        self._degrees = list(range(config.lmax + 1))
        self._smooth_cutoff = load_gate_points().smooth_cutoff  # looked up once: imports do not trace
        self._init_args = ((task, config), {"output": output})
        num_neighbors = config.num_neighbors or average_neighbors(task, config.max_radius)
        self.network = load_gate_points().Network(
            irreps_in=irreps_x,
            irreps_hidden=config.irreps_hidden,
            irreps_out=irreps_out,
            irreps_node_attr=None,
            irreps_edge_attr=o3.Irreps.spherical_harmonics(config.lmax),
            layers=config.layers,
            max_radius=config.max_radius,
            number_of_basis=config.number_of_basis,
            radial_layers=config.radial_layers,
            radial_neurons=config.radial_neurons,
            num_neighbors=num_neighbors,
            num_nodes=float(task.num_nodes or 1),
            reduce_output=False,
        )

    def network_input(self, data) -> dict:
        """The dict ``gate_points_2101.Network`` takes: ``pos``, ``x`` (node inputs), ``batch``."""
        data = ensure_batch(cast_inputs(self, data))
        return {"pos": data[K.POS], "x": self.inputs(data)[K.NODE_FEATURES], "batch": data[K.BATCH]}

    def forward(self, data):
        if self.graph == "e3nn":
            refuse_periodic(data, "e3nn-reference with graph='e3nn' (e3nn's own radius graph)", "use graph='irrepnet'")
            return {self.output: self.network(self.network_input(data))}
        return {self.output: self._network_forward(self.edges(self.inputs(ensure_batch(cast_inputs(self, data)))))}

    def _network_forward(self, data) -> torch.Tensor:
        """``Network.forward``'s arithmetic, line for line, on irrepnet's exact radius graph.

        Taking the edges from :class:`~irrepnet.nn.GraphConstruction` (instead of swapping
        the module's ``radius_graph`` during the call) lets :mod:`irrepnet.compile` build
        them before the compiled region; the spherical harmonics get the degrees as ints,
        which ``torch.compile`` can guard on (e3nn's ``Irrep`` refuses ``len()``). e3nn
        calls the sender ``edge_src`` and takes ``pos[src] - pos[dst]``, the opposite of
        ``edge_vec``; messages go to ``edge_dst``, the receiver.
        """
        net = self.network
        edge_src, edge_dst = data[K.EDGE_INDEX][0], data[K.EDGE_INDEX][1]
        edge_vec = -data[K.EDGE_VEC]
        edge_sh = o3.spherical_harmonics(self._degrees, edge_vec, True, normalization="component")
        edge_length = edge_vec.norm(dim=1)
        edge_length_embedded = soft_one_hot_linspace(
            x=edge_length, start=0.0, end=net.max_radius, number=net.number_of_basis, basis="gaussian", cutoff=False
        ).mul(net.number_of_basis**0.5)
        edge_attr = self._smooth_cutoff(edge_length / net.max_radius)[:, None] * edge_sh
        x = data[K.NODE_FEATURES]
        z = x.new_ones((x.shape[0], 1))
        for lay in net.layers:
            x = lay(x, z, edge_src, edge_dst, edge_attr, edge_length_embedded)
        return x


@register_model(
    "e3nn-reference",
    config=E3nnReferenceConfig,
    energy=True,
    description="e3nn's gate_points_2101.Network as in the reference write-up (speed yardstick), E(3)",
)
def build_e3nn_reference(config: E3nnReferenceConfig, task: TaskSpec) -> IrrepsModel:
    """e3nn's reference network."""
    if config.layers < 0 or config.lmax < 1 or config.max_radius <= 0:
        raise ConfigError(f"e3nn-reference: need layers >= 0, lmax >= 1, max_radius > 0; got {config}")
    if config.graph not in ("irrepnet", "e3nn"):
        raise ConfigError(f"e3nn-reference: graph must be 'irrepnet' or 'e3nn', got {config.graph!r}")
    if config.graph == "e3nn" and task.extras.get("periodic"):  # e3nn's cdist graph knows no cells
        raise ConfigError(
            f"e3nn-reference: graph='e3nn' has no periodic images and task {task.name!r} is periodic; "
            "set graph='irrepnet'"
        )
    if wants_energy(task):
        return EnergyModel(E3nnReference(task, config, output=K.NODE_ENERGY), symmetry=Symmetry.E3)
    return E3nnReference(task, config)


@dataclass
class E3nnPolynomialConfig:
    """The dmol-book polynomial model: summed spherical harmonics and two tensor products."""

    lmax: int = 2  # spherical harmonics summed over neighbours, l = 0..lmax
    hidden_irreps: str = "8x0e + 8x0o + 8x1e + 8x1o + 4x2e + 4x2o"  # output of the first tensor product
    graph: str = "full"  # "full" or "radius"
    r_max: float = 3.5  # radius graph only; in units of the fitted length (irrepnet.train.length) when trained
    avg_num_neighbors: float | None = None  # None: measured / num_nodes - 1


class E3nnPolynomial(_ExactConstants):
    """Polynomial equivariant model: ``TP_2(TP_1(f, f), f)`` with ``f = inputs + sum_j Y(x_j - x_i)``."""

    symmetry = Symmetry.E3

    def __init__(self, task_inputs, *, lmax: int, hidden_irreps, graph: str, r_max: float, avg_num_neighbors: float):
        inputs = NodeInputs(task_inputs)
        self.sh_irreps = o3.Irreps.spherical_harmonics(lmax)
        self._degrees = list(range(lmax + 1))  # what the forward reads: ints, not Irreps (torch.compile)
        chain = IrrepsSequential(
            inputs, GraphConstruction(graph, r=r_max if graph == "radius" else None), irreps_in=task_inputs
        )
        super().__init__(chain.irreps_in, {K.DISPLACEMENT: "1o"})
        self.chain = chain
        self.irreps_f = inputs.irreps_out[K.NODE_FEATURES] + self.sh_irreps
        self.tp1 = o3.FullyConnectedTensorProduct(self.irreps_f, self.irreps_f, hidden_irreps)
        self.tp2 = o3.FullyConnectedTensorProduct(self.tp1.irreps_out, self.irreps_f, "1x1o")
        self.avg_num_neighbors = float(avg_num_neighbors)
        self._init_args = (
            (task_inputs,),
            dict(lmax=lmax, hidden_irreps=hidden_irreps, graph=graph, r_max=r_max, avg_num_neighbors=avg_num_neighbors),
        )

    def forward(self, data):
        d = self.chain(cast_inputs(self, data))
        # x_j - x_i = -edge_vec; normalize=False keeps Y_l a degree-l polynomial of it
        y = o3.spherical_harmonics(self._degrees, -d[K.EDGE_VEC], normalize=False, normalization="component")
        summed = segment_sum(y, d[K.EDGE_INDEX][1], d[K.POS].shape[0]) / self.avg_num_neighbors**0.5
        f = torch.cat([d[K.NODE_FEATURES], summed], dim=1)
        return {K.DISPLACEMENT: self.tp2(self.tp1(f, f), f)}


@register_model(
    "e3nn-polynomial",
    config=E3nnPolynomialConfig,
    description="dmol-book polynomial model: tensor products of summed spherical harmonics, E(3)",
)
def build_e3nn_polynomial(config: E3nnPolynomialConfig, task: TaskSpec) -> IrrepsModel:
    """Polynomial model without a learned radial part."""
    if config.lmax < 1:
        raise ConfigError(f"e3nn-polynomial: lmax must be >= 1, got {config.lmax}")
    if config.graph not in ("full", "radius"):
        raise ConfigError(f"e3nn-polynomial: graph must be 'full' or 'radius', got {config.graph!r}")
    hidden = o3.Irreps(config.hidden_irreps)
    f = NodeInputs(task.inputs).irreps_out[K.NODE_FEATURES] + o3.Irreps.spherical_harmonics(config.lmax)
    if not any(o3.Irrep("1o") in ir1 * ir2 for _, ir1 in hidden for _, ir2 in f):
        raise ConfigError(f"e3nn-polynomial: no tensor-product path from {hidden} x {f} to 1o")
    avg = config.avg_num_neighbors
    if avg is None:  # a full graph has num_nodes - 1 neighbours
        avg = (
            average_neighbors(task, config.r_max)
            if config.graph == "radius"
            else float(max((task.num_nodes or 2) - 1, 1))
        )
    return E3nnPolynomial(
        task.inputs,
        lmax=config.lmax,
        hidden_irreps=hidden,
        graph=config.graph,
        r_max=config.r_max,
        avg_num_neighbors=avg,
    )
