r"""The blocks of MACE: per-element linear maps, the interaction (atomic and product basis) and the readouts.

Batatia, Kovács, Simm, Ortner, Csányi, "MACE: Higher Order Equivariant Message Passing
Neural Networks for Fast and Accurate Force Fields", NeurIPS 2022 (arXiv:2206.07697).
One layer :math:`t` of :class:`MACEInteraction` maps the node features :math:`h^{(t)}`
to :math:`h^{(t+1)}` through

.. math::

    A_{i,kl_3m_3} = \frac{1}{\bar n} \sum_{j \in N(i)} \sum_{l_1 l_2 m_1 m_2}
        C^{l_3 m_3}_{l_1 m_1, l_2 m_2}\, R_{k l_1 l_2 l_3}(r_{ij})\, Y^{m_1}_{l_1}(\hat r_{ij})\,
        \bar h^{(t)}_{j,k l_2 m_2}, \qquad \bar h^{(t)} = W_{\text{up}} h^{(t)},

    B_{i,\eta_\nu k LM} = \sum_{\mathbf{lm}} \mathcal C^{LM}_{\eta_\nu, \mathbf{lm}}
        \prod_{\xi = 1}^{\nu} A_{i, k l_\xi m_\xi}, \qquad
    \tilde m_{i,kLM} = \sum_{\nu \le \nu_{\max}} \sum_{\eta_\nu} W^{z_i}_{k \eta_\nu L}\, B_{i,\eta_\nu kLM},

    h^{(t+1)}_i = W_{\text{msg}}\, \tilde m_i + W^{z_i}_{\text{skip}}\, h^{(t)}_i

(the atomic basis, with the radial weights :math:`R` from an MLP of
the Bessel basis times a polynomial envelope and the neighbour sum divided by the average
neighbour count :math:`\bar n`; the product basis and its per-element weights, Eq. 10-11,
computed by :class:`~irrepnet.nn.symmetric_contraction.SymmetricContraction`; the update
with a per-element linear skip). The atomic basis is a channel-wise (``"uvu"``)
tensor-product convolution, :class:`~irrepnet.nn.TensorProductConv` with the sum
normalisation and no skip, divided by :math:`\bar n` afterwards (a linear map commutes with it).

Readouts: :class:`EnergyReadout` adds a linear map of the ``0e`` features of each
layer, or for the last layer a small MLP of them, to the running ``node_energy``.

Shapes/irreps
-------------
``node_features (n, irreps_in.dim)``, ``node_attrs (n, K)`` (``Kx0e``: the element one-hot, or
ones when the task has no elements), ``edge_index (2, E)``, ``edge_sh (E, Y.dim)``,
``edge_embedding (E, n_basis)`` -> ``node_features (n, irreps_out.dim)``; the atomic basis
:math:`A` is ``(n, C x (0e + 1o + 2e + ... + l_max))``, ``C`` channels of each degree.
"""

from __future__ import annotations

import torch
from e3nn import o3
from e3nn.math import normalize2mom

from .. import keys as K
from ..interface import IrrepsModule
from .symmetric_contraction import SymmetricContraction
from .tp_conv import TensorProductConv


