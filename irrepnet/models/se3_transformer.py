r"""The SE(3)-transformer: equivariant graph attention predicting displacements.

Fuchs, Worrall, Fischer, Welling, "SE(3)-Transformers: 3D Roto-Translation
Equivariant Attention Networks", NeurIPS 2020, https://arxiv.org/abs/2006.10503.

.. math::

    f^0 &= [\,1,\ v_i,\ \dots\,]                          && \text{(task inputs, NodeInputs)} \\
    f^{l+1} &= \mathrm{Attention}_l\big(f^l;\ Y(\hat r_{ij}),\ B(|r_{ij}|)\big) + S_l f^l
            && l = 0..L-1 \text{ (see } :mod:`irrepnet.nn.attention`) \\
    \Delta x_i &= W_{out} f^L_i                           && \text{(VectorHead, the } 1o \text{ part)}

The graph (radius ``radius``, full, or ``"auto"``: full for small fixed-size systems,
where it computes the same function; either way the attention and the radial embedding
vanish smoothly at ``radius``), the spherical harmonics :math:`Y` and the
radial embedding :math:`B` are built once per batch and shared by every head of
every block: the reference write-up rebuilt the radius graph in every head and took
about 13 s per training step at batch 32 (twelve-body frames, 16 heads) on a 2-core
CPU; this model (the default config with 16 heads, 22k parameters) takes about 0.11 s with one
thread and 0.07 s with two when both cores are free (forward, backward and Adam;
median after warm-up).

*Cutoff and skip: what they cost on N-body (issue 12).* With ``radius=3.5`` on the
charged 5-body task (pairwise distances: median 3.5, 90th percentile 6.1) half of the
pairs lie beyond the cutoff and the envelope :math:`u` weighs the others 0.26 on
average: each particle saw little of the Coulomb forces. And the blocks had no skip, so
the velocity reached the displacement only through gated, neighbour-dependent paths
instead of as the linear term that is most of the answer (a fitted
:math:`\Delta x = c\,v` has MSE 0.087). At the peers-nbody protocol (600 steps of Adam,
lr 5e-4, batch 100), test MSE of seeds 0/1/2: before, 0.107/0.192/0.110; ``radius=10``
alone -/0.035/-, the linear skip alone 0.058/0.080/- (``radius=20`` alone 0.043 on seed 0);
both 0.018/0.021/0.017 (0.024 on seed 0 at ``radius=20``), against 0.022 for
se3-transformer-pytorch (3 seeds), which attends over all pairs without cutoff and has
residual connections and linear self-interactions. On twelve_body (every pair within 3.5,
so only the skip differs; 360 steps of the peers suite) the skip is within seed noise:
3.3e-7/4.3e-7 without, 3.9e-7/6.4e-7 with (seeds 0/1). Hence the defaults: the
cutoff per task (:data:`DEFAULT_RADIUS`, 10 on nbody as ``tfn``'s, 3.5 elsewhere; these
radii were in the data's unit, since issue 25 they are in units of the fitted length
:mod:`irrepnet.train.length`, and 10 on nbody became 2.5, 10.4 in the data's unit) and
``skip="linear"``. ``skip="auto"`` (the identity where the irreps match, 80 parameters
instead of 1,616) measured the same (0.018); ``"linear"`` is the default because a
checkpoint from before the option then loads as the same function (its skip weights are
filled with zeros; it keeps its stored ``radius``).

*Weight parametrisation (issue 12).* The e3nn layers (``o3.Linear``, the radial
``FullyConnectedNet``) store their weights as :math:`\sqrt{\text{fan-in}}` times the
applied ones; se3-transformer-pytorch stores them as ``torch.nn.Linear`` does. Same
functions, but Adam then moves the applied weights :math:`\sqrt{\text{fan-in}}` (5-11)
times more slowly (:mod:`irrepnet.nn.parametrization`). ``parametrization="linear"`` (the
default) stores them as ``Linear`` does. Test MSE of seeds 0/1/2 before (a development
run) and after (the committed runs at ``cbf271f``, ``benchmarks/results/peers*``): peers
suite (twelve_body, 360 steps) 3.9e-7/6.4e-7/3.1e-7 and 5.6e-8/9.5e-8/6.5e-8, against a
mean of 1.1e-7 for se3-transformer-pytorch in the same run; peers-nbody (600 steps)
0.018/0.021/0.017 (``e9c50f8``) and 0.011/0.013/0.011, against 0.024. A checkpoint from
before loads as the same function.

*Symmetry.* The spherical harmonics carry parity :math:`(-1)^l` (``p=-1``), every
tensor-product path respects parity, the gate acts on scalars by their parity and
the head reads the ``1o`` channels: the model is E(3) equivariant whatever the hidden
irreps, and claims it (the conformance suite audits reflections).

Shapes/irreps
-------------
in: ``pos 1o (n, 3)`` and the task's ``vel 1o``, ``vel_history hx1o``,
``charge 0e (n, 1)`` when present; hidden ``node_features (n, hidden.dim)``;
out: ``displacement 1o (n, 3)``; on an energy task (molecules) ``energy 0e (G, 1)`` and
``forces 1o (n, 3)`` (:class:`~irrepnet.models.energy.EnergyModel` on the ``0e`` head).
"""

