r"""MACE: higher-order equivariant message passing (the atomic cluster expansion as a message).

Batatia, Kovács, Simm, Ortner, Csányi, "MACE: Higher Order Equivariant Message Passing
Neural Networks for Fast and Accurate Force Fields", NeurIPS 2022 (arXiv:2206.07697).
A two-body message, as in a tensor field network, is a sum over neighbours; MACE raises it
to the power :math:`\nu` *after* the sum, on each node, so that one layer already carries
:math:`(\nu + 1)`-body terms at the cost of a node-wise product:

.. math::

    h^{(0)}_i = W \beta(z_i \oplus v_i \oplus \dots), \quad \beta(x) = x / \sqrt{1 + |x|^2} \text{ per block}, \qquad
    R^{(t)}_{k l_1 l_2 l_3}(r_{ij}) = \mathrm{MLP}\bigl(j_1(r_{ij}), \dots, j_{n_b}(r_{ij})\bigr)\, ,
    \quad j_n(r) = \sqrt{\tfrac{2}{r_c}}\frac{\sin(n \pi r / r_c)}{r}\, u_p(r / r_c),

    A^{(t)}_{i,k l_3 m_3} = \frac{1}{\bar n} \sum_{j \in N(i)} \sum_{l_1 l_2 m_1 m_2}
        C^{l_3 m_3}_{l_1 m_1, l_2 m_2}\, R^{(t)}_{k l_1 l_2 l_3}(r_{ij})\, Y^{m_1}_{l_1}(\hat r_{ij})\,
        \bigl(W^{(t)}_{\text{up}} h^{(t)}_j\bigr)_{k l_2 m_2}
        \qquad \text{(atomic basis)}

    B^{(t)}_{i,\eta_\nu k LM} = \sum_{\mathbf{lm}} \mathcal C^{LM}_{\eta_\nu, \mathbf{lm}}
        \prod_{\xi = 1}^{\nu} A^{(t)}_{i, k l_\xi m_\xi}
        \qquad \text{(product basis, Eq. 10)}

    m^{(t)}_{i,kLM} = W^{(t)}_{\text{msg}} \sum_{\nu = 1}^{\nu_{max}} \sum_{\eta_\nu}
        W^{(t) z_i}_{k \eta_\nu L}\, B^{(t)}_{i,\eta_\nu kLM}
        \qquad \text{(message, Eq. 11)}

    h^{(t+1)}_i = m^{(t)}_i + W^{(t) z_i}_{\text{skip}}\, h^{(t)}_i
        \qquad \text{(update)}

    E_i = \sum_{t=1}^{T - 1} W^{(t)}_{\text{read}}\, h^{(t)}_{i,0e}
        + \mathrm{MLP}\bigl(h^{(T)}_{i,0e}\bigr)
        \qquad \text{(readout)}

with :math:`u_p` the polynomial envelope (:func:`~irrepnet.nn.polynomial_cutoff`),
:math:`\bar n` the average neighbour count, :math:`\mathcal C` the generalised
Clebsch-Gordan coefficients of the symmetric contraction
(:class:`~irrepnet.nn.symmetric_contraction.SymmetricContraction`) and :math:`z_i` the
element of atom :math:`i`: the weights marked :math:`z_i` are one set per element
(:class:`~irrepnet.nn.mace_blocks.ElementLinear`). The blocks are in
:mod:`irrepnet.nn.mace_blocks`. On an energy task the energy is :math:`\sum_i E_i` per graph
and the forces its negative gradient (:class:`~irrepnet.models.energy.EnergyModel`); on a
displacement task (twelve_body, nbody) a linear vector head reads the ``1o`` features of the
last layer, :math:`\Delta x_i = W h^{(T)}_{i,1o}`, as the other families' heads do.

Tasks without elements (twelve_body, nbody) have one "element": ``node_attrs`` is a column
of ones, and the per-element weights are shared. Velocities and the other node inputs enter
:math:`h^{(0)}` as on ``tfn`` (:class:`~irrepnet.nn.NodeInputs`), each irrep of the inputs
becoming ``channels`` channels of it; on a task with bonds the radial MLP also reads the
chain separation (:mod:`irrepnet.nn.topology`). Every operation is O(3) equivariant and
reads positions only through their differences, so the model claims E(3).

Departures from the reference implementation: no fixed per-element atom energies
:math:`E_0` (irrepnet's energy training fits and subtracts them itself,
:mod:`irrepnet.train.energy`), no output scale and shift; every layer, the first too,
has the per-element skip; and the node inputs are bounded blockwise before the embedding,
:math:`x \mapsto x / \sqrt{1 + |x|^2}` (:class:`~irrepnet.nn.mace_blocks.NodeEmbedding`:
the features are polynomials of degree :math:`\nu^T` in :math:`h^{(0)}`, which in the paper
is a bounded one-hot and here may hold velocities). For the same reason the default
cutoff on nbody is 5.0 rather than tfn's 2.5 (:data:`DEFAULT_R_MAX_MACE`).

Shapes/irreps
-------------
reads ``pos 1o`` and the task's node inputs (``vel``/``vel_history`` ``1o``, ``charge`` ``0e``,
``species_onehot`` ``Kx0e``); ``node_attrs (n, K)`` ``Kx0e`` (``1x0e`` ones without elements);
hidden ``node_features`` ``C x (0e + 1o + ... + L)`` with ``C = channels``, ``L = hidden_lmax``;
atomic basis ``A (n, C x (0e + 1o + 2e + ... + l_max))``; the last layer keeps ``C x 0e`` on an
energy task and ``C x (0e + 1o)`` on a displacement task. Returns ``displacement (n, 3)`` ``1o``,
or ``energy (G, 1)`` ``0e`` and ``forces (n, 3)`` ``1o``.
"""

