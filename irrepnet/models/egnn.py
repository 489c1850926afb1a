r"""The EGNN family: EGNN, EGNN with velocity, and the radial field.

Registered models (all claim E(3), all predict ``displacement = x^L - x^0``):

- ``egnn``: Satorras, Hoogeboom, Welling, "E(n) Equivariant Graph Neural Networks",
  ICML 2021 (https://arxiv.org/abs/2102.09844), 4 layers of width 64, SiLU, residual
  features, mean coordinate aggregation (the paper's code). :math:`h^0` are the
  invariants of the task inputs: a constant, the norm of every velocity channel and
  the charge, embedded by a ``Linear``.
- ``egnn-vel``: the same paper's velocity variant (eq. 7, ``EGNN_vel`` of its code),
  :math:`x^{l+1} = x^l + \phi_v(h^l) v^{init} + C\sum_j (x^l_i - x^l_j)\phi_x(m_{ij})`,
  :math:`h^0 = |v|` (the norm of every velocity channel) embedded by a ``Linear``.
- ``radial-field``: Köhler, Klein, Noé, "Equivariant flows" (2019), the EGNN paper's
  Table 2 baseline (``RF_vel`` of its code): :math:`x^{l+1}_i = x^l_i + C\sum_j (x^l_i -
  x^l_j)\,\phi(\|x^l_i - x^l_j\|, a_{ij}) + \phi_v(|v_i|) v_i`, the velocity term only when
  the task has velocities.

Edge attributes :math:`a_{ij}` are fixed for all layers, as in the paper's N-body
experiment: :math:`q_i q_j` when the task has charges, and
:math:`\|x^0_i - x^0_j\|^2`, the squared distance between the *input* positions; on a
task with bonds also the one-hot chain separation (:mod:`irrepnet.nn.topology`).

The graph is built inside the model (:class:`~irrepnet.nn.GraphConstruction`): full
by default, as in the paper for these small systems; ``graph="radius"`` with
``radius`` gives a radius graph. On a periodic task (``task.extras["periodic"]``,
bulk_metal) the default ``graph="auto"`` is a radius graph instead, since a full graph
has no periodic images; ``radius`` then defaults to :data:`PERIODIC_RADIUS` (Å), and an
explicit ``graph="full"`` is refused when the model is built (:func:`resolve_graph`).

Shapes/irreps
-------------
in: ``pos 1o (n, 3)``, and when the task has them ``vel 1o``, ``vel_history hx1o``,
``charge 0e (n, 1)``, ``species_onehot kx0e``; out: ``displacement 1o (n, 3)``. On an
energy task (molecules) ``egnn`` reads its invariant features :math:`h^L` with a linear
:class:`~irrepnet.nn.ScalarHead`, one ``0e`` per atom, summed per graph and differentiated
(:class:`~irrepnet.models.energy.EnergyModel`): ``energy 0e (G, 1)``, ``forces 1o (n, 3)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from e3nn import o3

from .. import keys as K
from ..interface import IrrepsModel, IrrepsModule, IrrepsSequential, SequentialModel, Symmetry, TaskSpec, cast_inputs
from ..irreps import unpack_vectors
from ..nn.egnn import COORD_SHIFT, EDGE_ATTRS, EGNNLayer, RadialFieldLayer, ScalarEmbedding
from ..nn.graph_layer import GraphConstruction
from ..nn.heads import ScalarHead
from ..nn.topology import CHAIN_CLASSES, chain_bonds, chain_separation_of
from ..registry import ConfigError, register_model
from .energy import EnergyModel, wants_energy


class InvariantInputs(IrrepsModule):
    r"""E(3)-invariant inputs of the coordinate-updating models, and a zero coordinate shift.

    .. math::

        h^0_i = [\,1,\ \|v_{i,1}\|, \dots, \|v_{i,C}\|,\ q_i,\ z_i\,], \qquad
        a_{ij} = [\,q_i q_j,\ \|x^0_i - x^0_j\|^2,\ t_{ij}\,], \qquad s^0_i = 0

    each part only when asked for and present; :math:`z_i` is the one-hot atom type
    (``species_onehot``, molecules) and :math:`t_{ij}` the one-hot chain separation of
    :mod:`irrepnet.nn.topology` (bonded, angle partners, other).

    Parameters
    ----------
    task_inputs : dict
        the task spec's inputs.
    constant : bool
        start :math:`h^0` with a 1 (so that :math:`h^0` is never empty).
    vectors : str, optional
        a ``Cx1o`` field whose channel norms go into :math:`h^0`.
    charge, charge_product : bool
        :math:`q_i` in :math:`h^0`; :math:`q_i q_j` in :math:`a_{ij}`.
    species : bool
        :math:`z_i` (the task's ``species_onehot``, ``kx0e``) in :math:`h^0`.
    input_distance : bool
        :math:`\|x^0_i - x^0_j\|^2` in :math:`a_{ij}`.
    distance_power : {1, 2}
        the power of that distance (2: the EGNN paper; 1: SEGNN's code).
    chain : bool
        :math:`t_{ij}` in :math:`a_{ij}` (reads ``node_index``; for tasks with bonds).

    Shapes/irreps
    -------------
    reads ``pos 1o``, the chosen fields, ``edge_index``, ``edge_len (E,)``; writes
    ``node_features (n, F)`` ``Fx0e`` (if ``F > 0``), ``edge_attrs (E, K)`` ``Kx0e``
    (if ``K > 0``), ``coord_shift (n, 3)`` ``1o``.
    """

    def __init__(
        self,
        task_inputs: Mapping[str, object],
        *,
        constant: bool = True,
        vectors: str | None = None,
        charge: bool = False,
        charge_product: bool = False,
        input_distance: bool = True,
        chain: bool = False,
        distance_power: int = 2,
        species: bool = False,
    ):
        if distance_power not in (1, 2):
            raise ValueError(f"distance_power must be 1 or 2, got {distance_power}")
        irreps_in = {K.POS: "1o", K.EDGE_INDEX: None, K.EDGE_LEN: None}
        if chain:
            irreps_in[K.NODE_INDEX] = None
        n_vec = 0
        if vectors is not None:
            ir = o3.Irreps(task_inputs[vectors])
            if ir.count("1o") * 3 != ir.dim:
                raise ValueError(f"InvariantInputs takes norms of a Cx1o field; {vectors!r} has irreps {ir}")
            irreps_in[vectors], n_vec = ir, ir.count("1o")
        if charge or charge_product:
            irreps_in[K.CHARGE] = "0e"
        n_species = 0
        if species:
            ir = o3.Irreps(task_inputs[K.SPECIES_ONEHOT])
            if ir.count("0e") != ir.dim:
                raise ValueError(f"InvariantInputs: {K.SPECIES_ONEHOT!r} must be kx0e, got {ir}")
            irreps_in[K.SPECIES_ONEHOT], n_species = ir, ir.dim
        num_features = int(constant) + n_vec + int(charge) + n_species
        edge_attr_dim = int(charge_product) + int(input_distance) + CHAIN_CLASSES * int(chain)
        irreps_out = {COORD_SHIFT: "1o"}
        if num_features:
            irreps_out[K.NODE_FEATURES] = f"{num_features}x0e"
        if edge_attr_dim:
            irreps_out[EDGE_ATTRS] = f"{edge_attr_dim}x0e"
        super().__init__(irreps_in, irreps_out)
        self.num_features, self.edge_attr_dim = num_features, edge_attr_dim
        self.constant, self.vectors, self.charge = constant, vectors, charge
        self.charge_product, self.input_distance, self.chain = charge_product, input_distance, chain
        self.distance_power, self.species = distance_power, species

    def forward(self, data):
        pos = data[K.POS]
        out = {**data, COORD_SHIFT: torch.zeros_like(pos)}
        h = [pos.new_ones(pos.shape[0], 1)] if self.constant else []
        if self.vectors is not None:
            h.append(torch.linalg.vector_norm(unpack_vectors(data[self.vectors]), dim=-1))  # [n, C]
        if self.charge:
            h.append(data[K.CHARGE])
        if self.species:
            h.append(data[K.SPECIES_ONEHOT])
        if h:
            out[K.NODE_FEATURES] = torch.cat(h, dim=-1)
        a = []
        if self.charge_product:
            q, ei = data[K.CHARGE], data[K.EDGE_INDEX]
            a.append(q[ei[1]] * q[ei[0]])
        if self.input_distance:
            r = data[K.EDGE_LEN].unsqueeze(-1)
            a.append(r * r if self.distance_power == 2 else r)
        if self.chain:
            a.append(chain_separation_of(data, data[K.EDGE_INDEX], pos))
        if a:
            out[EDGE_ATTRS] = torch.cat(a, dim=-1)
        return out


class CoordinateModel(IrrepsModel):
    """A checked chain of layers that moves the nodes; the displacement is the total shift.

    The chain (graph construction, invariant inputs, layers) is an
    :class:`~irrepnet.interface.IrrepsSequential`, so a layer reading a field with the
    wrong irreps fails at construction, naming the field.
    """

    symmetry = Symmetry.E3

    def __init__(self, task: TaskSpec, *modules: IrrepsModule):
        net = IrrepsSequential(*modules, irreps_in=task.inputs)
        super().__init__(net.irreps_in, {K.DISPLACEMENT: "1o"})
        self.net = net

    def forward(self, data):
        return {K.DISPLACEMENT: self.net(cast_inputs(self, data))[COORD_SHIFT]}  # x^L - x^0 [n, 3]


class EGNN(CoordinateModel):
    """EGNN or EGNN with velocity (Satorras et al. 2021); see the module docstring."""


class RadialField(CoordinateModel):
    """Radial field (Köhler et al. 2019); see the module docstring."""


@dataclass
class EGNNConfig:
    """Options of ``egnn`` (defaults: the EGNN paper's N-body model)."""

    hidden: int = 64
    layers: int = 4
    act: str = "silu"
    residual: bool = True  # "recurrent" in the paper's code
    attention: bool = False
    normalize: bool = False
    tanh: bool = False
    coords_range: float = 1.0  # bound of phi_x when tanh
    coords_agg: str = "mean"  # "mean" (C = 1/(M-1)) or "sum"
    coords_weight: float = 1.0
    graph: str = "auto"  # "full", "radius" or "auto": full, but a radius graph on periodic tasks
    # in units of the fitted length (irrepnet.train.length) when trained; None on a periodic task: PERIODIC_RADIUS
    radius: float | None = None


@dataclass
class EGNNVelConfig(EGNNConfig):
    """Options of ``egnn-vel``: the same as ``egnn`` (defaults: the paper's ``EGNN_vel``)."""


@dataclass
class RadialFieldConfig:
    """Options of ``radial-field`` (defaults: the EGNN paper code's ``RF_vel``)."""

    hidden: int = 64
    layers: int = 4
    act: str = "silu"
    coords_agg: str = "mean"
    coords_weight: float = 1.0
    graph: str = "full"
    radius: float | None = None  # in units of the fitted length (irrepnet.train.length) when trained


#: default cutoff (Å: energy tasks read positions unscaled) of a radius graph on a periodic
#: task when the config leaves ``radius`` unset: 4.0 on bulk_metal, between the second (3.61 Å)
#: and third (4.42 Å) neighbour shells of fcc Cu (``irrepnet/suites/bulk-metal.toml``); tfn's
#: fallback cutoff of 3.5 on other periodic tasks.
PERIODIC_RADIUS = {"bulk_metal": 4.0}


def is_periodic(task: TaskSpec) -> bool:
    """Whether ``task`` has periodic cells (``task.extras["periodic"]``, as tfn and mace read it)."""
    return bool(task.extras.get("periodic"))


def resolve_graph(config, task: TaskSpec, model: str) -> tuple[str, float | None]:
    """``(kind, radius)`` of the model's graph from ``config.graph`` / ``config.radius`` and the task.

    ``"auto"`` is ``"full"`` (unchanged on the non-periodic tasks) except on a periodic task,
    where it is ``"radius"``; there an unset ``radius`` is :data:`PERIODIC_RADIUS` of the
    task (3.5 if not listed). A full graph on a periodic task, and every bad value, is a
    one-line :class:`~irrepnet.registry.ConfigError` naming the config key to set.
    """
    periodic = is_periodic(task)
    kind = config.graph
    if kind not in ("auto", "full", "radius"):
        raise ConfigError(f"{model}: unknown graph {kind!r}; choose 'auto', 'full' or 'radius'")
    if kind == "auto":
        kind = "radius" if periodic else "full"
    if kind == "full":
        if periodic:
            raise ConfigError(
                f"{model}: graph='full' has no periodic images and task {task.name!r} is periodic; "
                "set graph='radius' (or 'auto')"
            )
        return kind, None
    radius = config.radius
    if radius is None and periodic:
        radius = PERIODIC_RADIUS.get(task.name, 3.5)
    if radius is None or not radius > 0:
        raise ConfigError(f"{model}: graph='radius' needs radius > 0, got radius={config.radius}")
    return kind, float(radius)


def graph_layer(config, task: TaskSpec, model: str) -> GraphConstruction:
    """The model's graph layer (:func:`resolve_graph`); bad values are a ConfigError."""
    kind, radius = resolve_graph(config, task, model)
    return GraphConstruction(kind, r=radius)


@contextlib.contextmanager
def config_errors(model: str):
    """Report a layer's refusal of an option (ValueError) as a ConfigError of ``model``."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{model}: {exc}") from exc


def velocity_vectors(task: TaskSpec) -> str | None:
    """The task's velocity channels: the history when given (its first block is ``vel``), else ``vel``."""
    for name in (K.VEL_HISTORY, K.VEL):
        if task.inputs.get(name) is not None:
            return name
    return None


def _egnn_layers(config: EGNNConfig, edge_attr_dim: int, velocity: bool, energy: bool = False):
    if config.layers < 1:
        raise ConfigError(f"layers must be >= 1, got {config.layers}")
    layers = [
        EGNNLayer(
            config.hidden,
            config.hidden,
            config.hidden,
            edge_attr_dim,
            act=config.act,
            residual=config.residual,
            attention=config.attention,
            normalize=config.normalize,
            tanh=config.tanh,
            coords_range=config.coords_range,
            coords_agg=config.coords_agg,
            coords_weight=config.coords_weight,
            velocity=velocity,
        )
        for _ in range(config.layers)
    ]
    # x^L depends on h^{L-1} only, so the last phi_h cannot reach the displacement and would
    # get no gradient. It stays, frozen, so that the layers keep the paper's layout and
    # parameter count. An energy head reads h^L instead: then the last phi_x is the one that
    # reaches no output (h^L depends on x^{L-1}, not on x^L), and it is the one frozen.
    (layers[-1].coord_mlp if energy else layers[-1].node_mlp).requires_grad_(False)
    return layers


@register_model(
    "egnn",
    config=EGNNConfig,
    energy=True,
    description="EGNN (Satorras et al. 2021): invariant messages, coordinate updates; E(3)",
)
def build_egnn(config: EGNNConfig, task: TaskSpec) -> IrrepsModel:
    """EGNN; on an energy task the energy is a linear readout of the invariant features h^L, summed."""
    charge = task.inputs.get(K.CHARGE) is not None
    energy = wants_energy(task)
    with config_errors("egnn"):
        graph = graph_layer(config, task, "egnn")
        inputs = InvariantInputs(
            task.inputs,
            constant=True,
            vectors=velocity_vectors(task),
            charge=charge,
            charge_product=charge,
            chain=chain_bonds(task),
            species=task.inputs.get(K.SPECIES_ONEHOT) is not None,
        )
        layers = _egnn_layers(config, inputs.edge_attr_dim, velocity=False, energy=energy)
        modules = (graph, inputs, ScalarEmbedding(inputs.num_features, config.hidden), *layers)
        if energy:
            head = ScalarHead(f"{config.hidden}x0e", per_graph=False)
            return EnergyModel(
                SequentialModel(*modules, head, irreps_in=task.inputs, outputs=[K.NODE_ENERGY], symmetry=Symmetry.E3),
                symmetry=Symmetry.E3,
            )
        return EGNN(task, *modules)


@register_model(
    "egnn-vel", config=EGNNVelConfig, description="EGNN with velocity (Satorras et al. 2021, eq. 7, EGNN_vel); E(3)"
)
def build_egnn_vel(config: EGNNVelConfig, task: TaskSpec) -> IrrepsModel:
    """Build ``egnn-vel``: EGNN with a velocity update (needs a velocity input)."""
    if task.inputs.get(K.VEL) is None:
        raise ConfigError(
            f"egnn-vel needs a velocity input; task {task.name!r} has none (on twelve_body use a history length >= 1)"
        )
    charge = task.inputs.get(K.CHARGE) is not None
    with config_errors("egnn-vel"):
        graph = graph_layer(config, task, "egnn-vel")
        # h^0 = |v| alone and a_ij = [q_i q_j, |x_i^0 - x_j^0|^2], as in the paper's N-body code
        inputs = InvariantInputs(
            task.inputs,
            constant=False,
            vectors=velocity_vectors(task),
            charge=False,
            charge_product=charge,
            chain=chain_bonds(task),
        )
        layers = _egnn_layers(config, inputs.edge_attr_dim, velocity=True)
        return EGNN(task, graph, inputs, ScalarEmbedding(inputs.num_features, config.hidden), *layers)


@register_model(
    "radial-field", config=RadialFieldConfig, description="radial field (Köhler et al. 2019; EGNN paper's RF_vel); E(3)"
)
def build_radial_field(config: RadialFieldConfig, task: TaskSpec) -> IrrepsModel:
    """Build ``radial-field``: the radial field model of Köhler et al. (2019)."""
    charge = task.inputs.get(K.CHARGE) is not None
    velocity = task.inputs.get(K.VEL) is not None
    with config_errors("radial-field"):
        if config.layers < 1:
            raise ConfigError(f"layers must be >= 1, got {config.layers}")
        graph = graph_layer(config, task, "radial-field")
        inputs = InvariantInputs(task.inputs, constant=False, charge_product=charge, chain=chain_bonds(task))
        layers = [
            RadialFieldLayer(
                inputs.edge_attr_dim,
                config.hidden,
                act=config.act,
                velocity=velocity,
                coords_agg=config.coords_agg,
                coords_weight=config.coords_weight,
            )
            for _ in range(config.layers)
        ]
        return RadialField(task, graph, inputs, *layers)
