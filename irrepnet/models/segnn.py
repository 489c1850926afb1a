r"""SEGNN: steerable E(3)-equivariant graph neural network.

Brandstetter, Hesselink, van der Pol, Bekkers, Welling, "Geometric and Physical
Quantities Improve E(3) Equivariant Message Passing", ICLR 2022 (arXiv:2110.02905).
Node and edge features are steerable (irreps up to ``lmax_hidden``), and every layer
is a steerable MLP conditioned on *attributes*, spherical harmonics of geometric and
physical quantities (:mod:`irrepnet.nn.steerable`):

.. math::

    a_{ij} = Y(x_i - x_j), \qquad
    a_i = \tfrac{1}{2}\Bigl(\frac{1}{|N(i)|}\sum_{j \in N(i)} Y(x_i - x_j) + Y(v_i)\Bigr),

    h^0_i = W_{a_i}\bigl[\,1,\ \|v_{i,c}\|,\ q_i,\ v_{i,c},\ x_i - \bar x\,\bigr], \qquad
    h^{t+1} = \text{SEGNNLayer}(h^t;\ a_{ij}, a_i, s_{ij}),

    \Delta x_i = W_{a_i}\,\text{Gate}\bigl(W_{a_i} h^L_i\bigr)\big|_{1o}

with :math:`v_i` the newest velocity (the node attribute; all velocity channels are
node features), :math:`\bar x` the centroid of the node's graph (so the features are
translation invariant), and invariant edge scalars :math:`s_{ij} = [q_i q_j,
\|x_i - x_j\|, t_{ij}]` (charge product when the task has charges; chain separation
on a task with bonds), as the paper's N-body model. The defaults are the paper's N-body
configuration: 4 layers, weight-balanced hidden irreps for 64 features with
``lmax_hidden = lmax_attr = 1`` (``32x0e + 32x1o``), no normalisation, full graph; two
departures keep the features at unit scale at initialisation: messages are averaged
rather than summed (``aggregation="sum"`` is the paper's), and :math:`a_i` is halved
when it has the velocity term (so that :math:`a^0_i = 1`, as :math:`a^0_{ij}`). The
steerable layers' weights are parametrised as in the paper's code
(``parametrization="linear"``: drawn like ``torch.nn.Linear``'s and applied unscaled,
rather than e3nn's unit-normal weights scaled by :math:`1/\sqrt{\text{fan-in}}`); with
Adam this learns several times faster (see :class:`SEGNNConfig`). The paper code's own N-body inputs and
scales are ``attr_normalization="integral"`` (:math:`Y^0 = 1/\sqrt{4\pi}`,
:math:`a_i = \frac{1}{|N(i)|}\sum_j a_{ij} + Y(v_i)`, not halved), ``node_charge=False``
(:math:`q_i` only in :math:`q_i q_j`), ``aggregation="sum"`` and ``readout_init_scale=1``
(``irrepnet/suites/nbody-segnn-paper.toml``). Every operation is
O(3) equivariant and reads positions only through differences and the centroid, so the
model claims E(3). On a periodic task (bulk_metal) the defaults ``graph="auto"`` and
``center_positions="auto"`` give a radius graph (cutoff
:data:`irrepnet.models.egnn.PERIODIC_RADIUS`) and no centroid feature (not defined when atoms
wrap across the cell); asking for either explicitly there is refused when the model is built.

Shapes/irreps
-------------
reads ``pos 1o`` and the task's ``vel``/``vel_history`` (``Cx1o``) and ``charge 0e``;
``node_attrs``/``edge_sh`` ``Y(0..lmax_attr)``; hidden ``node_features`` ``hidden_irreps``;
returns ``displacement (n, 3)`` ``1o``. On an energy task (molecules, atom types ``kx0e`` in
:math:`h^0`) the steerable readout goes to one ``0e`` per node, summed per graph and
differentiated: ``energy (G, 1)`` ``0e``, ``forces (n, 3)`` ``1o``
(:class:`~irrepnet.models.energy.EnergyModel`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from e3nn import o3

from .. import keys as K
from ..batch import ensure_batch
from ..graph._periodic import refuse_periodic
from ..interface import IrrepsModel, IrrepsModule, IrrepsSequential, Symmetry, TaskSpec, cast_inputs
from ..nn.embedding import SphericalHarmonicsEdgeAttrs, polynomial_cutoff
from ..nn.graph_layer import GraphConstruction, edge_rows, sum_at_receivers
from ..nn.parametrization import PARAMETRIZATIONS
from ..nn.steerable import AGGREGATIONS, SEGNNLayer, SteerableGated, SteerableLinear, weight_balanced_irreps
from ..nn.topology import chain_bonds
from ..registry import ConfigError, register_model
from ..scatter import segment_mean
from .egnn import InvariantInputs, config_errors, is_periodic, resolve_graph, velocity_vectors
from .energy import EnergyModel, wants_energy
from .tfn import average_neighbors

#: normalisations of the attributes' spherical harmonics (e3nn's names)
ATTR_NORMALIZATIONS = ("component", "integral")


@dataclass
class SEGNNConfig:
    """Options of ``segnn`` (defaults: the paper's N-body model)."""

    features: int = 64  # weight budget of the hidden irreps: a features x features linear layer
    lmax_hidden: int = 1  # hidden irreps l = 0..lmax_hidden, weight-balanced
    lmax_attr: int = 1  # spherical harmonics of the attributes, l = 0..lmax_attr
    hidden_irreps: str | None = None  # explicit hidden irreps instead of the weight-balanced ones
    layers: int = 4
    # of messages: "sum" (the paper), "mean", "normalized" (sum / avg_num_neighbors) or "auto":
    # mean on the full graph, normalized on a radius graph (where a mean would jump as edges
    # cross the cutoff). On a full graph of fixed size sum and mean differ by the constant N - 1,
    # but summed messages grew the features' std about 10x per layer at initialisation
    # (twelve_body and nbody, 4 layers: outputs of order 1e4, against 1-30 with mean)
    aggregation: str = "auto"
    avg_num_neighbors: float | None = None  # "normalized": None takes the task's measured mean (as tfn)
    # x_i - centroid as a node feature, as the paper's N-body inputs; "auto": on, except on periodic
    # tasks, where a centroid is not defined (atoms wrap across the cell)
    center_positions: bool | str = "auto"
    # of the attributes' spherical harmonics: "component" (entries of order 1; a_i is then halved when it
    # has the velocity term) or "integral" (the paper's code: Y^0 = 1/sqrt(4 pi), a_i = mean_j a_ij + Y(v_i))
    attr_normalization: str = "component"
    node_charge: bool = True  # q_i in h^0 (the paper's N-body inputs have only q_i q_j, on the edges)
    # the last layer's weights start this much smaller than the others: the untrained model's
    # displacement then starts near 0 instead of std 16 on nbody (targets: std 0.5). Measured
    # on nbody, 360 steps of the suite's protocol, seed 0: test MSE 0.050 with 0.01, 0.214 with 1
    readout_init_scale: float = 0.01
    # of the steerable layers' weights (SteerableLinear.reset_parameters): "linear" is the paper
    # code's (weights U(-k, k), k = 1/sqrt(fan-in), applied unscaled, like torch.nn.Linear), "e3nn"
    # e3nn's (N(0, 1), scaled by 1/sqrt(fan-in) in the forward). Same functions; under Adam the
    # "linear" steps are about sqrt(fan-in) times larger relative to the weights. Measured on nbody
    # (suite protocol, seed 0, development runs): validation MSE after 30 epochs 0.0088 with
    # "linear" against 0.0351 at epoch 25 and 0.0125 at epoch 100 with "e3nn"
    parametrization: str = "linear"
    # "full" (the paper), "radius" (messages faded out by a cutoff envelope) or "auto": full, but a
    # radius graph on periodic tasks (a full graph has no periodic images)
    graph: str = "auto"
    # in units of the fitted length (irrepnet.train.length) when trained; None on a periodic task:
    # irrepnet.models.egnn.PERIODIC_RADIUS (Å)
    radius: float | None = None


class SteerableInputs(IrrepsModule):
    r"""Steerable node features and the node attributes :math:`a_i` of SEGNN.

    Parameters
    ----------
    scalars : int
        width of the invariant ``node_features`` already written (``Fx0e``).
    vectors : str, optional
        the ``Cx1o`` velocity field: its channels become node features, its first
        channel (the newest velocity) goes into the node attribute.
    vector_irreps : Irreps, optional
        irreps of ``vectors``.
    irreps_attr : Irreps
        spherical harmonics of the attributes (as ``edge_sh``).
    center_positions : bool
        append :math:`x_i - \bar x` (graph centroid).
    r_max, avg_num_neighbors : float, optional
        on a radius graph: the edge term of :math:`a_i` is :math:`\sum_j u(r_{ij}) Y(x_i - x_j)
        / \bar n` (cutoff envelope :math:`u`, mean neighbour count :math:`\bar n`), which changes
        continuously as edges cross the cutoff, where a mean would jump.

    Shapes/irreps
    -------------
    reads ``node_features (n, F)`` ``Fx0e``, ``edge_sh (E, A.dim)``, ``edge_index (2, E)``,
    the vectors, ``pos`` (and the batch layout) when centring; writes ``node_features``
    ``Fx0e + Cx1o (+ 1x1o)`` and ``node_attrs (n, A.dim)``.
    """

    def __init__(
        self,
        scalars: int,
        irreps_attr,
        *,
        vectors: str | None = None,
        vector_irreps=None,
        center_positions: bool = True,
        r_max: float | None = None,
        avg_num_neighbors: float | None = None,
        attr_normalization: str = "component",
    ):
        irreps_attr = o3.Irreps(irreps_attr)
        self.attr_normalization = attr_normalization
        irreps_in = {K.NODE_FEATURES: f"{scalars}x0e", K.EDGE_SH: irreps_attr, K.EDGE_INDEX: None}
        if r_max is not None:
            if not (avg_num_neighbors and avg_num_neighbors > 0):
                raise ValueError(f"a cutoff needs avg_num_neighbors > 0, got {avg_num_neighbors!r}")
            irreps_in[K.EDGE_LEN] = None
        self.r_max, self.avg_num_neighbors = r_max, avg_num_neighbors
        features = o3.Irreps(f"{scalars}x0e")
        if vectors is not None:
            irreps_in[vectors] = o3.Irreps(vector_irreps)
            features = features + o3.Irreps(vector_irreps)
        if center_positions:
            irreps_in[K.POS] = "1o"  # and the batch layout (batch, num_nodes), as every layer may
            features = features + o3.Irreps("1x1o")
        super().__init__(irreps_in, {K.NODE_FEATURES: features, K.NODE_ATTRS: irreps_attr})
        self.vectors, self.center_positions = vectors, center_positions
        self.attr_degrees = [ir.l for _, ir in irreps_attr]

    def forward(self, data):
        h = [data[K.NODE_FEATURES]]
        n = h[0].shape[0]
        # the mean spherical harmonics of the edges a node receives: its local geometry
        if self.r_max is None:
            attrs = sum_at_receivers(edge_rows(data[K.EDGE_SH], data), data, n, mean=True)
        else:
            faded = data[K.EDGE_SH] * polynomial_cutoff(data[K.EDGE_LEN], self.r_max)[:, None]
            attrs = sum_at_receivers(edge_rows(faded, data), data, n) / self.avg_num_neighbors
        if self.vectors is not None:
            v = data[self.vectors]
            h.append(v)
            # halved so that a_i^0 = 1 as for a_ij: a steerable layer then keeps the scale of its input
            y_v = o3.spherical_harmonics(
                self.attr_degrees, v[:, :3], normalize=True, normalization=self.attr_normalization
            )
            attrs = 0.5 * (attrs + y_v) if self.attr_normalization == "component" else attrs + y_v
        if self.center_positions:
            refuse_periodic(data, "segnn with center_positions=True (x_i - centroid)", "set center_positions=False")
            layout = ensure_batch(data)
            pos, batch = data[K.POS], layout[K.BATCH]
            centroid = segment_mean(pos, batch, layout[K.NUM_NODES].numel())
            h.append(pos - centroid.index_select(0, batch))
        return {**data, K.NODE_FEATURES: torch.cat(h, dim=1), K.NODE_ATTRS: attrs}


class SteerableNodeMap(IrrepsModule):
    """``node_features`` through a steerable layer conditioned on ``node_attrs`` (embedding, readout).

    ``gated``: a gated steerable layer to ``irreps_out`` (then the hidden irreps of a gate);
    otherwise a steerable linear layer. ``out_field`` is where the result goes.
    """

    def __init__(self, irreps_in, irreps_attr, irreps_out, *, gated: bool = False, out_field: str = K.NODE_FEATURES):
        layer = (SteerableGated if gated else SteerableLinear)(irreps_in, irreps_attr, irreps_out)
        super().__init__({K.NODE_FEATURES: irreps_in, K.NODE_ATTRS: irreps_attr}, {out_field: layer.irreps_out})
        self.layer, self.out_field = layer, out_field

    def forward(self, data):
        return {**data, self.out_field: self.layer(data[K.NODE_FEATURES], data[K.NODE_ATTRS])}


class SEGNN(IrrepsModel):
    """Graph -> invariant inputs -> attributes -> embedding -> L x SEGNNLayer -> steerable readout.

    Built by :func:`build_segnn`; see the module docstring for the equations.
    """

    symmetry = Symmetry.E3

    def __init__(
        self,
        task: TaskSpec,
        hidden: o3.Irreps,
        *,
        lmax_attr: int,
        layers: int,
        aggregation: str,
        center_positions: bool,
        graph,
        r_max: float | None,
        avg_num_neighbors: float | None = None,
        readout_init_scale: float = 1.0,
        parametrization: str = "e3nn",
        node_charge: bool = True,
        attr_normalization: str = "component",
    ):
        charge = task.inputs.get(K.CHARGE) is not None
        output = K.NODE_ENERGY if wants_energy(task) else K.DISPLACEMENT
        vectors = velocity_vectors(task)
        # the distance itself, as the paper's code (its eq. 7 writes the square): on nbody the squared
        # distance has std 11 and grew the features to std 32 at initialisation, against 13 with r
        invariants = InvariantInputs(
            task.inputs,
            constant=True,
            vectors=vectors,
            charge=charge and node_charge,
            charge_product=charge,
            chain=chain_bonds(task),
            distance_power=1,
            species=task.inputs.get(K.SPECIES_ONEHOT) is not None,
        )
        sh = SphericalHarmonicsEdgeAttrs(lmax_attr, normalization=attr_normalization)
        attr = sh.sh_irreps
        inputs = SteerableInputs(
            invariants.num_features,
            attr,
            vectors=vectors,
            vector_irreps=task.inputs.get(vectors) if vectors else None,
            center_positions=center_positions,
            r_max=r_max,
            avg_num_neighbors=avg_num_neighbors,
            attr_normalization=attr_normalization,
        )
        modules = [graph, invariants, sh, inputs, SteerableNodeMap(inputs.irreps_out[K.NODE_FEATURES], attr, hidden)]
        modules += [
            SEGNNLayer(
                hidden,
                attr,
                invariants.edge_attr_dim,
                r_max=r_max,
                aggregation=aggregation,
                avg_num_neighbors=avg_num_neighbors,
            )
            for _ in range(layers)
        ]
        modules += [
            SteerableNodeMap(hidden, attr, hidden, gated=True),
            SteerableNodeMap(hidden, attr, "1x0e" if output == K.NODE_ENERGY else "1x1o", out_field=output),
        ]
        if parametrization != "e3nn":
            for module in torch.nn.ModuleList(modules).modules():
                if isinstance(module, SteerableLinear):
                    module.reset_parameters(parametrization)
        with torch.no_grad():
            for w in modules[-1].layer.parameters():
                w.mul_(readout_init_scale)
        chain = IrrepsSequential(*modules, irreps_in=task.inputs)
        super().__init__(chain.irreps_in, {output: chain.irreps_out[output]})
        self.chain, self.hidden_irreps, self.output = chain, hidden, output

    def forward(self, data):
        return {self.output: self.chain(cast_inputs(self, data))[self.output]}


def hidden_irreps_of(config: SEGNNConfig) -> o3.Irreps:
    """The hidden irreps: ``config.hidden_irreps``, or weight-balanced for ``features``."""
    attr = o3.Irreps.spherical_harmonics(config.lmax_attr)
    if config.hidden_irreps is None:
        return weight_balanced_irreps(config.features, config.lmax_hidden, attr)
    try:
        hidden = o3.Irreps(config.hidden_irreps)
    except (ValueError, AssertionError) as exc:
        raise ConfigError(
            f"segnn: invalid hidden_irreps {config.hidden_irreps!r} ({exc}); write e.g. '32x0e + 32x1o'"
        ) from exc
    if hidden.count("0e") == 0:
        raise ConfigError(f"segnn: hidden_irreps {hidden} need 0e channels (the gates' scalars and the biases)")
    return hidden


def center_positions_of(config: SEGNNConfig, task: TaskSpec) -> bool:
    """``config.center_positions`` resolved: ``"auto"`` is on except on a periodic task, where ``True`` is refused."""
    value = config.center_positions
    if value not in ("auto", True, False):
        raise ConfigError(f"segnn: center_positions must be 'auto', True or False, got {value!r}")
    periodic = is_periodic(task)
    if value == "auto":
        return not periodic
    if value and periodic:
        raise ConfigError(
            f"segnn: center_positions=True (x_i - centroid) is not defined on periodic task {task.name!r}; "
            "set center_positions=False (or 'auto')"
        )
    return value


@register_model(
    "segnn",
    config=SEGNNConfig,
    energy=True,
    description="SEGNN (Brandstetter et al. 2022): steerable MLPs on attributes Y(x_ij), Y(v); E(3)",
)
def build_segnn(config: SEGNNConfig, task: TaskSpec) -> IrrepsModel:
    """Steerable E(3) equivariant graph neural network."""
    if config.layers < 1:
        raise ConfigError(f"segnn: layers must be >= 1, got {config.layers}")
    if not config.readout_init_scale > 0:
        raise ConfigError(f"segnn: readout_init_scale must be > 0, got {config.readout_init_scale}")
    if config.lmax_attr < 1:
        raise ConfigError(f"segnn: lmax_attr must be >= 1 (edge directions are l = 1), got {config.lmax_attr}")
    if config.parametrization not in PARAMETRIZATIONS:
        raise ConfigError(f"segnn: parametrization must be one of {PARAMETRIZATIONS}, got {config.parametrization!r}")
    if config.attr_normalization not in ATTR_NORMALIZATIONS:
        raise ConfigError(
            f"segnn: attr_normalization must be one of {ATTR_NORMALIZATIONS}, got {config.attr_normalization!r}"
        )
    if config.aggregation not in ("auto",) + AGGREGATIONS:
        raise ConfigError(f"segnn: aggregation must be one of {('auto',) + AGGREGATIONS}, got {config.aggregation!r}")
    with config_errors("segnn"):
        hidden = hidden_irreps_of(config)
        kind, r_max = resolve_graph(config, task, "segnn")
        graph = GraphConstruction(kind, r=r_max)
        aggregation = config.aggregation
        if aggregation == "auto":
            aggregation = "mean" if r_max is None else "normalized"
        avg = None
        if r_max is not None:
            avg = config.avg_num_neighbors if config.avg_num_neighbors is not None else average_neighbors(task, r_max)
        model = SEGNN(
            task,
            hidden,
            lmax_attr=config.lmax_attr,
            layers=config.layers,
            aggregation=aggregation,
            center_positions=center_positions_of(config, task),
            graph=graph,
            r_max=r_max,
            avg_num_neighbors=avg,
            readout_init_scale=config.readout_init_scale,
            parametrization=config.parametrization,
            node_charge=config.node_charge,
            attr_normalization=config.attr_normalization,
        )
        return EnergyModel(model, symmetry=model.symmetry) if wants_energy(task) else model
