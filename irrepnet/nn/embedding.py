"""Edge embeddings: spherical harmonics of edge directions and radial bases of lengths.

- :class:`SphericalHarmonicsEdgeAttrs`: :math:`Y^{l}(\\hat r_{ij})`, :math:`l = 0..l_{max}`,
  the angular part every tensor-product layer contracts with (Thomas et al. 2018,
  "Tensor field networks"; e3nn ``o3.spherical_harmonics``).
- :class:`RadialEmbedding`: :math:`B_k(r_{ij})\\, u(r_{ij})`, a radial basis times a smooth
  cutoff that goes to 0 with its derivatives at :math:`r_{max}`, so that an edge
  entering or leaving the cutoff does not make the model jump. Bases:

  * ``"bessel"``: :math:`\\sqrt{2/r_c}\\, \\sin(k \\pi r / r_c) / r` (Gasteiger et al.
    2020, DimeNet; NequIP), frequencies optionally trainable, times the polynomial
    envelope :math:`u(d) = 1 - \\frac{(p+1)(p+2)}{2} d^p + p(p+2) d^{p+1} - \\frac{p(p+1)}{2} d^{p+2}`,
    :math:`d = r / r_c` (DimeNet);
  * ``"smooth_finite"``, ``"gaussian"``, ``"cosine"``...: e3nn's
    ``soft_one_hot_linspace`` (the e3nn reference network uses ``"smooth_finite"``,
    which is already 0 at the cutoff), times :math:`\\sqrt{n}` so that entries are of
    order one, as in e3nn's ``gate_points_2101``; the others do not vanish at the
    cutoff (a gaussian centred near it is about 1 there) and get the envelope too.

Both are computed once per batch and shared by every layer. On a task with bonds
(:mod:`irrepnet.nn.topology`) ``RadialEmbedding(chain=True)`` appends the one-hot
chain separation :math:`t_{ij}` times the same envelope :math:`u(r_{ij})`, so that
radial MLPs can tell a bond from a close encounter and messages still vanish at the
cutoff.

Shapes/irreps
-------------
``edge_vec 1o (E, 3)`` -> ``edge_sh (E, (lmax+1)^2)`` with irreps ``Irreps.spherical_harmonics(lmax)``;
``edge_len (E,)`` -> ``edge_embedding (E, n_basis [+ 3])`` with irreps ``n_basis x 0e`` (``+ 3`` with
``chain=True``, which also reads ``node_index (n,)`` and ``edge_index (2, E)``); on a
symmetric graph (``pair_edge``/``edge_pair`` present) also ``pair_embedding (P, n_basis)``,
one row per unordered pair, which radial MLPs read through :func:`~irrepnet.nn.graph_layer.per_pair`.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace

from .. import keys as K
from ..interface import IrrepsModule
from .topology import CHAIN_CLASSES, chain_separation_of

E3NN_BASES = ("gaussian", "cosine", "smooth_finite", "fourier", "bessel_e3nn")


def polynomial_cutoff(x: torch.Tensor, r_max: float, p: float = 6.0) -> torch.Tensor:
    """DimeNet's envelope: 1 at 0, falls to 0 at ``r_max`` with ``p`` continuous derivatives."""
    d = x / r_max
    u = (
        1.0
        - (p + 1.0) * (p + 2.0) / 2.0 * d.pow(p)
        + p * (p + 2.0) * d.pow(p + 1.0)
        - p * (p + 1.0) / 2.0 * d.pow(p + 2.0)
    )
    return u * (d < 1.0)


class SphericalHarmonicsEdgeAttrs(IrrepsModule):
    """Spherical harmonics of the edge directions, ``l = 0..lmax``.

    Parameters
    ----------
    lmax : int
    normalization : {"component", "norm", "integral"}
        e3nn's normalisation; ``"component"`` gives entries of order one.
    """

    def __init__(self, lmax: int, normalization: str = "component", p: int = -1):
        if lmax < 0:
            raise ValueError(f"lmax must be >= 0, got {lmax}")
        self.sh_irreps = o3.Irreps.spherical_harmonics(lmax, p=p)
        super().__init__({K.EDGE_VEC: "1o"}, {K.EDGE_SH: self.sh_irreps})
        self.lmax, self.normalization = lmax, normalization
        # the degrees as plain ints: the forward must not read an Irreps, which torch.compile
        # cannot guard on (e3nn's Irrep refuses len()); parity does not change the values
        self._degrees = list(range(lmax + 1))

    def forward(self, data):
        # normalize=True: the direction only; the length goes through the radial basis.
        sh = o3.spherical_harmonics(self._degrees, data[K.EDGE_VEC], normalize=True, normalization=self.normalization)
        return {**data, K.EDGE_SH: sh}