from __future__ import annotations

from dataclasses import dataclass

from e3nn import o3

from .. import keys as K
from ..interface import IrrepsModel, IrrepsSequential, Symmetry, TaskSpec, cast_inputs
from ..nn import GraphConstruction, NodeInputs, RadialEmbedding, SphericalHarmonicsEdgeAttrs, VectorHead
from ..nn.embedding import E3NN_BASES
from ..nn.graph_layer import auto_graph_kind
from ..nn.mace_blocks import ElementAttrs, EnergyReadout, MACEInteraction, NodeEmbedding, hidden_irreps
from ..nn.parametrization import PARAMETRIZATIONS, use_linear_parametrization
from ..nn.topology import chain_bonds
from ..registry import ConfigError, register_model
from .energy import EnergyModel, wants_energy
from .tfn import DEFAULT_R_MAX, average_neighbors

#: cutoff per task when the config leaves ``r_max`` unset: tfn's (:data:`irrepnet.models.tfn.DEFAULT_R_MAX`,
#: 3.5 elsewhere) but 5.0 on nbody. The Bessel basis grows as :math:`n\pi/r_c \sqrt{2/r_c}` at
#: :math:`r \to 0`, and nbody's charged particles come close (5% of training samples have a pair
#: closer than 0.048 fitted lengths); raised to the power :math:`\nu` in two layers, at
#: :math:`r_c = 2.5` the untrained model's largest displacement per sample had quantiles
#: 56 / 1459 / 50336 (50/90/99%, 300 training samples, seed 0), against 0.59 / 1.04 / 1.8 at 5.0
#: (tfn: 0.72 / 2.11 / 3.9). At 5.0 a node has 4.0 neighbours on average (tfn's measurement): all four.
DEFAULT_R_MAX_MACE = {**DEFAULT_R_MAX, "nbody": 5.0}

#: backends of the symmetric contraction (:class:`~irrepnet.nn.symmetric_contraction.SymmetricContraction`)
BACKENDS = ("auto", "e3nn", "cueq")


@dataclass
class MACEConfig:
    """Configuration of ``mace``; ``None`` fields take a per-task default (the defaults: a small CPU size).

    :func:`paper_config` is the reference implementation's size. The default ``channels = 16``
    makes a training step on the molecules task about as long as ``tfn``'s at its defaults: a
    batch of 32 molecules (263 atoms, float32, one thread; ``benchmarks/mace_step_time.py``,
    median of 20 steps after 5 warm-up, the two models interleaved in one run) took 794 ms
    against tfn's 793 ms; 8 channels 450 ms against 870 ms, 32 channels 1242 ms against 740 ms
    (three runs on a shared two-core machine: compare the ratios, 1.00, 0.52 and 1.68). A
    rerun at 16 channels on the committed code, on a less busy machine: 457 ms against 432 ms (1.06).
    """

    channels: int = 16  # C: channels of each degree, in the hidden features and the atomic basis
    max_ell: int = 3  # l_max: spherical harmonics of the edges, and degrees of the atomic basis A
    correlation: int = 3  # nu_max: highest power of A in the product basis ((nu + 1)-body messages)
    num_interactions: int = 2  # T: MACE layers
    hidden_lmax: int = 1  # L: hidden features C x (0e + 1o + ... + L)
    num_bessel: int = 8  # functions of the radial basis
    radial_basis: str = "bessel"  # the paper's; or one of e3nn's bounded bases ("gaussian", ...; irrepnet.nn.embedding)
    num_polynomial_cutoff: int = 5  # p of the polynomial envelope u_p
    # cutoff of graph and radial basis, in units of the fitted length (irrepnet.train.length) when
    # trained on twelve_body/nbody, in Å on molecules; None: DEFAULT_R_MAX_MACE (tfn's, but 5.0 on nbody), else 3.5
    # (with normalize = false, as the nbody suites train, in the data's unit: no fitted length is applied)
    r_max: float | None = None
    graph: str = "auto"  # "radius" (r_max), "full", or "auto": full for small fixed-size systems (same function)
    radial_neurons: int = 64  # width of the radial MLP
    radial_layers: int = 3  # hidden layers of the radial MLP (the paper's [64, 64, 64])
    avg_num_neighbors: float | None = None  # divides the neighbour sum; None: tfn's measured mean per task
    readout_mlp: int = 16  # hidden 0e neurons of the last layer's readout; 0: a linear readout
    backend: str = "auto"  # of the symmetric contraction: "auto", "e3nn" or "cueq"
    edge_chunk: int | None = None  # large graphs: edges per chunk of each atomic basis (activation checkpointing)
    # of the linear layers' and radial MLPs' weights (irrepnet.nn.parametrization): "e3nn" (the
    # reference implementation's) or "linear" (stored as torch.nn.Linear's)
    parametrization: str = "e3nn"