class ElementLinear(torch.nn.Module):
    r"""An equivariant linear map with one set of weights per element: :math:`y_i = W^{z_i} x_i`.

    The weights of node :math:`i` are ``node_attrs[i] @ weight``: the row of its element for a
    one-hot ``node_attrs`` (the paper's per-element skip in the update), a single ``o3.Linear`` for
    one element. e3nn's ``o3.Linear`` with per-node weights applies them with its own
    path normalisation, :math:`1/\sqrt{\text{fan-in}}`, which :meth:`fan_in_scales` reports
    (for :func:`~irrepnet.nn.parametrization.use_linear_parametrization`).

    Parameters
    ----------
    irreps_in, irreps_out : Irreps
    num_elements : int

    Shapes/irreps
    -------------
    ``x (n, irreps_in.dim)``, ``node_attrs (n, num_elements)`` -> ``(n, irreps_out.dim)``.
    """

    def __init__(self, irreps_in, irreps_out, num_elements: int):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.linear = o3.Linear(self.irreps_in, self.irreps_out, internal_weights=False, shared_weights=False)
        self.num_elements = num_elements
        self.out_dim = self.irreps_out.dim  # an int: the forward must not read an Irreps (torch.compile)
        self.weight = torch.nn.Parameter(torch.randn(num_elements, self.linear.weight_numel))

    def fan_in_scales(self) -> dict[str, torch.Tensor]:
        """The factor the forward applies to each stored weight (e3nn's path weight of its instruction)."""
        parts = [
            torch.full((ins.path_shape[0] * ins.path_shape[1],), float(ins.path_weight))
            for ins in self.linear.instructions
        ]
        flat = torch.cat(parts) if parts else torch.zeros(0)
        return {"weight": flat.to(self.weight).expand_as(self.weight).clone()}

    def forward(self, x: torch.Tensor, node_attrs: torch.Tensor) -> torch.Tensor:
        if self.linear.weight_numel == 0:  # no common irrep: e3nn's Linear returns zeros
            return x.new_zeros(x.shape[0], self.out_dim)
        return self.linear(x, node_attrs @ self.weight)  # [n, weight_numel] weights, one row per node

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out}, num_elements={self.num_elements}"


class NodeEmbedding(IrrepsModule):
    r"""The first node features: an equivariant linear map of the task's (bounded) node inputs.

    .. math::

        h^{(0)}_i = W\, \bigoplus_b \frac{x_{i,b}}{\sqrt{1 + |x_{i,b}|^2}}

    over the irrep blocks :math:`b` of the inputs :math:`x_i` (with ``bounded=False``, :math:`W x_i`).
    With the element one-hot as the only input this is the paper's :math:`h^{(0)}_i = W z_i`
    (up to a constant factor); velocities (``1o``) and other vector inputs become ``C``
    channels of their irrep, as the scalars do. Why bounded: MACE's features are polynomials
    of degree :math:`\nu^T` in :math:`h^{(0)}` (the product basis of each of :math:`T` layers
    raises the previous features to the power :math:`\nu`). In the paper :math:`h^{(0)}` is a
    one-hot and the radial basis is bounded, so the features are too; a velocity 10 times its
    RMS (two particles of the nbody task in a close encounter) would enter :math:`10^9` times
    larger at :math:`\nu = 3, T = 2` (measured on nbody, 300 training samples, positions in fitted
    lengths, seed 0: the untrained model's largest displacement per sample had 50/90/99%
    quantiles 0.59/1.04/1.8 with the bound, 1.24/3.15/81 without). The map
    :math:`x \mapsto x / \sqrt{1 + |x|^2}` is equivariant (it rescales each block by a function of its invariant norm), odd, one-to-one,
    and close to the identity for :math:`|x| \ll 1`.

    Shapes/irreps: ``node_features (n, irreps_in.dim)`` -> ``node_features (n, irreps_out.dim)``.
    """

    def __init__(self, irreps_in, irreps_out, bounded: bool = True):
        irreps_in, irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        super().__init__({K.NODE_FEATURES: irreps_in}, {K.NODE_FEATURES: irreps_out})
        self.linear = o3.Linear(irreps_in, irreps_out)
        self.bounded = bounded
        # per irrep block (one copy of one irrep): its columns, for the norm of each block
        block = [
            i
            for i, (mul, ir) in enumerate((mul, ir) for mul, ir in irreps_in for _ in range(mul))
            for _ in range(ir.dim)
        ]
        self.register_buffer("block", torch.tensor(block, dtype=torch.long), persistent=False)
        self.num_blocks = sum(mul for mul, _ in irreps_in)

    def forward(self, data):
        x = data[K.NODE_FEATURES]
        if self.bounded:
            sq = torch.zeros(x.shape[0], self.num_blocks, dtype=x.dtype, device=x.device)
            sq = sq.index_add(1, self.block, x * x)  # [n, blocks]: |x_b|^2
            x = x * torch.rsqrt(1.0 + sq).index_select(1, self.block)
        return {**data, K.NODE_FEATURES: self.linear(x)}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bounded={self.bounded}"