from __future__ import annotations

from dataclasses import dataclass

from e3nn import o3

from .. import keys as K
from ..interface import IrrepsModel, IrrepsSequential, Symmetry, TaskSpec, cast_inputs
from ..nn import GraphConstruction, NodeInputs, RadialEmbedding, ScalarHead, SphericalHarmonicsEdgeAttrs, VectorHead
from ..nn.attention import EquivariantAttention
from ..nn.graph_layer import auto_graph_kind
from ..nn.parametrization import PARAMETRIZATIONS, use_linear_parametrization
from ..nn.topology import chain_bonds
from ..nn.tp_conv import SKIPS
from ..registry import ConfigError, register_model
from .energy import EnergyModel, wants_energy

#: cutoff per task when the config leaves ``radius`` unset (the same as ``tfn``'s ``r_max``), in units of
#: the fitted length (:mod:`irrepnet.train.length`): 2.5 on nbody is 10.4 in the data's unit
DEFAULT_RADIUS = {"twelve_body": 3.5, "nbody": 2.5}


@dataclass
class SE3TransformerConfig:
    """Options of ``se3-transformer``.

    Every multiplicity of ``hidden_irreps`` (and ``key_irreps``) must be a multiple
    of ``heads``.
    """

    hidden_irreps: str = "32x0e + 16x1o + 16x1e"
    key_irreps: str | None = None  # queries/keys; default: hidden_irreps
    lmax: int = 2  # spherical harmonics of the edge directions
    heads: int = 4
    layers: int = 2
    # "radius", "full" (both fade edges out smoothly at `radius`) or "auto": full for small fixed-size systems
    graph: str = "auto"
    # cutoff of graph, radial basis and attention, in units of the fitted length (irrepnet.train.length) when trained; None: DEFAULT_RADIUS of the task
    radius: float | None = None
    skip: str = "linear"  # S in each block (irrepnet.nn.attention): "linear", "residual", "auto" or "none"
    basis: str = "bessel"
    n_basis: int = 8
    radial_hidden: int = 32
    # of the e3nn layers' weights (irrepnet.nn.parametrization): "linear" (stored as torch.nn.Linear's, as the
    # peer's) or "e3nn" (stored times sqrt(fan-in): Adam moves them 5-11x more slowly); see the module docstring
    parametrization: str = "linear"
    edge_chunk: int | None = None  # large graphs: edges per chunk of each attention block (activation checkpointing)


def task_radius(config: SE3TransformerConfig, task: TaskSpec) -> float:
    """``config.radius``, or the task's :data:`DEFAULT_RADIUS` (3.5 for a task not listed)."""
    return float(config.radius) if config.radius is not None else DEFAULT_RADIUS.get(task.name, 3.5)