def paper_config(**overrides) -> MACEConfig:
    """``mace`` at the reference implementation's default size (128 channels, l_max 3, nu 3, 2 layers, r 5)."""
    base = dict(
        channels=128,
        max_ell=3,
        correlation=3,
        num_interactions=2,
        hidden_lmax=1,
        num_bessel=8,
        num_polynomial_cutoff=5,
        r_max=5.0,
        radial_neurons=64,
        radial_layers=3,
        readout_mlp=16,
    )
    return MACEConfig(**{**base, **overrides})


def validate(config: MACEConfig, displacement: bool) -> None:
    """Raise :class:`ConfigError` with the fix for an unusable config."""
    positive = ("channels", "correlation", "num_interactions", "num_bessel", "radial_neurons")
    bad = [f"{k}={getattr(config, k)}" for k in positive if getattr(config, k) < 1]
    if bad:
        raise ConfigError(f"mace: {', '.join(bad)}; these must be >= 1")
    if config.max_ell < 1:
        raise ConfigError(f"mace: max_ell must be >= 1 (edge directions are l=1), got {config.max_ell}")
    if config.hidden_lmax < 0 or config.hidden_lmax > config.max_ell:
        raise ConfigError(f"mace: hidden_lmax must be in 0..max_ell={config.max_ell}, got {config.hidden_lmax}")
    if displacement and config.hidden_lmax < 1:
        raise ConfigError(
            "mace: hidden_lmax=0 has no 1o features, but the displacement is a 1o vector read from them; "
            "use hidden_lmax >= 1"
        )
    if config.radial_layers < 0 or config.readout_mlp < 0 or config.num_polynomial_cutoff < 1:
        raise ConfigError("mace: need radial_layers >= 0, readout_mlp >= 0 and num_polynomial_cutoff >= 1")
    if config.graph not in ("radius", "full", "auto"):
        raise ConfigError(f"mace: graph must be 'radius', 'full' or 'auto', got {config.graph!r}")
    if config.radial_basis != "bessel" and config.radial_basis not in E3NN_BASES:
        raise ConfigError(f"mace: unknown radial_basis {config.radial_basis!r}; use 'bessel' or one of {E3NN_BASES}")
    if config.backend not in BACKENDS:
        raise ConfigError(f"mace: backend must be one of {BACKENDS}, got {config.backend!r}")
    if config.parametrization not in PARAMETRIZATIONS:
        raise ConfigError(f"mace: parametrization must be one of {PARAMETRIZATIONS}, got {config.parametrization!r}")
    if config.r_max is not None and config.r_max <= 0:
        raise ConfigError(f"mace: r_max must be > 0, got {config.r_max}")
    if config.avg_num_neighbors is not None and config.avg_num_neighbors <= 0:
        raise ConfigError(f"mace: avg_num_neighbors must be > 0, got {config.avg_num_neighbors}")
    if config.edge_chunk is not None and config.edge_chunk < 1:
        raise ConfigError(f"mace: edge_chunk must be >= 1 edges, or None for all at once; got {config.edge_chunk}")


