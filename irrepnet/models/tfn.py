r"""Tensor field network: tensor-product convolutions with gated nonlinearities.

Thomas et al. 2018, "Tensor field networks: rotation- and translation-equivariant
neural networks for 3D point clouds" (arXiv:1802.08219), in the NequIP form
(Batzner et al. 2022: radial MLP on a radial basis with a smooth cutoff, gates,
self-connections):

.. math::

    h^{(0)}_i = 1 \oplus v_i \oplus \dots, \qquad
    h^{(t+1)} = \text{Gate}\bigl(\text{TPConv}(h^{(t)})\bigr), \qquad
    \Delta x_i = W\, h^{(L)}_i\big|_{1o}

The graph, the spherical harmonics :math:`Y(\hat r_{ij})` and the radial embedding of
:math:`r_{ij}` are computed once per batch and shared by the :math:`L` layers. The
graph is the radius graph, or with ``graph="auto"`` (the default) the full graph for
small fixed-size systems: messages vanish at the cutoff, so both compute the same function. Every
operation is O(3) equivariant and acts on differences of positions, so the model
claims E(3).

*Weight parametrisation (issue 12).* ``parametrization="linear"`` (the default) stores the
weights of the self-interactions, the mixing ``o3.Linear`` and the radial MLPs as
``torch.nn.Linear`` does, rather than as e3nn does (times :math:`\sqrt{\text{fan-in}}`,
which makes Adam move the applied weights several times more slowly; see
:mod:`irrepnet.nn.parametrization`). Development runs, the quick suite's protocol
(twelve_body, 200 steps), test MSE of seeds 0/1: 6.9e-7/6.8e-7, against 6.2e-6 (seed 0)
with ``"e3nn"``. A checkpoint from before loads as the same function.

Shapes/irreps
-------------
reads ``pos 1o`` and the task's node inputs (``vel``/``vel_history``/``charge``);
hidden ``node_features`` ``hidden_irreps``; returns ``displacement (n, 3)`` ``1o``, or on an
energy task (molecules) ``energy (G, 1)`` ``0e`` and ``forces (n, 3)`` ``1o``: the ``0e`` part of
the last features read by a linear :class:`~irrepnet.nn.ScalarHead`, summed per graph, and
differentiated (:class:`~irrepnet.models.energy.EnergyModel`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from e3nn import o3

from .. import keys as K
from ..interface import IrrepsModel, IrrepsSequential, Symmetry, TaskSpec, cast_inputs
from ..nn import GraphConstruction, NodeInputs, RadialEmbedding, ScalarHead, SphericalHarmonicsEdgeAttrs, VectorHead
from ..nn.embedding import E3NN_BASES
from ..nn.gate import Gate
from ..nn.graph_layer import auto_graph_kind
from ..nn.parametrization import PARAMETRIZATIONS, use_linear_parametrization
from ..nn.topology import chain_bonds
from ..nn.tp_conv import NORMALIZATIONS, SKIPS, TensorProductConv
from ..registry import ConfigError, register_model
from .energy import EnergyModel, wants_energy

logger = logging.getLogger(__name__)

#: cutoff per task when the config leaves ``r_max`` unset. A trained model reads positions
#: divided by the length fitted on its training data (:mod:`irrepnet.train.length`), so
#: cutoffs are in that unit: 3.5 on twelve_body (4.1 in the reference file's unit, where
#: the fitted length is 1.17: every pair, as the 3.5 of before); 2.5 on nbody (10.4 in its
#: unit, fitted length 4.14; before the fitted length it was 10 in the data's unit); 4.0 Å on
#: bulk_metal (energy tasks read Å): fcc Cu's first two neighbour shells (2.55 and 3.61 Å), 0.4 Å
#: short of the third (the bulk-metal suite's cutoff; 3.5 would take the first shell alone).
DEFAULT_R_MAX = {"twelve_body": 3.5, "nbody": 2.5, "bulk_metal": 4.0}

#: mean neighbours per node within ``r``, measured on the training split with
#: ``irrepnet.graph.build_graph(batch, "radius", r=r)`` on the positions divided by the
#: fitted length: the shipped reference trajectory (every 7th training frame) and the
#: nbody training set (every 3rd sample); molecules (no fitted length on energy tasks:
#: Å) on its training set (default sizes, every 3rd molecule; ASE 3.29's G2 and EMT); bulk_metal
#: (periodic, Å) on every 4th of the first 120 training frames (17.76; the bulk-metal suite's cutoff).
MEASURED_NEIGHBORS = {
    ("twelve_body", 3.5): 11.0,
    ("nbody", 2.5): 3.99,
    ("nbody", 3.5): 4.0,
    ("nbody", 5.0): 4.0,
    ("nbody", 10.0): 4.0,
    ("molecules", 3.5): 6.61,
    ("molecules", 5.0): 7.56,
    ("bulk_metal", 4.0): 17.8,
}


def average_neighbors(task: TaskSpec, r_max: float) -> float:
    """Measured mean neighbour count for ``task`` at cutoff ``r_max``; ``num_nodes - 1`` (a full graph) otherwise."""
    measured = MEASURED_NEIGHBORS.get((task.name, float(r_max)))
    if measured is not None:
        return measured
    if task.num_nodes is None:  # graphs of any size (your own energy file): nothing to measure from here
        logger.warning(
            "no measured mean neighbour count for task %r at cutoff %g: the messages are summed unscaled "
            "(avg_num_neighbors = 1); set the model option avg_num_neighbors to your data's mean number of "
            "neighbours within the cutoff (irrepnet.graph.build_graph counts them)",
            task.name,
            r_max,
        )
    return float(max((task.num_nodes or 2) - 1, 1))


@dataclass
class TFNConfig:
    """Configuration of ``tfn``; ``None`` fields take a per-task default."""

    hidden_irreps: str = "16x0e + 16x0o + 8x1e + 8x1o + 4x2e + 4x2o"  # after each gate; needs 1o
    lmax: int = 2  # spherical harmonics of the edges, l = 0..lmax
    layers: int = 3  # TP convolution + gate blocks
    # cutoff of graph and radial basis, in units of the fitted length (irrepnet.train.length) when trained
    r_max: float | None = None  # None: DEFAULT_R_MAX
    graph: str = "auto"  # "radius" (r_max), "full", or "auto": full for small fixed-size systems (same function)
    n_basis: int = 8
    # e3nn's Gaussians (times the polynomial cutoff), as gate_points_2101; Bessel (NequIP) trained
    # slower on twelve_body (300 steps, 2 seeds: train loss 0.080/0.019 against 0.042/0.013)
    basis: str = "gaussian"  # or "bessel", "smooth_finite", ...
    radial_neurons: int = 64
    radial_layers: int = 1
    normalization: str = "sqrt_avg_neighbors"  # or "mean", "sum"
    avg_num_neighbors: float | None = None  # None: MEASURED_NEIGHBORS, else num_nodes - 1
    self_interaction: bool = True
    skip: str = "auto"
    head: str = "linear"  # "linear": VectorHead on the last features; "conv": a last TP convolution to 1x1o
    edge_chunk: int | None = None  # large graphs: edges per chunk of each convolution (activation checkpointing)
    # of the layers' weights (irrepnet.nn.parametrization): "linear" (stored as torch.nn.Linear's) or "e3nn"
    # (stored times sqrt(fan-in): Adam moves them several times more slowly); see the module docstring
    parametrization: str = "linear"


def reference_config(**overrides) -> TFNConfig:
    """``tfn`` at the size of ``e3nn-reference`` (hidden irreps, 3 layers, lmax 3, r 3.5, 10 basis, 128 neurons)."""
    base = dict(
        hidden_irreps="8x0e + 8x0o + 16x1e + 16x1o + 8x2e + 8x2o",
        lmax=3,
        layers=3,
        r_max=3.5,
        n_basis=10,
        radial_neurons=128,
    )
    return TFNConfig(**{**base, **overrides})


def validate(config: TFNConfig) -> o3.Irreps:
    """Raise :class:`ConfigError` with the fix for an unusable config; return the hidden irreps."""
    try:
        hidden = o3.Irreps(config.hidden_irreps)
    except (ValueError, AssertionError) as exc:
        raise ConfigError(
            f"tfn: invalid hidden_irreps {config.hidden_irreps!r} ({exc}); write e.g. '8x0e + 8x1o'"
        ) from exc
    if o3.Irrep("1o") not in [ir for _, ir in hidden]:
        raise ConfigError(
            f"tfn: hidden_irreps {hidden} has no 1o channel, but the displacement is a 1o vector "
            "and an equivariant linear head can only read 1o features; add e.g. '8x1o'"
        )
    if config.lmax < 1:
        raise ConfigError(f"tfn: lmax must be >= 1 (edge directions are l=1), got {config.lmax}")
    if config.layers < 1:
        raise ConfigError(f"tfn: layers must be >= 1, got {config.layers}")
    if config.graph not in ("radius", "full", "auto"):
        raise ConfigError(f"tfn: graph must be 'radius', 'full' or 'auto', got {config.graph!r}")
    if config.basis != "bessel" and config.basis not in E3NN_BASES:
        raise ConfigError(f"tfn: unknown basis {config.basis!r}; use 'bessel' or one of {E3NN_BASES}")
    if config.normalization not in NORMALIZATIONS:
        raise ConfigError(f"tfn: normalization must be one of {NORMALIZATIONS}, got {config.normalization!r}")
    if config.parametrization not in PARAMETRIZATIONS:
        raise ConfigError(f"tfn: parametrization must be one of {PARAMETRIZATIONS}, got {config.parametrization!r}")
    if config.head not in ("linear", "conv"):
        raise ConfigError(f"tfn: head must be 'linear' or 'conv', got {config.head!r}")
    if config.skip not in SKIPS:
        raise ConfigError(f"tfn: skip must be one of {SKIPS}, got {config.skip!r}")
    if config.r_max is not None and config.r_max <= 0:
        raise ConfigError(f"tfn: r_max must be > 0, got {config.r_max}")
    if config.n_basis < 1 or config.radial_neurons < 1 or config.radial_layers < 0:
        raise ConfigError("tfn: need n_basis >= 1, radial_neurons >= 1 and radial_layers >= 0")
    if config.edge_chunk is not None and config.edge_chunk < 1:
        raise ConfigError(f"tfn: edge_chunk must be >= 1 edges, or None for all at once; got {config.edge_chunk}")
    return hidden


class TensorFieldNetwork(IrrepsModel):
    """NodeInputs -> graph -> (SH, radial embedding) once -> L x (TPConv + Gate) -> VectorHead.

    Parameters
    ----------
    task_inputs : dict
        the task's input fields and irreps.
    hidden_irreps : Irreps
        features after each gate.
    r_max, avg_num_neighbors : float
        resolved cutoff and normalisation constant; other arguments as in :class:`TFNConfig`.
    """

    symmetry = Symmetry.E3

    def __init__(
        self,
        task_inputs,
        hidden_irreps,
        *,
        lmax: int,
        layers: int,
        r_max: float,
        graph: str,
        n_basis: int,
        basis: str,
        radial_neurons: int,
        radial_layers: int,
        normalization: str,
        avg_num_neighbors: float,
        self_interaction: bool,
        skip: str,
        head: str = "linear",
        chain: bool = False,
        edge_chunk: int | None = None,
        output: str = K.DISPLACEMENT,
    ):
        if output not in (K.DISPLACEMENT, K.NODE_ENERGY):
            raise ValueError(
                f"TensorFieldNetwork output must be {K.DISPLACEMENT!r} or {K.NODE_ENERGY!r}, got {output!r}"
            )
        energy = output == K.NODE_ENERGY
        inputs = NodeInputs(task_inputs)
        sh = SphericalHarmonicsEdgeAttrs(lmax)
        radial = RadialEmbedding(n_basis, r_max, basis, chain=chain)
        modules = [inputs, GraphConstruction(graph, r=r_max if graph == "radius" else None, pairs=True), sh, radial]
        n_basis = radial.dim  # the radial MLPs read the chain features too
        irreps = inputs.irreps_out[K.NODE_FEATURES]

        def conv(irreps_in, irreps_out) -> TensorProductConv:
            """One convolution with this network's edge attributes, radial MLP and options."""
            return TensorProductConv(
                irreps_in,
                irreps_out,
                sh.sh_irreps,
                n_basis,
                radial_neurons=radial_neurons,
                radial_layers=radial_layers,
                normalization=normalization,
                avg_num_neighbors=avg_num_neighbors,
                self_interaction=self_interaction,
                skip=skip,
                edge_chunk=edge_chunk,
            )

        for _ in range(layers):
            gate = Gate(hidden_irreps)
            modules.append(conv(irreps, gate.irreps_in[K.NODE_FEATURES]))
            modules.append(gate)
            irreps = gate.irreps_out[K.NODE_FEATURES]
        if head == "conv":  # one more message-passing step straight to the output, as gate_points_2101 ends
            modules.append(conv(irreps, "1x0e" if energy else "1x1o"))
            irreps = o3.Irreps("1x0e" if energy else "1x1o")
        modules.append(ScalarHead(irreps, per_graph=False) if energy else VectorHead(irreps, K.DISPLACEMENT))
        chain = IrrepsSequential(*modules, irreps_in=task_inputs)
        super().__init__(chain.irreps_in, {output: chain.irreps_out[output]})
        self.chain, self.output = chain, output
        self.r_max, self.avg_num_neighbors = r_max, avg_num_neighbors

    def forward(self, data):
        return {self.output: self.chain(cast_inputs(self, data))[self.output]}


