r"""Steerable MLPs and the SEGNN message-passing layer.

Brandstetter, Hesselink, van der Pol, Bekkers, Welling, "Geometric and Physical
Quantities Improve E(3) Equivariant Message Passing", ICLR 2022 (arXiv:2110.02905).

A *steerable linear layer* conditioned on an attribute :math:`a` (spherical harmonics
of a geometric quantity) is a fully connected tensor product with learnt weights that
do not depend on the edge, plus a bias on the ``0e`` outputs:

.. math::

    \bigl(W_a h\bigr)^{l_3}_w = \sum_{(l_1, l_2)} \sum_u W^{l_1 l_2 l_3}_{wu}
        \bigl(h^{l_1}_u \otimes a^{l_2}\bigr)^{l_3} \;+\; b_w [l_3 = 0]

(the paper's eq. 5, e3nn's ``"uvw"`` mode with an attribute of multiplicity one). With
:math:`a = 1 \oplus Y^1 \oplus \dots` the :math:`l_2 = 0` paths are an ordinary
equivariant linear map and the others let the geometry steer it. A *steerable MLP*
alternates such layers with gated nonlinearities (:class:`~irrepnet.nn.gate.Gate`).

Because the attribute has one channel per degree, the weights can mix the input
channels before the coupling with the attribute (:class:`SteerableLinear`), which is
what makes the layer cheap: one matmul per input irrep and small per-row couplings.

The SEGNN layer (eqs. 7-8 of the paper):

.. math::

    m_{ij} = \phi_m\bigl(h_i, h_j, s_{ij};\ a_{ij}\bigr), \qquad
    m_i = \sum_{j \in N(i)} u(r_{ij})\, m_{ij}, \qquad
    h_i' = h_i + \phi_f\bigl(h_i, m_i;\ a_i\bigr)

with :math:`\phi_m` two gated steerable layers conditioned on the edge attribute
:math:`a_{ij} = Y(x_i - x_j)`, :math:`\phi_f` a gated steerable layer and a steerable
linear layer conditioned on the node attribute :math:`a_i`, :math:`s_{ij}` invariant
edge scalars (squared distance, charge products, chain separation) and :math:`u` the
polynomial cutoff envelope when the graph has a cutoff (1 otherwise), so that an edge
enters and leaves a radius graph smoothly.

Shapes/irreps
-------------
:class:`SteerableLinear`: ``x (rows, irreps_in.dim)``, ``attr (rows, irreps_attr.dim)``
-> ``(rows, irreps_out.dim)``. :class:`SEGNNLayer`: ``node_features (n, H.dim)``,
``node_attrs (n, A.dim)``, ``edge_sh (E, A.dim)``, ``edge_index (2, E)``,
``edge_attrs (E, K)`` ``Kx0e`` (``K > 0``), ``edge_len (E,)`` (with a cutoff) ->
``node_features (n, H.dim)``.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3

from .. import keys as K
from ..interface import IrrepsModule
from .embedding import polynomial_cutoff
from .gate import Gate
from .graph_layer import edge_rows, sum_at_receivers
from .parametrization import PARAMETRIZATIONS

#: invariant edge scalars of a SEGNN layer (same field as the EGNN family's edge attributes)
EDGE_SCALARS = "edge_attrs"
AGGREGATIONS = ("sum", "mean", "normalized")


class SteerableLinear(torch.nn.Module):
    r"""Fully connected tensor product with an attribute, plus a ``0e`` bias (see the module docstring).

    Computed "mix first": for each path :math:`p = (l_1, l_2, l_3)`,
    :math:`\sum_u W^p_{wu} (h^{l_1}_u \otimes a^{l_2})^{l_3} = (z^p_w \otimes a^{l_2})^{l_3}` with
    :math:`z^p = W^p h^{l_1}`, because the attribute has one channel per degree. So every
    input irrep is mixed by one matmul for all the paths that start from it, and the
    coupling with the attribute acts on the (few) output channels, through the
    attribute contracted with the Clebsch-Gordan coefficients, a ``(rows, 2l_1+1, 2l_3+1)``
    matrix per path. Listing the ``(channel, path)`` products first and mixing them after
    (e3nn's order, or :class:`~irrepnet.nn.tp_conv.EdgeTensorProduct` with unit weights and an
    ``o3.Linear``) computed the same numbers at 215 ms per SEGNN training step on an N-body
    batch (100 x 5 nodes, one CPU thread), a third of it in batched matmuls of 3 x 3 matrices.

    Normalisation as e3nn's ``FullyConnectedTensorProduct`` (``"component"`` irreps, ``"element"``
    paths): weights :math:`N(0, 1)`, divided by the square root of the number of input channels
    that reach each output irrep, and coefficients :math:`\sqrt{2 l_3 + 1}\, C^{l_1 l_2 l_3}`.

    Parameters
    ----------
    irreps_in : Irreps
        the features (any order, repeated irreps allowed).
    irreps_attr : Irreps
        the attribute: spherical harmonics, each degree once (``Irreps.spherical_harmonics(l)``).
    irreps_out : Irreps
        each irrep once (sorted and simplified, e.g. ``32x0e + 32x1o``); every one must be
        reachable from ``irreps_in x irreps_attr``.

    Attributes
    ----------
    weight_numel : int
        weights of the mixing, as many as a fully connected tensor product has; biases not counted.

    Shapes/irreps
    -------------
    ``x (rows, irreps_in.dim)``, ``attr (rows, irreps_attr.dim)`` -> ``(rows, irreps_out.dim)``
    """

    def __init__(self, irreps_in, irreps_attr, irreps_out):
        super().__init__()
        self.irreps_in, self.irreps_attr = o3.Irreps(irreps_in), o3.Irreps(irreps_attr)
        self.irreps_out = o3.Irreps(irreps_out)
        if any(mul != 1 for mul, _ in self.irreps_attr) or len({ir.l for _, ir in self.irreps_attr}) != len(
            self.irreps_attr
        ):
            raise ValueError(f"irreps_attr must hold each degree once with multiplicity 1, got {self.irreps_attr}")
        outs = [ir for _, ir in self.irreps_out]
        if len(set(outs)) != len(outs):
            raise ValueError(
                f"irreps_out must hold each irrep once, got {self.irreps_out}; use irreps.sort().irreps.simplify()"
            )
        attr_offsets = [s.start for s in self.irreps_attr.slices()]

        # input columns of each irrep type, as (channel u, component) in e3nn's layout
        in_types = []
        for _, ir in self.irreps_in:
            if ir not in in_types:
                in_types.append(ir)
        paths = []  # (input type index, attr index, output index)
        for o, (_, ir_out) in enumerate(self.irreps_out):
            for i, ir_in in enumerate(in_types):
                for j, (_, ir_a) in enumerate(self.irreps_attr):
                    if ir_in.p * ir_a.p == ir_out.p and abs(ir_in.l - ir_a.l) <= ir_out.l <= ir_in.l + ir_a.l:
                        paths.append((i, j, o))
        reached = {o for _, _, o in paths}
        missing = [str(ir) for o, (_, ir) in enumerate(self.irreps_out) if o not in reached]
        if missing:
            raise ValueError(
                f"no tensor-product path from {self.irreps_in} x {self.irreps_attr} reaches "
                f"{' + '.join(missing)} of {self.irreps_out}; add attribute degrees or input "
                "irreps that couple to it"
            )
        self.in_types = [(ir.l, ir.p) for ir in in_types]
        used = sorted({i for i, _, _ in paths})
        mul_in = {i: sum(mul for mul, ir in self.irreps_in if ir == in_types[i]) for i in used}
        fan_in = {o: sum(mul_in[i] for i, _, oo in paths if oo == o) for o in reached}
        self.in_mul = mul_in
        for i in used:
            cols = [
                c
                for (mul, ir), sl in zip(self.irreps_in, self.irreps_in.slices())
                if ir == in_types[i]
                for c in range(sl.start, sl.stop)
            ]
            self.register_buffer(f"_cols_{i}", torch.tensor(cols, dtype=torch.long), persistent=False)

        def degrees(path):
            i, j, o = path
            return in_types[i].l, self.irreps_attr[j].ir.l, self.irreps_out[o].ir.l

        # the cheaper order per path: mix the input channels first when the output has at least as
        # many components (l1 <= l3, or l2 = 0), couple with the attribute first otherwise
        # (1o x 1o -> 0e: a dot product per channel, then one mix instead of three)
        self.mix_groups, self.couple_groups = [], []  # (i, [(j, o, width)]) / (o, [(i, j)])
        self.weights_mix, self.weights_couple = torch.nn.ParameterList(), torch.nn.ParameterList()
        for i in used:
            mine = [
                (j, o, self.irreps_out[o].mul)
                for ii, j, o in paths
                if ii == i and (degrees((ii, j, o))[1] == 0 or degrees((ii, j, o))[0] <= degrees((ii, j, o))[2])
            ]
            if mine:
                self.mix_groups.append((i, mine))
                self.weights_mix.append(torch.nn.Parameter(torch.randn(mul_in[i], sum(w for _, _, w in mine))))
                scale = torch.cat([torch.full((w,), fan_in[o] ** -0.5) for _, o, w in mine])
                self.register_buffer(
                    f"_scale_mix_{len(self.mix_groups) - 1}", scale.to(torch.get_default_dtype()), persistent=False
                )
        for o in sorted(reached):
            theirs = [
                (i, j)
                for i, j, oo in paths
                if oo == o and (i, j, o) not in {(ii, jj, oo2) for ii, g in self.mix_groups for jj, oo2, _ in g}
            ]
            if theirs:
                self.couple_groups.append((o, theirs))
                width = sum(mul_in[i] for i, _ in theirs)
                self.weights_couple.append(torch.nn.Parameter(torch.randn(width, self.irreps_out[o].mul)))
        self.fan_in = fan_in
        self.parametrization = "e3nn"
        self._couple_scale = {o: fan_in[o] ** -0.5 for o in reached}
        # sqrt(2 l3 + 1) C^{l1 l2 l3}, float64 master copies (see EdgeTensorProduct: a float64 audit)
        self._cg_exact = {}
        for path in paths:
            l1, l2, l3 = degrees(path)
            self._cg_exact[path] = math.sqrt(2 * l3 + 1) * o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
        self._cg = {k: v.to(torch.get_default_dtype()) for k, v in self._cg_exact.items()}
        self.attr_slices = [(off, 2 * ir.l + 1) for off, (_, ir) in zip(attr_offsets, self.irreps_attr)]
        self.out_dims = [(mul, ir.l) for mul, ir in self.irreps_out]
        self.scalar_out = [o for o, (_, ir) in enumerate(self.irreps_out) if ir == o3.Irrep("0e")]
        # a bias on the 0e outputs only (an invariant constant); none at all without them
        self.bias = (
            torch.nn.Parameter(torch.zeros(sum(self.irreps_out[o].mul for o in self.scalar_out)))
            if self.scalar_out
            else None
        )
        self.weight_numel = sum(w.numel() for w in self.weights_mix) + sum(w.numel() for w in self.weights_couple)

    @torch.no_grad()
    def reset_parameters(self, parametrization: str = "e3nn") -> None:
        r"""Draw the weights anew in one of two parametrisations of the same function class.

        ``"e3nn"`` (the default at construction): :math:`W \sim \mathcal N(0, 1)`, applied
        as :math:`W / \sqrt{\text{fan-in}}` (e3nn's path normalisation); ``"linear"``:
        :math:`W \sim U(-k, k)`, :math:`k = 1/\sqrt{\text{fan-in}}`, applied as it is, and
        the 0e biases as well, like ``torch.nn.Linear`` (SEGNN's own code, its
        ``tp_rescale``). The two differ in the initial scale (a factor :math:`\sqrt 3`) and,
        under Adam, in the step size relative to the effective weight (about
        :math:`\sqrt{\text{fan-in}}` times larger in ``"linear"``).
        """
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
        linear = parametrization == "linear"
        for g, (_, mine) in enumerate(self.mix_groups):
            scale = getattr(self, f"_scale_mix_{g}")
            w = self.weights_mix[g]
            if linear:
                w.uniform_(-1.0, 1.0).mul_(scale)  # the per-column bound 1/sqrt(fan-in) of each output
                scale.fill_(1.0)
            else:
                w.normal_()
                scale.copy_(torch.cat([torch.full((width,), self.fan_in[o] ** -0.5) for _, o, width in mine]))
        for g, (o, _) in enumerate(self.couple_groups):
            k = self.fan_in[o] ** -0.5
            if linear:
                self.weights_couple[g].uniform_(-k, k)
            else:
                self.weights_couple[g].normal_()
            self._couple_scale[o] = 1.0 if linear else k
        if self.bias is not None:
            if linear:
                k = torch.cat([torch.full((self.out_dims[o][0],), self.fan_in[o] ** -0.5) for o in self.scalar_out])
                self.bias.copy_((torch.rand_like(self.bias) * 2 - 1) * k.to(self.bias))
            else:
                self.bias.zero_()
        self.parametrization = parametrization

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)  # .to()/.double()/.float() all pass here
        like = next(self.parameters())
        self._cg = {k: v.to(dtype=like.dtype, device=like.device) for k, v in self._cg_exact.items()}
        return out

    def path_weights(self):
        r"""``{(input type, attribute index, output index): (U, W) matrix}``, the weights as used (scaled).

        For inspection and tests: the layer computes, for every path,
        :math:`\sum_u W_{uw} (h_u \otimes a)` with these matrices.
        """
        out = {}
        for g, (i, mine) in enumerate(self.mix_groups):
            w = self.weights_mix[g] * getattr(self, f"_scale_mix_{g}")
            start = 0
            for j, o, width in mine:
                out[(i, j, o)], start = w[:, start : start + width], start + width
        for g, (o, theirs) in enumerate(self.couple_groups):
            w = self.weights_couple[g] * self._couple_scale[o]
            start = 0
            for i, j in theirs:
                u = self.in_mul[i]
                out[(i, j, o)], start = w[start : start + u], start + u
        return out

    def _coupling(self, attr: torch.Tensor, path) -> torch.Tensor:
        """The attribute contracted with the path's coefficients: ``(rows, 2l1+1, 2l3+1)``."""
        off, d2 = self.attr_slices[path[1]]
        return torch.einsum("rb,abc->rac", attr[:, off : off + d2], self._cg[path])

    def forward(self, x: torch.Tensor, attr: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        inputs = {}  # per input type: [rows, U, 2l1+1], e3nn's layout
        for i in self.in_mul:  # every input type some path starts from
            # explicit sizes, no -1: a graph without edges has rows = 0
            inputs[i] = x.index_select(1, getattr(self, f"_cols_{i}")).view(
                rows, self.in_mul[i], 2 * self.in_types[i][0] + 1
            )
        out: list[torch.Tensor | None] = [None] * len(self.out_dims)

        def add(o, y):
            out[o] = y if out[o] is None else out[o] + y

        for g, (i, mine) in enumerate(self.mix_groups):
            d1 = 2 * self.in_types[i][0] + 1
            w = self.weights_mix[g] * getattr(self, f"_scale_mix_{g}")
            z = (inputs[i].transpose(1, 2).reshape(rows * d1, self.in_mul[i]) @ w).view(rows, d1, w.shape[1])
            start = 0
            for j, o, width in mine:
                zp, start = z[:, :, start : start + width], start + width  # [rows, d1, W]
                if self.attr_slices[j][1] == 1:  # l2 = 0: the coefficients are the identity
                    off = self.attr_slices[j][0]
                    add(o, attr[:, off : off + 1, None] * zp)
                elif d1 == 1:  # an outer product with the coupled attribute
                    add(o, self._coupling(attr, (i, j, o))[:, 0, :, None] * zp)
                else:
                    add(o, torch.einsum("rac,raw->rcw", self._coupling(attr, (i, j, o)), zp))
        for g, (o, theirs) in enumerate(self.couple_groups):
            d3 = 2 * self.out_dims[o][1] + 1
            coupled = []
            for i, j in theirs:
                t = self._coupling(attr, (i, j, o))  # [rows, d1, d3]
                if d3 == 1:  # a dot product per channel
                    coupled.append((inputs[i] * t[:, None, :, 0]).sum(-1, keepdim=True).transpose(1, 2))
                else:
                    coupled.append(torch.einsum("rua,rac->rcu", inputs[i], t))
            c = torch.cat(coupled, dim=2) if len(coupled) > 1 else coupled[0]  # [rows, d3, sum U]
            w = self.weights_couple[g] * self._couple_scale[o]
            add(o, (c.reshape(rows * d3, w.shape[0]) @ w).view(rows, d3, w.shape[1]))
        blocks: list[torch.Tensor] = []
        bias = self.bias.split([self.out_dims[o][0] for o in self.scalar_out]) if self.scalar_out else []
        for o, (mul, l3) in enumerate(self.out_dims):
            y = out[o]
            assert y is not None  # every output irrep has at least one path (checked at construction)
            if o in self.scalar_out:
                y = y + bias[self.scalar_out.index(o)].view(1, 1, mul)
            blocks.append(y.transpose(1, 2).reshape(rows, mul * (2 * l3 + 1)))  # e3nn layout: (channel, component)
        return torch.cat(blocks, dim=1)

    def extra_repr(self) -> str:
        return f"{self.irreps_in} x {self.irreps_attr} -> {self.irreps_out}, {self.weight_numel} weights"


class SteerableGated(torch.nn.Module):
    """A steerable linear layer to the gate's input irreps, then the gate: ``-> hidden``."""

    def __init__(self, irreps_in, irreps_attr, hidden):
        super().__init__()
        self.gate = Gate(hidden)
        self.linear = SteerableLinear(irreps_in, irreps_attr, self.gate.parts.irreps_in)
        self.irreps_out = self.gate.parts.irreps_out

    def forward(self, x: torch.Tensor, attr: torch.Tensor) -> torch.Tensor:
        return self.gate.activate(self.linear(x, attr))


def steerable_weight_paths(lmax_hidden: int, irreps_attr) -> int:
    """Weights per squared copy of ``Y(0..lmax_hidden)`` in a steerable layer ``H x attr -> H``.

    A layer on ``n`` copies of ``0e + 1o + ... (lmax_hidden)`` has ``n**2`` times this many
    weights; :func:`weight_balanced_irreps` solves for ``n``.
    """
    one = o3.Irreps.spherical_harmonics(lmax_hidden)
    return SteerableLinear(one, irreps_attr, one).weight_numel


def weight_balanced_irreps(features: int, lmax_hidden: int, irreps_attr) -> o3.Irreps:
    r"""Hidden irreps :math:`n \times (0e + 1o + \dots)` whose steerable layer has at least the
    weights of a ``features x features`` scalar linear layer, with the smallest such ``n``
    (the paper's "weight-balanced" irreps: compare models at equal weight budgets).

    For 64 features, hidden and attribute degrees up to 1 this is ``32x0e + 32x1o``
    (4 paths: :math:`4 n^2 \ge 64^2`).
    """
    if features < 1 or lmax_hidden < 0:
        raise ValueError(f"need features >= 1 and lmax_hidden >= 0, got {features}, {lmax_hidden}")
    paths = steerable_weight_paths(lmax_hidden, irreps_attr)
    n = 1
    while paths * n * n < features * features:
        n += 1
    return (o3.Irreps.spherical_harmonics(lmax_hidden) * n).sort().irreps.simplify()


class SEGNNLayer(IrrepsModule):
    """One SEGNN message-passing layer over ``node_features`` (see the module docstring).

    Parameters
    ----------
    irreps_hidden : Irreps
        node features in and out (the update is residual).
    irreps_attr : Irreps
        of ``node_attrs`` and ``edge_sh`` (spherical harmonics up to ``lmax_attr``).
    edge_scalars : int
        width of the invariant ``edge_attrs`` read by the messages (0: none).
    r_max : float, optional
        the graph's cutoff: messages are multiplied by the polynomial envelope of
        ``edge_len`` (reads it); ``None`` for a full graph (the paper's N-body setting).
    aggregation : {"sum", "mean", "normalized"}
        of the messages at each receiver: the sum (the paper), the mean over the node's
        edges, or the sum divided by ``avg_num_neighbors``. With a cutoff the mean would
        jump when an edge enters (the degree changes, however small its message), so
        radius graphs take "sum" or "normalized".
    avg_num_neighbors : float, optional
        for ``"normalized"``.
    """

    def __init__(
        self,
        irreps_hidden,
        irreps_attr,
        edge_scalars: int = 0,
        *,
        r_max: float | None = None,
        aggregation: str = "sum",
        avg_num_neighbors: float | None = None,
    ):
        irreps_hidden, irreps_attr = o3.Irreps(irreps_hidden), o3.Irreps(irreps_attr)
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        if aggregation == "mean" and r_max is not None:
            raise ValueError(
                "aggregation='mean' divides by the degree, which jumps when an edge crosses the "
                "cutoff; on a radius graph use 'normalized' (sum / avg_num_neighbors) or 'sum'"
            )
        if aggregation == "normalized" and not (avg_num_neighbors and avg_num_neighbors > 0):
            raise ValueError(f"aggregation='normalized' needs avg_num_neighbors > 0, got {avg_num_neighbors!r}")
        irreps_in = {
            K.NODE_FEATURES: irreps_hidden,
            K.NODE_ATTRS: irreps_attr,
            K.EDGE_INDEX: None,
            K.EDGE_SH: irreps_attr,
        }
        if edge_scalars:
            irreps_in[EDGE_SCALARS] = f"{edge_scalars}x0e"
        if r_max is not None:
            irreps_in[K.EDGE_LEN] = None
        super().__init__(irreps_in, {K.NODE_FEATURES: irreps_hidden})
        message_in = (
            irreps_hidden + irreps_hidden + (o3.Irreps(f"{edge_scalars}x0e") if edge_scalars else o3.Irreps(""))
        )
        self.message_1 = SteerableGated(message_in, irreps_attr, irreps_hidden)
        self.message_2 = SteerableGated(irreps_hidden, irreps_attr, irreps_hidden)
        self.update_1 = SteerableGated(irreps_hidden + irreps_hidden, irreps_attr, irreps_hidden)
        self.update_2 = SteerableLinear(irreps_hidden, irreps_attr, irreps_hidden)
        self.edge_scalars, self.r_max, self.aggregation = edge_scalars, r_max, aggregation
        self.avg_num_neighbors = avg_num_neighbors

    def forward(self, data):
        h, node_attrs = data[K.NODE_FEATURES], data[K.NODE_ATTRS]
        sender, receiver = data[K.EDGE_INDEX]
        parts = [h.index_select(0, receiver), h.index_select(0, sender)]
        if self.edge_scalars:
            parts.append(data[EDGE_SCALARS])
        edge_sh = data[K.EDGE_SH]
        m = self.message_2(self.message_1(torch.cat(parts, dim=1), edge_sh), edge_sh)  # [E, H]
        if self.r_max is not None:
            m = m * polynomial_cutoff(data[K.EDGE_LEN], self.r_max)[:, None]
        m = sum_at_receivers(edge_rows(m, data), data, h.shape[0], mean=self.aggregation == "mean")  # [n, H]
        if self.aggregation == "normalized":
            m = m / self.avg_num_neighbors
        update = self.update_2(self.update_1(torch.cat([h, m], dim=1), node_attrs), node_attrs)
        return {**data, K.NODE_FEATURES: h + update}

    def extra_repr(self) -> str:
        cutoff = f", r_max={self.r_max}" if self.r_max is not None else ""
        return f"{super().extra_repr()}, aggregation={self.aggregation!r}{cutoff}"
