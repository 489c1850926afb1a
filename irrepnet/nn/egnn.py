r"""Scalar-vector message passing on coordinates: the EGNN layer and the radial field.

- :class:`EGNNLayer`: the E(n)-equivariant graph convolution of Satorras, Hoogeboom
  and Welling, "E(n) Equivariant Graph Neural Networks", ICML 2021
  (https://arxiv.org/abs/2102.09844), eqs. 3-7, with the options of the paper's code.
- :class:`RadialFieldLayer`: the radial field of Köhler, Klein and Noé, "Equivariant
  flows: sampling configurations for multi-body systems with symmetric energies"
  (2019, https://arxiv.org/abs/1910.00753), as used in the EGNN paper's Table 2.
- :class:`ScalarEmbedding`: a plain ``Linear`` on ``0e`` node features (the EGNN's
  input embedding).

How the coordinates travel
--------------------------
The coordinates being updated are carried as a *shift* from the input positions,
:math:`x^l = x^0 + s^l` (field :data:`COORD_SHIFT`), and the relative vectors as
:math:`x^l_i - x^l_j = (x^0_i - x^0_j) + s^l_i - s^l_j`, with :math:`x^0_i - x^0_j` the
``edge_vec`` of the graph. It is the same function as updating absolute coordinates,
but the shift is translation invariant, so the predicted displacement
:math:`x^L - x^0 = s^L` never comes out of the cancellation of two large absolute
coordinates: in float32, at coordinates of 50 that difference is off by up to 2e-6 (half
an ulp), a relative error of 5e-4 on the 1e-3 displacements of an untrained EGNN, five
times the audit's float32 tolerance.

Convention: ``edge_index[0]`` is the sender :math:`j`, ``edge_index[1]`` the receiver
:math:`i`; messages are aggregated on receivers with :mod:`irrepnet.scatter`, or, on a
regular graph (the full graph of equal-size systems), as a sum over the ``(n, D)`` grid
of edge rows (:func:`~irrepnet.nn.graph_layer.sum_at_receivers`).

Where the time goes
-------------------
On the EGNN paper's N-body batch (100 graphs of 5 nodes, hidden 64) a layer is a few
``(E, 64) x (64, 64)`` products; the first one of :math:`\phi_e`, on the concatenation
:math:`[h_i, h_j, r_{ij}, a_{ij}]`, is computed on nodes instead
(``EGNNLayer._first_edge_layer``), which removes a third of the layer's
multiply-adds. On the peers suites' batches (``benchmarks/profile_egnn_peer.py``) a
training step then spends 40-60% of its self CPU time in the ``(E, 64) x (64, 64)``
products, forward and backward (with the bias copy of ``addmm``), 15-25% in SiLU and its
backward on ``(E, 64)`` edge tensors, and the rest in adds, gathers and scatters, per-op
overhead and Adam; an ``(E, H)`` elementwise pass costs a third to a half of a product. So
every such pass that can go, goes: the per-edge scalars of the first ``Linear`` enter
through one ``addmm``. Timings against the paper's own code: ``benchmarks/egnn_vs_paper.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .. import keys as K
from ..interface import IrrepsModule, Symmetry
from .graph_layer import at_receivers, edge_rows, sum_at_receivers

COORD_SHIFT = "coord_shift"  # (n, 3) 1o: x^l - x^0, how far coordinate-updating layers have moved each node
EDGE_ATTRS = "edge_attrs"  # (E, K): fixed per-edge attributes; Kx0e in equivariant models (q_i q_j, |x_i^0 - x_j^0|^2)
K.register_field(COORD_SHIFT, K.NODE)  # translation invariant, so not a position field
K.register_field(EDGE_ATTRS, K.EDGE)

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}
COORDS_AGG = ("mean", "sum")


def activation(act: str | nn.Module) -> nn.Module:
    """An activation module from its name (``"silu"``, ``"relu"``...) or the module itself."""
    if isinstance(act, nn.Module):
        return act
    try:
        return _ACTIVATIONS[act]()
    except KeyError:
        raise ValueError(f"unknown activation {act!r}; choose one of {sorted(_ACTIVATIONS)}") from None


def _init_small(layer: nn.Module) -> None:
    # Tiny initial coordinate weights (xavier, gain 1e-3, as in the EGNN paper's code): an
    # untrained stack then barely moves the nodes, which keeps the first steps stable.
    assert isinstance(layer, nn.Linear), layer
    nn.init.xavier_uniform_(layer.weight, gain=0.001)


def _reset_all(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            m.reset_parameters()


def relative_positions(data, shift: torch.Tensor) -> torch.Tensor:
    """:math:`x^l_i - x^l_j = (x^0_i - x^0_j) + s^l_i - s^l_j` per edge, in the layout of :func:`edge_rows`."""
    sender = data[K.EDGE_INDEX][0]
    return (
        edge_rows(data[K.EDGE_VEC], data) + at_receivers(shift, data) - edge_rows(shift.index_select(0, sender), data)
    )


class EGNNLayer(IrrepsModule):
    r"""E(n)-equivariant graph convolution (EGNN), Satorras et al., ICML 2021.

    .. math::

        m_{ij} &= \phi_e\big(h_i, h_j, \|x_i^l - x_j^l\|^2, a_{ij}\big)
                  \qquad [\,m_{ij} \leftarrow m_{ij}\, \sigma(w^\top m_{ij} + b)\ \text{with attention}]\\
        x_i^{l+1} &= x_i^l + C \sum_{j \ne i} (x_i^l - x_j^l)\, \phi_x(m_{ij})\\
        h_i^{l+1} &= \phi_h\big(h_i, \textstyle\sum_{j \ne i} m_{ij}\big)\ [+\, h_i\ \text{residual}]

    and, with ``velocity=True`` (the paper's eq. 7, ``E_GCL_vel``),

    .. math::

        v_i^{l+1} = \phi_v(h_i^l)\, v_i^{init} + C \sum_{j \ne i} (x_i^l - x_j^l)\, \phi_x(m_{ij}),
        \qquad x_i^{l+1} = x_i^l + v_i^{l+1}.

    :math:`h` are invariant features, :math:`a_{ij}` fixed invariant edge attributes,
    :math:`\phi_e = ` Linear, act, Linear, act; :math:`\phi_h = ` Linear, act, Linear;
    :math:`\phi_x = ` Linear, act, Linear (no bias); :math:`\phi_v = ` Linear, act, Linear.
    Only invariants enter the MLPs and vectors are only scaled by them, so the layer is
    E(3) (indeed E(n)) equivariant.

    Parameters
    ----------
    in_features, out_features : int
        dims of :math:`h` in and out (``out_features`` defaults to ``in_features``).
    hidden : int
        width of every MLP and of the messages (default ``out_features``).
    edge_attr_dim : int
        dim of :math:`a_{ij}` (field :data:`EDGE_ATTRS`), 0 for none.
    act : str or Module
        activation (SiLU in the paper).
    residual : bool
        :math:`h^{l+1} = h^l + \phi_h(\cdot)` (``recurrent`` in the paper's code); needs
        ``in_features == out_features``.
    attention : bool
        gate each message by :math:`\sigma(\mathrm{Linear}(m_{ij}))`.
    normalize : bool
        use :math:`(x_i - x_j) / (\|x_i - x_j\| + \epsilon)` in the coordinate update.
    tanh : bool
        bound :math:`\phi_x` to ``coords_range * tanh(.)``.
    coords_range : float
        the bound when ``tanh`` (1: plain tanh, as in the paper's code).
    coords_agg : {"mean", "sum"}
        "mean" is :math:`C = 1/(M-1)` on a full graph of :math:`M` nodes (the paper's code).
    coords_weight : float
        a further constant factor on the aggregated coordinate update.
    velocity : bool
        add :math:`\phi_v(h_i) v_i^{init}`, reading the initial velocity from ``velocity_field``.
    velocity_field : str
        field holding :math:`v^{init}` (default ``vel``).
    eps : float
        :math:`\epsilon` of ``normalize``.

    Shapes/irreps
    -------------
    reads ``node_features (n, F_in)`` ``F_in x0e``, ``edge_index (2, E)``,
    ``edge_vec (E, 3)`` ``1o`` (:math:`x_i^0 - x_j^0`), ``coord_shift (n, 3)`` ``1o``
    (:math:`x^l - x^0`), ``edge_attrs (E, K)`` ``Kx0e`` if ``K > 0``, ``vel (n, 3)``
    ``1o`` if ``velocity``; writes ``node_features (n, F_out)`` ``F_out x0e`` and
    ``coord_shift (n, 3)`` ``1o``.
    """

    symmetry = Symmetry.E3  # lets the audit judge the layer on its own

    def __init__(
        self,
        in_features: int,
        out_features: int | None = None,
        hidden: int | None = None,
        edge_attr_dim: int = 0,
        *,
        act: str | nn.Module = "silu",
        residual: bool = True,
        attention: bool = False,
        normalize: bool = False,
        tanh: bool = False,
        coords_range: float = 1.0,
        coords_agg: str = "mean",
        coords_weight: float = 1.0,
        velocity: bool = False,
        velocity_field: str = K.VEL,
        eps: float = 1e-8,
    ):
        out_features = in_features if out_features is None else out_features
        hidden = out_features if hidden is None else hidden
        if min(in_features, out_features, hidden) < 1 or edge_attr_dim < 0:
            raise ValueError(
                f"EGNNLayer needs positive feature dims and edge_attr_dim >= 0, got in={in_features}, "
                f"out={out_features}, hidden={hidden}, edge_attr_dim={edge_attr_dim}"
            )
        if residual and in_features != out_features:
            raise ValueError(
                f"a residual EGNNLayer needs in_features == out_features, got {in_features} -> "
                f"{out_features}; set residual=False"
            )
        if coords_agg not in COORDS_AGG:
            raise ValueError(f"coords_agg must be one of {COORDS_AGG}, got {coords_agg!r}")
        irreps_in = {K.NODE_FEATURES: f"{in_features}x0e", K.EDGE_INDEX: None, K.EDGE_VEC: "1o", COORD_SHIFT: "1o"}
        if edge_attr_dim:
            irreps_in[EDGE_ATTRS] = f"{edge_attr_dim}x0e"
        if velocity:
            irreps_in[velocity_field] = "1o"
        super().__init__(irreps_in, {K.NODE_FEATURES: f"{out_features}x0e", COORD_SHIFT: "1o"})
        self.in_features, self.out_features, self.hidden, self.edge_attr_dim = (
            in_features,
            out_features,
            hidden,
            edge_attr_dim,
        )
        self.residual, self.normalize, self.tanh, self.coords_range = residual, normalize, tanh, float(coords_range)
        self.coords_agg, self.coords_weight, self.eps = coords_agg, float(coords_weight), float(eps)
        self.velocity_field = velocity_field if velocity else None

        self.edge_mlp = nn.Sequential(
            nn.Linear(2 * in_features + 1 + edge_attr_dim, hidden),
            activation(act),
            nn.Linear(hidden, hidden),
            activation(act),
        )
        self.att_mlp = nn.Linear(hidden, 1) if attention else None
        self.node_mlp = nn.Sequential(
            nn.Linear(in_features + hidden, hidden), activation(act), nn.Linear(hidden, out_features)
        )
        self.coord_mlp = nn.Sequential(nn.Linear(hidden, hidden), activation(act), nn.Linear(hidden, 1, bias=False))
        self.vel_mlp = (
            nn.Sequential(nn.Linear(in_features, hidden), activation(act), nn.Linear(hidden, 1)) if velocity else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_all(self)
        _init_small(self.coord_mlp[-1])

    def forward(self, data):
        h, shift = data[K.NODE_FEATURES], data[COORD_SHIFT]  # [n, F_in], [n, 3]
        send, n = data[K.EDGE_INDEX][0], h.shape[0]
        # edge rows are (E, ...), or an (n, D, ...) grid on a regular graph (see graph_layer)
        rel = relative_positions(data, shift)  # x_i^l - x_j^l
        radial = rel.pow(2).sum(dim=-1, keepdim=True)  # [E, 1]
        m = self.edge_mlp[3](self.edge_mlp[2](self.edge_mlp[1](self._first_edge_layer(h, radial, send, data))))
        if self.att_mlp is not None:
            m = m * torch.sigmoid(self.att_mlp(m))
        if self.normalize:
            # vector_norm has a zero (not NaN) gradient at coincident nodes
            rel = rel / (torch.linalg.vector_norm(rel, dim=-1, keepdim=True) + self.eps)
        w = self.coord_mlp(m)  # [E, 1]
        if self.tanh:
            w = self.coords_range * torch.tanh(w)
        step = sum_at_receivers(rel * w, data, n, mean=self.coords_agg == "mean")  # [n, 3]
        if self.coords_weight != 1.0:  # x * 1.0 == x: the multiplication would only cost time
            step = self.coords_weight * step
        if self.vel_mlp is not None:
            step = step + self.vel_mlp(h) * data[self.velocity_field]  # phi_v(h^l) v^init
        out = self.node_mlp(torch.cat([h, sum_at_receivers(m, data, n)], dim=-1))  # [n, F_out]
        if self.residual:
            out = h + out
        return {**data, K.NODE_FEATURES: out, COORD_SHIFT: shift + step}

    def _first_edge_layer(self, h, radial, send, data):
        r"""The first ``Linear`` of :math:`\phi_e` on :math:`[h_i, h_j, \|x_i - x_j\|^2, a_{ij}]`.

        Its weight is :math:`[W_i\ W_j\ W_e]`, so it equals
        :math:`(W_i h + b)_i + (W_j h)_j + W_e\,[r_{ij}, a_{ij}]`: the two
        ``(E, F) x (F, H)`` products of the concatenated input become two ``(n, F) x (F, H)``
        products on nodes (the bias folded into the first), gathered onto edges (EGNN_vel's
        parameters and numbers, up to the order of additions; a third of the layer's
        multiply-adds on the N-body batch). The per-edge scalars :math:`[r_{ij}, a_{ij}]`
        (``1 + K`` columns) go through one ``addmm`` onto the gathered sum, rather than a
        broadcast product per column (each of which was three more ``(E, H)`` passes,
        forward and backward, on graphs where such passes cost as much as the products).

        Shapes
        ------
        ``h (n, F)``, ``radial`` in the layout of :func:`edge_rows` (``(E, 1)`` or
        ``(n, D, 1)``) -> ``(E, H)`` or ``(n, D, H)``
        """
        lin, F = self.edge_mlp[0], self.in_features
        h_i = nn.functional.linear(h, lin.weight[:, :F], lin.bias)  # [n, H]: W_i h + b
        h_j = nn.functional.linear(h, lin.weight[:, F : 2 * F])  # [n, H]: W_j h
        pair = at_receivers(h_i, data) + edge_rows(h_j.index_select(0, send), data)  # [E, H] or [n, D, H]
        scalars = radial if not self.edge_attr_dim else torch.cat([radial, edge_rows(data[EDGE_ATTRS], data)], dim=-1)
        # pair + [r_ij, a_ij] W_e^T in one addmm: the sum is written once
        pre = torch.addmm(
            pair.reshape(-1, pair.shape[-1]), scalars.reshape(-1, scalars.shape[-1]), lin.weight[:, 2 * F :].T
        )
        return pre.view(pair.shape)

    def extra_repr(self) -> str:
        opts = [
            f"{self.in_features} -> {self.out_features}",
            f"hidden={self.hidden}",
            f"edge_attr_dim={self.edge_attr_dim}",
            f"coords_agg={self.coords_agg!r}",
        ]
        opts += [
            name
            for name, on in (
                ("residual", self.residual),
                ("attention", self.att_mlp is not None),
                ("normalize", self.normalize),
                ("tanh", self.tanh),
                ("velocity", self.vel_mlp is not None),
            )
            if on
        ]
        return ", ".join(opts) + f", {super().extra_repr()}"


class RadialFieldLayer(IrrepsModule):
    r"""Radial field (Köhler, Klein, Noé 2019), the EGNN paper's Table 2 baseline.

    .. math::

        x_i^{l+1} = x_i^l + C \sum_{j \ne i} (x_i^l - x_j^l)\,
                    \phi\big(\|x_i^l - x_j^l\|, a_{ij}\big)
                    \ [+\ \phi_v(\|v_i^{init}\|)\, v_i^{init}]

    with :math:`\phi = ` Linear, act, Linear (no bias), tanh, and, when velocities are
    given, :math:`\phi_v = ` Linear(1, hidden), act, Linear(hidden, 1) (the EGNN paper
    code's ``RF_vel``). There are no node features: only distances and edge attributes
    decide the field, which is what makes it a weaker but exactly E(3)-equivariant model.

    Parameters
    ----------
    edge_attr_dim : int
        dim of :math:`a_{ij}` (field :data:`EDGE_ATTRS`), 0 for none.
    hidden : int
        width of :math:`\phi` and :math:`\phi_v`.
    act : str or Module
    velocity : bool
        add the velocity term, reading ``velocity_field``.
    coords_agg : {"mean", "sum"}
    coords_weight : float

    Shapes/irreps
    -------------
    reads ``edge_index (2, E)``, ``edge_vec (E, 3)`` ``1o``, ``coord_shift (n, 3)`` ``1o``,
    ``edge_attrs (E, K)`` ``Kx0e`` if ``K > 0``, ``vel (n, 3)`` ``1o`` if ``velocity``;
    writes ``coord_shift (n, 3)`` ``1o``.
    """

    symmetry = Symmetry.E3

    def __init__(
        self,
        edge_attr_dim: int = 0,
        hidden: int = 64,
        *,
        act: str | nn.Module = "silu",
        velocity: bool = False,
        velocity_field: str = K.VEL,
        coords_agg: str = "mean",
        coords_weight: float = 1.0,
    ):
        if hidden < 1 or edge_attr_dim < 0:
            raise ValueError(
                f"RadialFieldLayer needs hidden >= 1 and edge_attr_dim >= 0, "
                f"got hidden={hidden}, edge_attr_dim={edge_attr_dim}"
            )
        if coords_agg not in COORDS_AGG:
            raise ValueError(f"coords_agg must be one of {COORDS_AGG}, got {coords_agg!r}")
        irreps_in = {K.EDGE_INDEX: None, K.EDGE_VEC: "1o", COORD_SHIFT: "1o"}
        if edge_attr_dim:
            irreps_in[EDGE_ATTRS] = f"{edge_attr_dim}x0e"
        if velocity:
            irreps_in[velocity_field] = "1o"
        super().__init__(irreps_in, {COORD_SHIFT: "1o"})
        self.edge_attr_dim, self.hidden = edge_attr_dim, hidden
        self.coords_agg, self.coords_weight = coords_agg, float(coords_weight)
        self.velocity_field = velocity_field if velocity else None
        self.phi = nn.Sequential(
            nn.Linear(1 + edge_attr_dim, hidden), activation(act), nn.Linear(hidden, 1, bias=False), nn.Tanh()
        )
        self.vel_mlp = nn.Sequential(nn.Linear(1, hidden), activation(act), nn.Linear(hidden, 1)) if velocity else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_all(self)
        _init_small(self.phi[2])

    def forward(self, data):
        shift = data[COORD_SHIFT]  # [n, 3]
        rel = relative_positions(data, shift)  # [E, 3] x_i^l - x_j^l, or (n, D, 3) on a regular graph
        phi_in = [torch.linalg.vector_norm(rel, dim=-1, keepdim=True)]
        if self.edge_attr_dim:
            phi_in.append(edge_rows(data[EDGE_ATTRS], data))
        step = self.coords_weight * sum_at_receivers(
            rel * self.phi(torch.cat(phi_in, dim=-1)), data, shift.shape[0], mean=self.coords_agg == "mean"
        )
        if self.vel_mlp is not None:
            v = data[self.velocity_field]
            step = step + self.vel_mlp(torch.linalg.vector_norm(v, dim=-1, keepdim=True)) * v
        return {**data, COORD_SHIFT: shift + step}

    def extra_repr(self) -> str:
        return (
            f"edge_attr_dim={self.edge_attr_dim}, hidden={self.hidden}, coords_agg={self.coords_agg!r}"
            + (", velocity" if self.vel_mlp is not None else "")
            + f", {super().extra_repr()}"
        )


class ScalarEmbedding(IrrepsModule):
    """``Linear`` on invariant node features: ``node_features`` ``F x0e`` -> ``H x0e``.

    A plain ``torch.nn.Linear`` (not ``e3nn.o3.Linear``): on scalars both are
    equivariant, and this keeps the EGNN paper's initialisation and parameter count.

    Shapes/irreps
    -------------
    ``node_features (n, F)`` ``Fx0e`` -> ``node_features (n, H)`` ``Hx0e``.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__({K.NODE_FEATURES: f"{in_features}x0e"}, {K.NODE_FEATURES: f"{out_features}x0e"})
        self.linear = nn.Linear(in_features, out_features)

    def reset_parameters(self) -> None:
        self.linear.reset_parameters()

    def forward(self, data):
        return {**data, K.NODE_FEATURES: self.linear(data[K.NODE_FEATURES])}