def build_tfn_from_config(config: TFNConfig, task: TaskSpec) -> IrrepsModel:
    """Build a tensor field network from ``config`` for ``task`` (the graph and normalisation resolved)."""
    hidden = validate(config)
    r_max = config.r_max if config.r_max is not None else DEFAULT_R_MAX.get(task.name, 3.5)
    avg = config.avg_num_neighbors if config.avg_num_neighbors is not None else average_neighbors(task, r_max)
    graph = config.graph
    if graph == "auto" and config.normalization == "mean":
        graph = "radius"  # "mean" divides by the degree, which the extra (zero) edges of a full graph change
    graph = auto_graph_kind(graph, task.num_nodes, periodic=bool(task.extras.get("periodic")))
    energy = wants_energy(task)
    model = TensorFieldNetwork(
        task.inputs,
        hidden,
        lmax=config.lmax,
        layers=config.layers,
        r_max=r_max,
        graph=graph,
        n_basis=config.n_basis,
        basis=config.basis,
        radial_neurons=config.radial_neurons,
        radial_layers=config.radial_layers,
        normalization=config.normalization,
        avg_num_neighbors=avg,
        self_interaction=config.self_interaction,
        skip=config.skip,
        head=config.head,
        chain=chain_bonds(task),
        edge_chunk=config.edge_chunk,
        output=K.NODE_ENERGY if energy else K.DISPLACEMENT,
    )
    if config.parametrization == "linear":
        use_linear_parametrization(model)
    return EnergyModel(model, symmetry=model.symmetry) if energy else model


@register_model(
    "tfn", config=TFNConfig, energy=True, description="tensor field network (TFN/NequIP): TP convolutions + gates, E(3)"
)
def build_tfn(config: TFNConfig, task: TaskSpec) -> IrrepsModel:
    """Tensor field network with gated nonlinearities."""
    return build_tfn_from_config(config, task)