class ElementAttrs(IrrepsModule):
    """``node_attrs`` = the element one-hot (``species_onehot``, ``Kx0e``): what the per-element weights read.

    Shapes/irreps: ``species_onehot (n, K)`` ``Kx0e`` -> ``node_attrs (n, K)`` ``Kx0e``.
    """

    def __init__(self, irreps_species):
        irreps_species = o3.Irreps(irreps_species)
        if any(ir != o3.Irrep("0e") for _, ir in irreps_species):
            raise ValueError(f"ElementAttrs: {K.SPECIES_ONEHOT!r} must be Kx0e, got {irreps_species}")
        super().__init__({K.SPECIES_ONEHOT: irreps_species}, {K.NODE_ATTRS: irreps_species})

    def forward(self, data):
        return {**data, K.NODE_ATTRS: data[K.SPECIES_ONEHOT]}


class MACEInteraction(IrrepsModule):
    r"""One MACE layer: atomic basis, product basis, message and per-element residual update.

    Parameters
    ----------
    irreps_in : Irreps
        node features :math:`h^{(t)}`.
    irreps_out : Irreps
        node features :math:`h^{(t+1)}` (the product basis' output irreps).
    irreps_sh : Irreps
        of ``edge_sh``, :math:`l = 0..l_{max}`.
    channels : int
        ``C``: the atomic basis has ``C`` channels of each degree of ``irreps_sh``.
    n_basis : int
        width of ``edge_embedding``.
    num_elements : int
        width of ``node_attrs``.
    correlation : int
        :math:`\nu_{max}`, the highest power of :math:`A` in the product basis.
    avg_num_neighbors : float
        :math:`\bar n`, which divides the neighbour sum.
    radial_neurons, radial_layers : int
        of the radial MLP.
    backend : {"auto", "e3nn", "cueq"}
        of the symmetric contraction.
    edge_chunk : int, optional
        as in :class:`~irrepnet.nn.TensorProductConv`.

    Shapes/irreps
    -------------
    reads ``node_features (n, irreps_in.dim)``, ``node_attrs (n, num_elements)``,
    ``edge_index (2, E)``, ``edge_sh (E, irreps_sh.dim)``, ``edge_embedding (E, n_basis)``;
    writes ``node_features (n, irreps_out.dim)``.
    """

    def __init__(
        self,
        irreps_in,
        irreps_out,
        irreps_sh,
        *,
        channels: int,
        n_basis: int,
        num_elements: int,
        correlation: int,
        avg_num_neighbors: float,
        radial_neurons: int = 64,
        radial_layers: int = 3,
        backend: str = "auto",
        edge_chunk: int | None = None,
    ):
        irreps_in, irreps_out, irreps_sh = o3.Irreps(irreps_in), o3.Irreps(irreps_out), o3.Irreps(irreps_sh)
        if not avg_num_neighbors > 0:
            raise ValueError(f"MACEInteraction: avg_num_neighbors must be > 0, got {avg_num_neighbors}")
        # the atomic basis: C channels of each degree the spherical harmonics carry
        irreps_a = o3.Irreps([(channels, ir) for _, ir in irreps_sh]).sort().irreps.simplify()
        conv = TensorProductConv(
            irreps_in,
            irreps_a,
            irreps_sh,
            n_basis,
            radial_neurons=radial_neurons,
            radial_layers=radial_layers,
            normalization="sum",
            self_interaction=True,  # W_up before the tensor product
            skip="none",
            edge_chunk=edge_chunk,
        )
        super().__init__({**conv.irreps_in, K.NODE_ATTRS: f"{num_elements}x0e"}, {K.NODE_FEATURES: irreps_out})
        self.conv, self.irreps_a = conv, irreps_a
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.product = SymmetricContraction(
            irreps_in=self.irreps_a,
            irreps_out=irreps_out,
            correlation=correlation,
            num_elements=num_elements,
            backend=backend,
        )
        self.message = o3.Linear(irreps_out, irreps_out)
        self.skip = ElementLinear(irreps_in, irreps_out, num_elements)
        self.correlation = correlation

    def forward(self, data):
        h, attrs = data[K.NODE_FEATURES], data[K.NODE_ATTRS]
        a = self.conv(data)[K.NODE_FEATURES] / self.avg_num_neighbors  # [n, irreps_a]: A_i
        m = self.message(self.product(a, attrs))  # [n, irreps_out]: W B_i
        return {**data, K.NODE_FEATURES: m + self.skip(h, attrs)}

    def extra_repr(self) -> str:
        return f"A: {self.irreps_a}, correlation={self.correlation}, avg_num_neighbors={self.avg_num_neighbors}"