class MACE(IrrepsModel):
    """NodeInputs -> graph -> (SH, Bessel embedding) once -> T x (MACEInteraction [+ EnergyReadout]) -> head.

    Parameters
    ----------
    task_inputs : dict
        the task's input fields and irreps.
    config : MACEConfig
        sizes and options; ``r_max`` and ``avg_num_neighbors`` as resolved by the builder.
    r_max, avg_num_neighbors : float
        resolved cutoff and normalisation constant.
    graph : str
        resolved graph kind (``"full"`` or ``"radius"``).
    chain : bool
        the radial MLPs also read the chain separation (a task with bonds).
    output : {"displacement", "node_energy"}
    """

    symmetry = Symmetry.E3

    def __init__(
        self,
        task_inputs,
        config: MACEConfig,
        *,
        r_max: float,
        avg_num_neighbors: float,
        graph: str,
        chain: bool = False,
        output: str = K.DISPLACEMENT,
    ):
        if output not in (K.DISPLACEMENT, K.NODE_ENERGY):
            raise ValueError(f"MACE output must be {K.DISPLACEMENT!r} or {K.NODE_ENERGY!r}, got {output!r}")
        energy = output == K.NODE_ENERGY
        C = config.channels
        inputs = NodeInputs(task_inputs)
        modules = [inputs]
        num_elements = 1
        species = task_inputs.get(K.SPECIES_ONEHOT)
        if species is not None:  # per-element weights read the one-hot; otherwise NodeInputs' ones
            modules.append(ElementAttrs(species))
            num_elements = o3.Irreps(species).dim
        sh = SphericalHarmonicsEdgeAttrs(config.max_ell)
        radial = RadialEmbedding(
            config.num_bessel, r_max, config.radial_basis, p=float(config.num_polynomial_cutoff), chain=chain
        )
        modules += [GraphConstruction(graph, r=r_max if graph == "radius" else None, pairs=True), sh, radial]
        # h^(0): C channels of each irrep of the inputs (0e: constant, charge, elements; 1o: velocities)
        irreps_x = inputs.irreps_out[K.NODE_FEATURES]
        irreps = o3.Irreps([(C, ir) for ir in sorted({ir for _, ir in irreps_x})])
        modules.append(NodeEmbedding(irreps_x, irreps))
        for t in range(config.num_interactions):
            last = t == config.num_interactions - 1
            # the last layer keeps only what its readout reads (as the reference implementation does)
            irreps_out = hidden_irreps(C, 0 if energy else 1) if last else hidden_irreps(C, config.hidden_lmax)
            modules.append(
                MACEInteraction(
                    irreps,
                    irreps_out,
                    sh.sh_irreps,
                    channels=C,
                    n_basis=radial.dim,
                    num_elements=num_elements,
                    correlation=config.correlation,
                    avg_num_neighbors=avg_num_neighbors,
                    radial_neurons=config.radial_neurons,
                    radial_layers=config.radial_layers,
                    backend=config.backend,
                    edge_chunk=config.edge_chunk,
                )
            )
            irreps = irreps_out
            if energy:
                modules.append(EnergyReadout(irreps, hidden=config.readout_mlp if last else 0, accumulate=t > 0))
        if not energy:
            modules.append(VectorHead(irreps, K.DISPLACEMENT))
        chain_ = IrrepsSequential(*modules, irreps_in=task_inputs)
        super().__init__(chain_.irreps_in, {output: chain_.irreps_out[output]})
        self.chain, self.output = chain_, output
        self.r_max, self.avg_num_neighbors = r_max, avg_num_neighbors

    def forward(self, data):
        return {self.output: self.chain(cast_inputs(self, data))[self.output]}


def build_mace_from_config(config: MACEConfig, task: TaskSpec) -> IrrepsModel:
    """Build MACE from ``config`` for ``task`` (cutoff, graph and neighbour count resolved as for ``tfn``)."""
    energy = wants_energy(task)
    validate(config, displacement=not energy)
    r_max = config.r_max if config.r_max is not None else DEFAULT_R_MAX_MACE.get(task.name, 3.5)
    avg = config.avg_num_neighbors if config.avg_num_neighbors is not None else average_neighbors(task, r_max)
    model = MACE(
        task.inputs,
        config,
        r_max=r_max,
        avg_num_neighbors=avg,
        graph=auto_graph_kind(config.graph, task.num_nodes, periodic=bool(task.extras.get("periodic"))),
        chain=chain_bonds(task),
        output=K.NODE_ENERGY if energy else K.DISPLACEMENT,
    )
    if config.parametrization == "linear":
        use_linear_parametrization(model)
    return EnergyModel(model, symmetry=model.symmetry) if energy else model


@register_model(
    "mace",
    config=MACEConfig,
    energy=True,
    description="MACE: atomic basis + symmetric-contraction product basis ((nu+1)-body messages), E(3)",
)
def build_mace(config: MACEConfig, task: TaskSpec) -> IrrepsModel:
    """MACE with a Bessel radial basis, per-element product-basis weights and summed per-layer readouts."""
    return build_mace_from_config(config, task)


__all__ = ["BACKENDS", "DEFAULT_R_MAX_MACE", "MACE", "MACEConfig", "build_mace", "paper_config"]
