r"""Tensor-product convolution: the message passing of Tensor Field Networks and NequIP.

Thomas et al. 2018, "Tensor field networks" (arXiv:1802.08219); Batzner et al. 2022,
"E(3)-equivariant graph neural networks for data-efficient and accurate interatomic
potentials" (NequIP, Nat. Commun. 13, 2453). For node features :math:`h_j` and an edge
:math:`j \to i` with direction :math:`\hat r_{ij}` and length :math:`r_{ij}`,

.. math::

    m_i = \frac{1}{Z_i} \sum_{j \in N(i)} \bigoplus_{(l_1, l_2, l_3)}
          R^{l_1 l_2 l_3}_u(r_{ij})\; \bigl(h^{l_1}_{j,u} \otimes Y^{l_2}(\hat r_{ij})\bigr)^{l_3},
    \qquad h'_i = W_{out}\, m_i \;(+\ \text{skip}),

one channel per input channel ``u`` and path (e3nn's ``"uvu"`` mode), weights
:math:`R` per edge from a radial MLP of the edge embedding (bias-free, so it is 0
where the embedding is 0, beyond the cutoff), and :math:`Z_i` one of
``sqrt(avg_num_neighbors)`` (a constant, NequIP), the node's degree (mean) or 1 (sum).

Why not ``e3nn.o3.TensorProduct``: on a CPU its generated code runs one small
``einsum`` per path, and slicing whose backward zero-fills full-size buffers; in
e3nn's ``gate_points_2101`` at the reference's size the per-edge tensor products are
about 60% of a training step (profile in ``benchmarks/speed.py --profile``). Here the
Clebsch-Gordan coefficients are contracted with the spherical harmonics first, for
all paths in one matmul, :math:`T_{e,(k,l_2),i} = \sum_j c\, C^{l_1 l_2 l_3}_{ijk} Y^{l_2}_{e,j}`,
so each ``(l_1, l_3)`` group is one batched matmul
``(E, n_{l_2}(2l_3+1), 2l_1+1) @ (E, 2l_1+1, U)`` over the ``U`` input channels of degree
:math:`l_1` (both parities together); channels are last, so the radial weights multiply
contiguous rows. The numbers equal e3nn's (``c`` is e3nn's normalisation constant;
tested against ``o3.TensorProduct``). Messages are summed onto nodes group by group,
and only then put in e3nn's sorted layout and mixed by an ``o3.Linear``.

The radial MLP (``n_basis -> neurons -> weight_numel`` per edge) costs ten times the
multiply-adds of the tensor product itself at the reference size; it depends on
:math:`r_{ij}` only, which ``j -> i`` shares, so on a symmetric graph it runs once per
unordered pair (:func:`~irrepnet.nn.graph_layer.per_pair`) and is gathered to both edges.

Shapes/irreps
-------------
reads ``node_features (n, irreps_in.dim)``, ``edge_index (2, E)``,
``edge_sh (E, irreps_sh.dim)``, ``edge_embedding (E, n_basis)`` ``n_basis x 0e``;
writes ``node_features (n, irreps_out.dim)``.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.math import normalize2mom
from torch.utils.checkpoint import checkpoint

from .. import keys as K
from ..interface import IrrepsModule
from ..scatter import segment_count, segment_sum
from .graph_layer import edge_chunks, edge_rows, per_pair, sum_at_receivers

NORMALIZATIONS = ("sqrt_avg_neighbors", "mean", "sum")
SKIPS = ("auto", "linear", "residual", "none")


class _FanInWeights(torch.nn.ParameterList):
    """Weights ``(fan_in, fan_out)`` that :class:`RadialMLP` applies divided by ``sqrt(fan_in)``.

    ``fan_in_scales`` tells :func:`~irrepnet.nn.parametrization.use_linear_parametrization` so.
    """

    def fan_in_scales(self):
        return {str(i): torch.full_like(w, w.shape[0] ** -0.5) for i, w in enumerate(self)}


class RadialMLP(torch.nn.Module):
    r"""Bias-free MLP ``n_basis -> neurons^layers -> n_out`` with a normalised SiLU.

    Weights are ``N(0, 1)`` and divided by :math:`\sqrt{\text{fan-in}}` in ``forward``
    (e3nn's ``FullyConnectedNet`` parametrisation; a model can store them as ``torch.nn.Linear``
    does instead with :func:`~irrepnet.nn.parametrization.use_linear_parametrization`), the SiLU
    is rescaled to unit second moment; no bias, so that a zero embedding (beyond the
    cutoff) gives zero weights and edges enter and leave smoothly.

    Shapes: ``(E, n_basis) -> (E, n_out)``.
    """

    def __init__(self, n_basis: int, n_out: int, neurons: int = 64, layers: int = 1):
        super().__init__()
        sizes = [n_basis] + [neurons] * layers + [n_out]
        self.weights = _FanInWeights(torch.nn.Parameter(torch.randn(a, b)) for a, b in zip(sizes, sizes[1:]))
        self.act_scale = float(normalize2mom(torch.nn.functional.silu).cst)
        self.sizes = sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, w in enumerate(self.weights):
            # the activation's rescaling is folded into the next weight: one (E, neurons) op less
            scale = (self.act_scale if i > 0 else 1.0) / math.sqrt(w.shape[0])
            x = x @ (w * scale)
            if i < last:
                x = torch.nn.functional.silu(x)
        return x

    def extra_repr(self) -> str:
        return " -> ".join(map(str, self.sizes))


class EdgeTensorProduct(torch.nn.Module):
    r"""Fused ``"uvu"`` tensor product of per-edge node features with edge spherical harmonics.

    Paths :math:`(l_1, l_2, l_3)` with :math:`|l_1 - l_2| \le l_3 \le l_1 + l_2` are kept
    when some input block of degree :math:`l_1` yields an irrep of ``irreps_out``
    (parity :math:`p_1 (-1)^{l_2}` for spherical harmonics). Each (input channel, path)
    is one output channel; ``irreps_mid`` lists them sorted by irrep, the layout
    :meth:`sort_channels` produces.

    Parameters
    ----------
    irreps_in : Irreps
        node features (any order, repeated irreps allowed).
    irreps_sh : Irreps
        spherical harmonics, each irrep once (``Irreps.spherical_harmonics(lmax)``).
    irreps_out : Irreps
        the irreps wanted downstream; only their ``l``/parity matter here.
    irrep_normalization : {"component", "norm"}
        as in e3nn: path constant :math:`\sqrt{2 l_3 + 1}` or :math:`\sqrt{(2l_1+1)(2l_2+1)}`.

    Shapes/irreps
    -------------
    ``forward(x_by_degree, sh, weight)``: per input degree ``l1`` in ``degrees`` a
    ``(E, 2l1+1, U_l1)`` tensor (:meth:`split_by_degree` of the features, gathered on
    edges), ``sh (E, irreps_sh.dim)``, ``weight (E, weight_numel)`` -> one
    ``(E, (2l3+1) * n_paths * U_l1)`` message per ``(l1, l3)`` group, in the order of
    ``groups``; concatenated they are the ``flat_dim`` columns :meth:`sort_channels` reads.
    """

    mid_index: torch.Tensor  # buffer: group layout -> irreps_mid columns

    def __init__(self, irreps_in, irreps_sh, irreps_out, irrep_normalization: str = "component"):
        super().__init__()
        self.irreps_in, self.irreps_sh = o3.Irreps(irreps_in), o3.Irreps(irreps_sh)
        self.irreps_out = o3.Irreps(irreps_out)
        if irrep_normalization not in ("component", "norm"):
            raise ValueError(f"irrep_normalization must be 'component' or 'norm', got {irrep_normalization!r}")
        if any(mul != 1 for mul, _ in self.irreps_sh) or len({ir.l for _, ir in self.irreps_sh}) != len(self.irreps_sh):
            raise ValueError(f"irreps_sh must hold each degree once with multiplicity 1, got {self.irreps_sh}")
        allowed = {ir for _, ir in self.irreps_out}
        sh_offsets = [s.start for s in self.irreps_sh.slices()]

        # channels of each input degree l1, both parities together (they share the CG coefficients)
        parities, columns = {}, {}
        for l1 in sorted({ir.l for _, ir in self.irreps_in}):
            cols, par = [], []
            for (mul, ir), sl in zip(self.irreps_in, self.irreps_in.slices()):
                if ir.l == l1:
                    cols += list(range(sl.start, sl.stop))
                    par += [ir.p] * mul
            parities[l1], columns[l1] = par, cols

        # groups (l1, l3) with their paths l2; B maps sh to every group's (n_paths * d3, d1)
        # coupling matrix at once, and each group is then one batched matmul
        self.degrees: list[int] = []  # input degrees with at least one path
        self.groups: list[list[tuple]] = []  # per degree: (l3, U, n_paths) for each of its groups
        self.t_sizes, self.k_sizes, self.w_sizes = [], [], []  # per group: T columns, rows k, weights
        blocks, channels, flat = [], [], 0  # channels: (irrep, its 2l3+1 columns in the group layout)
        for l1 in parities:
            U, d1 = len(parities[l1]), 2 * l1 + 1
            per_l3 = []
            for l3 in sorted({ir.l for ir in allowed}):
                l2s = [
                    j
                    for j, (_, ir2) in enumerate(self.irreps_sh)
                    if abs(l1 - ir2.l) <= l3 <= l1 + ir2.l
                    and any(o3.Irrep(l3, p * ir2.p) in allowed for p in set(parities[l1]))
                ]
                if l2s:
                    per_l3.append((l3, l2s))
            if not per_l3:
                continue
            self.degrees.append(l1)
            self.groups.append([])
            self.register_buffer(f"_cols_{l1}", torch.tensor(columns[l1], dtype=torch.long), persistent=False)
            K = sum(len(l2s) * (2 * l3 + 1) for l3, l2s in per_l3)
            B = torch.zeros(self.irreps_sh.dim, K, d1, dtype=torch.float64)
            off = 0
            for l3, l2s in per_l3:
                d3, n = 2 * l3 + 1, len(l2s)
                for a, j in enumerate(l2s):
                    l2 = self.irreps_sh[j].ir.l
                    alpha = d3 if irrep_normalization == "component" else d1 * (2 * l2 + 1)
                    w3j = o3.wigner_3j(l1, l2, l3, dtype=torch.float64)  # (d1, d2, d3)
                    rows = slice(sh_offsets[j], sh_offsets[j] + 2 * l2 + 1)
                    # column off + k * n + a: component-major, so a weight per (path, channel) is
                    # one contiguous row of n * U numbers repeated over the d3 components
                    B[rows, off + a : off + n * d3 : n, :] = math.sqrt(alpha) * w3j.permute(1, 2, 0)
                off += n * d3
                self.groups[-1].append((l3, U, n))
                self.k_sizes.append(n * d3)
                self.w_sizes.append(n * U)
                for a, j in enumerate(l2s):  # group layout: (component k, path a, channel u)
                    for u in range(U):
                        ir = o3.Irrep(l3, parities[l1][u] * self.irreps_sh[j].ir.p)
                        channels.append((ir, [flat + (k * n + a) * U + u for k in range(d3)]))
                flat += U * n * d3
            # (sh, K, d1) -> column blocks per group (sh, k_g * d1), so that T splits by group
            blocks += list(B.split(self.k_sizes[-len(per_l3) :], dim=1))
            self.t_sizes += [k * d1 for k in self.k_sizes[-len(per_l3) :]]
        self.weight_numel, self.flat_dim = sum(self.w_sizes), flat
        B = (
            torch.cat([b.reshape(self.irreps_sh.dim, -1) for b in blocks], dim=1)
            if blocks
            else torch.zeros(self.irreps_sh.dim, 0, dtype=torch.float64)
        )
        # a float64 master copy: casting a float32 model to float64 must not keep float32-rounded
        # coefficients (they would break equivariance at the 1e-9 level of a float64 audit)
        self._cg_sh_exact = B
        self.register_buffer("cg_sh", B.to(torch.get_default_dtype()), persistent=False)

        # node-level permutation from the group layout to irreps_mid (sorted, simplified);
        # channels whose irrep is not wanted downstream are dropped here
        order: list[int] = []
        mid: list[tuple[int, o3.Irrep]] = []
        for ir in sorted({c[0] for c in channels if c[0] in allowed}):
            blocks_of_ir = [c for c_ir, c in channels if c_ir == ir]
            order += [i for c in blocks_of_ir for i in c]
            mid.append((len(blocks_of_ir), ir))
        self.irreps_mid = o3.Irreps(mid)
        self.register_buffer("mid_index", torch.tensor(order, dtype=torch.long), persistent=False)

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)  # .to()/.double()/.float() all pass here
        self.cg_sh = self._cg_sh_exact.to(dtype=self.cg_sh.dtype, device=self.cg_sh.device)
        return out

    def split_by_degree(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(rows, irreps_in.dim)`` -> per degree ``l1`` a contiguous ``(rows, 2l1+1, U_l1)``, channels last."""
        return [
            x.index_select(1, getattr(self, f"_cols_{l1}"))
            .view(x.shape[0], -1, 2 * l1 + 1)
            .transpose(1, 2)
            .contiguous()
            for l1 in self.degrees
        ]

    def forward(self, x_by_degree: list[torch.Tensor], sh: torch.Tensor, weight: torch.Tensor) -> list[torch.Tensor]:
        E = sh.shape[0]
        # all paths' CG . Y in one matmul; split (not sliced) so that backward is one cat
        # rather than a zero-filled full-size gradient per slice
        T = (sh @ self.cg_sh).split(self.t_sizes, dim=1)
        weights = weight.split(self.w_sizes, dim=1)
        outs: list[torch.Tensor] = []
        # one bmm per (l1, l3) group: one per input degree for all its groups was as fast
        # eagerly and 15% slower compiled (tfn at the reference size, interleaved A/B)
        for xe, groups in zip(x_by_degree, self.groups):  # xe: (E, d1, U)
            d1 = xe.shape[1]
            for l3, U, n in groups:
                g = len(outs)
                t = T[g].view(E, self.k_sizes[g], d1)  # rows (component k, path a)
                # an outer product when d1 == 1: bmm is slow for an inner dimension of 1
                # (compiled, products summed over the 2l1+1 components instead of bmm were
                # 1.2-1.5x slower: tfn at the reference size, interleaved A/B)
                y = t * xe if d1 == 1 else torch.bmm(t, xe)  # [n_edges, k * n_paths, channel]
                # the weight broadcasts over the 2l3+1 components, the outer dimension of the
                # group, so the product runs over contiguous rows of n * U numbers
                w = weights[g].view(E, 1, n * U)
                # an explicit width: a graph without edges (E = 0) cannot infer a -1
                outs.append((y.view(E, 2 * l3 + 1, n * U) * w).reshape(E, (2 * l3 + 1) * n * U))
        return outs

    def sort_channels(self, mid_groups: torch.Tensor) -> torch.Tensor:
        """``(rows, flat_dim)`` in group layout -> ``(rows, irreps_mid.dim)`` in e3nn layout."""
        return mid_groups.index_select(1, self.mid_index)

    def extra_repr(self) -> str:
        return f"{self.irreps_in} x {self.irreps_sh} -> {self.irreps_mid}, {len(self.k_sizes)} path groups"