class SE3Transformer(IrrepsModel):
    """Inputs -> graph -> edge embeddings -> ``layers`` attention blocks -> displacement head.

    Parameters
    ----------
    task : TaskSpec
        its inputs decide the first features (``1x0e`` + velocities/charges).
    config : SE3TransformerConfig

    Shapes/irreps
    -------------
    reads ``pos 1o (n, 3)`` and the task's node inputs; returns ``{"displacement": (n, 3)}``, ``1o``,
    or with ``output="node_energy"`` one ``0e`` scalar per node (the backbone of an energy model).
    """

    symmetry = Symmetry.E3

    def __init__(self, task: TaskSpec, config: SE3TransformerConfig, output: str = K.DISPLACEMENT):
        if output not in (K.DISPLACEMENT, K.NODE_ENERGY):
            raise ValueError(f"SE3Transformer output must be {K.DISPLACEMENT!r} or {K.NODE_ENERGY!r}, got {output!r}")
        hidden = o3.Irreps(config.hidden_irreps)
        inputs = NodeInputs(task.inputs)
        sh = SphericalHarmonicsEdgeAttrs(config.lmax, p=-1)
        radius = task_radius(config, task)
        kind = auto_graph_kind(config.graph, task.num_nodes, periodic=bool(task.extras.get("periodic")))
        graph = GraphConstruction(kind, r=radius if kind == "radius" else None, pairs=True)
        radial = RadialEmbedding(config.n_basis, radius, config.basis, chain=chain_bonds(task))
        modules = [inputs, graph, sh, radial]
        irreps = inputs.irreps_out[K.NODE_FEATURES]
        for _ in range(config.layers):
            block = EquivariantAttention(
                irreps,
                hidden,
                sh.sh_irreps,
                radial.dim,
                radius,
                config.heads,
                irreps_key=config.key_irreps,
                radial_hidden=config.radial_hidden,
                edge_chunk=config.edge_chunk,
                skip=config.skip,
            )
            modules.append(block)
            irreps = block.irreps_out[K.NODE_FEATURES]
        energy = output == K.NODE_ENERGY
        modules.append(ScalarHead(irreps, per_graph=False) if energy else VectorHead(irreps, K.DISPLACEMENT))
        net = IrrepsSequential(*modules, irreps_in=task.inputs)
        if config.parametrization == "linear":
            use_linear_parametrization(net)
        super().__init__(net.irreps_in, {output: net.irreps_out[output]})
        self.net, self.config, self.output, self.radius = net, config, output, radius

    def forward(self, data):
        return {self.output: self.net(cast_inputs(self, data))[self.output]}


def _check(config: SE3TransformerConfig) -> None:
    """Turn bad options into one clear :class:`ConfigError` before any layer is built."""
    if config.layers < 1 or config.heads < 1 or config.lmax < 0:
        raise ConfigError(
            f"se3-transformer needs layers >= 1, heads >= 1 and lmax >= 0; got layers={config.layers}, "
            f"heads={config.heads}, lmax={config.lmax}"
        )
    if config.graph not in ("radius", "full", "auto"):
        raise ConfigError(f"se3-transformer graph must be 'radius', 'full' or 'auto', got {config.graph!r}")
    if config.edge_chunk is not None and config.edge_chunk < 1:
        raise ConfigError(f"se3-transformer edge_chunk must be >= 1 edges, or None; got {config.edge_chunk}")
    if config.parametrization not in PARAMETRIZATIONS:
        raise ConfigError(
            f"se3-transformer: parametrization must be one of {PARAMETRIZATIONS}, got {config.parametrization!r}"
        )
    if config.skip not in SKIPS:
        raise ConfigError(f"se3-transformer skip must be one of {SKIPS}, got {config.skip!r}")
    if config.radius is not None and config.radius <= 0:
        raise ConfigError(f"se3-transformer radius must be > 0 (it is also the smooth cutoff), got {config.radius}")
    for what in ("hidden_irreps", "key_irreps"):
        value = getattr(config, what)
        if value is None:
            continue
        bad = [f"{mul}x{ir}" for mul, ir in o3.Irreps(value) if mul % config.heads]
        if bad:
            raise ConfigError(
                f"se3-transformer {what}={value!r}: multiplicities of {', '.join(bad)} are not "
                f"divisible by heads={config.heads}; make every multiplicity a multiple of heads"
            )
    if o3.Irrep("1o") not in [ir for _, ir in o3.Irreps(config.hidden_irreps)]:
        raise ConfigError(
            f"se3-transformer hidden_irreps={config.hidden_irreps!r} has no 1o channels; the "
            "displacement head needs them"
        )


@register_model(
    "se3-transformer",
    config=SE3TransformerConfig,
    energy=True,
    description="SE(3)-transformer (Fuchs et al. 2020): equivariant multi-head graph attention, gated",
)
def build_se3_transformer(config: SE3TransformerConfig, task: TaskSpec) -> IrrepsModel:
    """Build ``se3-transformer``: equivariant multi-head graph attention, gated."""
    _check(config)
    if wants_energy(task):  # the 0e part of the last block's features, summed per graph, differentiated
        model = SE3Transformer(task, config, output=K.NODE_ENERGY)
        return EnergyModel(model, symmetry=model.symmetry)
    return SE3Transformer(task, config)