class RadialEmbedding(IrrepsModule):
    """Radial basis of edge lengths times a smooth cutoff.

    Parameters
    ----------
    n_basis : int
    r_max : float
        the cutoff; embeddings are exactly 0 beyond it.
    basis : {"bessel", "gaussian", "cosine", "smooth_finite", "fourier", "bessel_e3nn"}
    trainable : bool
        ``"bessel"`` only: learn the frequencies (NequIP does).
    p : float
        exponent of the polynomial envelope (``"bessel"``, the chain features and the
        e3nn bases that do not vanish at ``r_max``).
    chain : bool
        append the one-hot chain separation of a task with bonds
        (:mod:`irrepnet.nn.topology`) times the envelope.

    Attributes
    ----------
    dim : int
        width of the embedding: ``n_basis``, plus 3 with ``chain``.
    """

    def __init__(
        self,
        n_basis: int = 8,
        r_max: float = 3.5,
        basis: str = "bessel",
        trainable: bool = False,
        p: float = 6.0,
        chain: bool = False,
    ):
        if n_basis < 1 or r_max <= 0:
            raise ValueError(f"need n_basis >= 1 and r_max > 0, got n_basis={n_basis}, r_max={r_max}")
        if basis != "bessel" and basis not in E3NN_BASES:
            raise ValueError(f"unknown radial basis {basis!r}; choose 'bessel' or one of {E3NN_BASES}")
        self.dim = n_basis + CHAIN_CLASSES * int(chain)
        irreps_in = {K.EDGE_LEN: None, **({K.NODE_INDEX: None, K.EDGE_INDEX: None} if chain else {})}
        super().__init__(irreps_in, {K.EDGE_EMBEDDING: f"{self.dim}x0e"})
        self.n_basis, self.r_max, self.basis, self.p, self.chain = n_basis, float(r_max), basis, p, chain
        freqs = math.pi * torch.arange(1, n_basis + 1, dtype=torch.get_default_dtype())
        if basis == "bessel":
            self.freqs = torch.nn.Parameter(freqs, requires_grad=trainable)

    def embed(self, r: torch.Tensor) -> torch.Tensor:
        """``(E,)`` lengths -> ``(E, n_basis)`` embedding."""
        if self.basis == "bessel":
            # sin(k pi r / rc) / r is finite at r = 0 (limit k pi / rc); clamp avoids 0/0.
            safe = r.clamp_min(1e-9)[:, None]
            b = math.sqrt(2.0 / self.r_max) * torch.sin(self.freqs * safe / self.r_max) / safe
            return b * polynomial_cutoff(r, self.r_max, self.p)[:, None]
        basis = "bessel" if self.basis == "bessel_e3nn" else self.basis
        emb = soft_one_hot_linspace(r, 0.0, self.r_max, self.n_basis, basis=basis, cutoff=True)
        if self.basis != "smooth_finite":
            # e3nn's other bases are not 0 at r_max (a gaussian centred near it is ~1 there)
            emb = emb * polynomial_cutoff(r, self.r_max, self.p)[:, None]
        return emb * math.sqrt(self.n_basis)

    def embed_edges(self, data, r: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """:meth:`embed` of lengths ``r`` of the edges ``edge_index``, with the chain features if asked."""
        emb = self.embed(r)
        if not self.chain:
            return emb
        # the envelope makes a bond's feature fade out at the cutoff like the radial basis
        t = chain_separation_of(data, edge_index, r) * polynomial_cutoff(r, self.r_max, self.p)[:, None]
        return torch.cat([emb, t], dim=-1)

    def forward(self, data):
        if K.PAIR_EDGE not in data:
            ei = data[K.EDGE_INDEX] if self.chain else None
            return {**data, K.EDGE_EMBEDDING: self.embed_edges(data, data[K.EDGE_LEN], ei)}
        # a symmetric graph: embed each pair once (see irrepnet.nn.graph_layer.per_pair)
        first = data[K.PAIR_EDGE]
        ei = data[K.EDGE_INDEX].index_select(1, first) if self.chain else None
        pair = self.embed_edges(data, data[K.EDGE_LEN].index_select(0, first), ei)
        return {**data, K.PAIR_EMBEDDING: pair, K.EDGE_EMBEDDING: pair.index_select(0, data[K.EDGE_PAIR])}

    def extra_repr(self) -> str:
        return f"basis={self.basis!r}, n_basis={self.n_basis}, r_max={self.r_max}, chain={self.chain}"