class TensorProductConv(IrrepsModule):
    r"""Tensor-product convolution over ``node_features`` (TFN / NequIP interaction block).

    :math:`h' = c_s\, S(h) + c_x\, W_{out}\bigl(Z^{-1} \sum_j R(r_{ij}) (W_{in} h_j \otimes Y(\hat r_{ij}))\bigr)`
    with :math:`W_{in}` the optional self-interaction (``o3.Linear``), :math:`S` the skip:
    ``"linear"`` an ``o3.Linear`` self-connection mixed with :math:`c_s = \sin(\pi/8)`,
    :math:`c_x = \cos(\pi/8)` (unit variance, as e3nn's ``gate_points_2101``; :math:`c_x = 1`
    where the skip has no path), ``"residual"`` the identity added with :math:`c_s = c_x = 1`
    (NequIP's ResNet update; needs ``irreps_in == irreps_out``), ``"auto"`` residual when
    the irreps match and linear otherwise, ``"none"``.

    Parameters
    ----------
    irreps_in, irreps_out : Irreps
        node features read and written.
    irreps_sh : Irreps
        of ``edge_sh``.
    n_basis : int
        width of ``edge_embedding``.
    radial_neurons, radial_layers : int
        hidden width and depth of the radial MLP.
    normalization : {"sqrt_avg_neighbors", "mean", "sum"}
        :math:`Z_i`: :math:`\sqrt{\text{avg\_num\_neighbors}}`, the degree of node ``i``, or 1.
    avg_num_neighbors : float, optional
        required for ``"sqrt_avg_neighbors"``.
    self_interaction : bool
        apply :math:`W_{in}` to the features before the tensor product.
    skip : {"auto", "linear", "residual", "none"}
    irrep_normalization : {"component", "norm"}
        e3nn's convention for the path constants; ``edge_sh`` should use the same.
    edge_chunk : int, optional
        on graphs with more edges, take them this many at a time under activation
        checkpointing (:func:`~irrepnet.nn.graph_layer.edge_chunks`): memory set by the
        chunk, not by the ``(E, weight_numel)`` weights; the same numbers.

    Shapes/irreps
    -------------
    ``node_features (n, irreps_in.dim)``, ``edge_index (2, E)``, ``edge_sh (E, irreps_sh.dim)``,
    ``edge_embedding (E, n_basis)`` -> ``node_features (n, irreps_out.dim)``; internally
    ``(E, flat_dim)`` messages and ``(n, irreps_mid.dim)`` aggregated features.
    """

    def __init__(
        self,
        irreps_in,
        irreps_out,
        irreps_sh,
        n_basis: int,
        *,
        radial_neurons: int = 64,
        radial_layers: int = 1,
        normalization: str = "sqrt_avg_neighbors",
        avg_num_neighbors: float | None = None,
        self_interaction: bool = True,
        skip: str = "auto",
        irrep_normalization: str = "component",
        edge_chunk: int | None = None,
    ):
        irreps_in, irreps_out, irreps_sh = o3.Irreps(irreps_in), o3.Irreps(irreps_out), o3.Irreps(irreps_sh)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        if normalization == "sqrt_avg_neighbors" and not (avg_num_neighbors and avg_num_neighbors > 0):
            raise ValueError(
                "normalization='sqrt_avg_neighbors' needs avg_num_neighbors > 0, "
                f"got {avg_num_neighbors!r}; or use normalization='mean' or 'sum'"
            )
        if skip not in SKIPS:
            raise ValueError(f"skip must be one of {SKIPS}, got {skip!r}")
        if edge_chunk is not None and edge_chunk < 1:
            raise ValueError(f"edge_chunk must be >= 1 edges (or None), got {edge_chunk}")
        if skip == "residual" and irreps_in != irreps_out:
            raise ValueError(
                f"skip='residual' needs irreps_in == irreps_out, got {irreps_in} -> {irreps_out}; "
                "use skip='linear' or 'auto'"
            )
        super().__init__(
            {K.NODE_FEATURES: irreps_in, K.EDGE_INDEX: None, K.EDGE_SH: irreps_sh, K.EDGE_EMBEDDING: f"{n_basis}x0e"},
            {K.NODE_FEATURES: irreps_out},
        )
        self.normalization, self.avg_num_neighbors = normalization, avg_num_neighbors
        self.edge_chunk = edge_chunk
        self.lin_in = o3.Linear(irreps_in, irreps_in) if self_interaction else None
        self.tp = EdgeTensorProduct(irreps_in, irreps_sh, irreps_out, irrep_normalization)
        if self.tp.weight_numel == 0:
            raise ValueError(f"no tensor-product path from {irreps_in} x {irreps_sh} reaches {irreps_out}")
        self.radial = RadialMLP(n_basis, self.tp.weight_numel, radial_neurons, radial_layers)
        self.lin_out = o3.Linear(self.tp.irreps_mid, irreps_out)
        if skip == "auto":
            skip = "residual" if irreps_in == irreps_out else "linear"
        self.skip = skip
        self.sc = o3.Linear(irreps_in, irreps_out) if skip == "linear" else None
        if self.sc is not None:
            c_x = torch.where(self.sc.output_mask.bool(), torch.tensor(math.cos(math.pi / 8)), torch.tensor(1.0))
            self.register_buffer("c_x", c_x.to(torch.get_default_dtype()), persistent=False)

    def forward(self, data):
        x = data[K.NODE_FEATURES]
        sender, receiver = data[K.EDGE_INDEX]
        n = x.shape[0]
        h = self.lin_in(x) if self.lin_in is not None else x
        chunks = edge_chunks(sender.shape[0], self.edge_chunk, data)
        if chunks is not None:  # a large graph: the (E, weight_numel) weights a chunk at a time
            sh, emb = data[K.EDGE_SH], data[K.EDGE_EMBEDDING]
            mid = sum(
                checkpoint(self._summed_messages, h, sender[a:b], receiver[a:b], sh[a:b], emb[a:b], use_reentrant=False)
                for a, b in chunks
            )
        else:
            # gather per degree on edges: (E, 2l1+1, U_l1) each, channels last
            h_edges = [t.index_select(0, sender) for t in self.tp.split_by_degree(h)]
            weight = per_pair(self.radial, data)  # [E, weight_numel]
            msgs = self.tp(h_edges, data[K.EDGE_SH], weight)
            mid = torch.cat([sum_at_receivers(edge_rows(m, data), data, n) for m in msgs], dim=1)  # [n, flat_dim]
        if self.normalization == "sqrt_avg_neighbors":
            mid = mid / math.sqrt(self.avg_num_neighbors)
        elif self.normalization == "mean":
            degree = segment_count(receiver, n, mid.dtype).clamp(min=1)
            mid = mid / degree[:, None]
        out = self.lin_out(self.tp.sort_channels(mid))
        if self.skip == "linear":
            out = math.sin(math.pi / 8) * self.sc(x) + self.c_x * out
        elif self.skip == "residual":
            out = x + out
        return {**data, K.NODE_FEATURES: out}

    def _summed_messages(self, h, sender, receiver, sh, emb):
        """``(n, flat_dim)``: the messages of the edges given, summed onto their receivers."""
        h_edges = [t.index_select(0, sender) for t in self.tp.split_by_degree(h)]
        msgs = self.tp(h_edges, sh, self.radial(emb))
        return torch.cat([segment_sum(m, receiver, h.shape[0]) for m in msgs], dim=1)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, normalization={self.normalization!r}"
            + (f" ({self.avg_num_neighbors})" if self.normalization == "sqrt_avg_neighbors" else "")
            + f", skip={self.skip!r}, self_interaction={self.lin_in is not None}"
        )