class EnergyReadout(IrrepsModule):
    r"""Adds this layer's readout of the ``0e`` features to ``node_energy``: :math:`E_i \mathrel{+}= R_t(h^{(t)}_i)`.

    :math:`R_t` is linear, or with ``hidden > 0`` the paper's last-layer readout
    :math:`W_2\, \sigma(W_1 h)` with ``hidden`` ``0e`` neurons and a SiLU normalised to unit
    second moment (as e3nn's ``nn.Activation`` does).

    Parameters
    ----------
    irreps_features : Irreps
        of ``node_features``; must contain ``0e``.
    hidden : int
        0: linear.
    accumulate : bool
        read an earlier layer's ``node_energy`` and add to it (every layer but the first).

    Shapes/irreps
    -------------
    ``node_features (n, I.dim)`` (and ``node_energy (n, 1)``) -> ``node_energy (n, 1)`` ``0e``.
    """

    def __init__(self, irreps_features, hidden: int = 0, accumulate: bool = False):
        irreps_features = o3.Irreps(irreps_features)
        if o3.Irrep("0e") not in [ir for _, ir in irreps_features]:
            raise ValueError(f"EnergyReadout needs 0e features, got {irreps_features}")
        irreps_in = {K.NODE_FEATURES: irreps_features, **({K.NODE_ENERGY: "0e"} if accumulate else {})}
        super().__init__(irreps_in, {K.NODE_ENERGY: "0e"})
        self.accumulate, self.hidden = accumulate, hidden
        if hidden > 0:
            self.first = o3.Linear(irreps_features, f"{hidden}x0e")
            self.second = o3.Linear(f"{hidden}x0e", "1x0e")
            # e3nn's normalised SiLU (unit second moment on unit normal input), as nn.Activation's
            self.act_scale = float(normalize2mom(torch.nn.functional.silu).cst)
        else:
            self.first, self.second = o3.Linear(irreps_features, "1x0e"), None

    def forward(self, data):
        e = self.first(data[K.NODE_FEATURES])  # [n, 1], or [n, hidden] before the MLP's second layer
        if self.second is not None:
            e = self.second(self.act_scale * torch.nn.functional.silu(e))
        if self.accumulate:
            e = data[K.NODE_ENERGY] + e
        return {**data, K.NODE_ENERGY: e}

    def extra_repr(self) -> str:
        return f"{'mlp ' + str(self.hidden) if self.hidden else 'linear'}, accumulate={self.accumulate}"


def hidden_irreps(channels: int, lmax: int) -> o3.Irreps:
    """``C x 0e + C x 1o + C x 2e + ...`` up to ``lmax``: the hidden features of MACE (parity :math:`(-1)^l`)."""
    return o3.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])


__all__ = ["ElementAttrs", "ElementLinear", "EnergyReadout", "MACEInteraction", "NodeEmbedding", "hidden_irreps"]
