r"""Generalised Clebsch-Gordan tensors of MACE's product basis, reduced to their symmetric part.

Batatia et al. 2022, "MACE: Higher Order Equivariant Message Passing Neural Networks for
Fast and Accurate Force Fields" (NeurIPS), Eq. 10: the product basis of order :math:`\nu`
couples :math:`\nu` copies of one atomic basis :math:`A` (irreps ``I``, one channel) into an
output irrep :math:`L` with generalised Clebsch-Gordan tensors

.. math::

    B^{L}_{\nu k, M} = \sum_{a_1 \ldots a_\nu} \mathcal{U}^{L}_{\nu k, M a_1 \ldots a_\nu}
                       \, A_{a_1} \cdots A_{a_\nu}, \qquad a_i = 1 \ldots \dim I .

The tensors are built here by recursive coupling with e3nn's Wigner 3j symbols
(:func:`e3nn.o3.wigner_3j`): :math:`C^{(1)}` selects one input irrep; :math:`C^{(t)}` couples
:math:`C^{(t-1)}` (irrep :math:`l_{t-1}`) with one more input irrep :math:`l` into every
:math:`l_t \in l_{t-1} \otimes l` (parity :math:`p_{t-1} p`),

.. math::

    C^{(t)}_{M, a_1 \ldots a_t} = \sum_{m, m'} C^{(t-1)}_{m, a_1 \ldots a_{t-1}}
                                  \, \delta_{a_t, o_l + m'} \, \begin{pmatrix} l_{t-1} & l & l_t \\ m & m' & M \end{pmatrix},

and intermediates that can no longer reach an output irrep are dropped. Because the
:math:`\nu` copies are the same feature, only the part of each tensor symmetric in
:math:`a_1 \ldots a_\nu` is seen; the tensors are symmetrised, and a Gram-Schmidt pass (in
the fixed order of the recursion, float64) keeps a linearly independent set and makes it
orthonormal. Every kept tensor is a linear combination of equivariant ones with scalar
coefficients, so it is itself equivariant; the number kept is the number of weights
(paths) MACE has for that :math:`(\nu, L)`. Normalisation: :math:`\sum_{M,a}
\mathcal{U}_{k, M a}\, \mathcal{U}_{k', M a} = (2L+1)\, \delta_{kk'}`, so each output component
sees a tensor of unit norm on average.

Shapes/irreps
-------------
``irreps_in`` with multiplicity 1, ``d = irreps_in.dim``; for an output irrep of dimension
``2L+1``: ``(num_paths, 2L+1, d, ..., d)`` (``nu`` axes of size ``d``), symmetric in the last
``nu`` axes.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import torch
from e3nn import o3

# A symmetrised tensor whose residual norm is below this adds no path. Absolute, not relative:
# the coupled tensors have norms of order 0.1-1 (products of unit-norm 3j symbols), and some
# symmetrise to rounding noise (norm 5e-18 for 0e+1o+2e+3o -> 1o at nu=3) that a relative
# test would keep as a path.
_DROP = 1e-9


def _couple(left: torch.Tensor, l_left: int, l_in: int, offset: int, d: int, l_out: int) -> torch.Tensor:
    """One more copy of the input irrep ``l_in`` (at ``offset``) coupled into ``l_out``."""
    cg = o3.wigner_3j(l_left, l_in, l_out, dtype=torch.float64)  # (2l_left+1, 2l_in+1, 2l_out+1)
    rest = left.shape[1:]
    new = torch.zeros((2 * l_out + 1, *rest, d), dtype=torch.float64)
    # the selector delta(a_t, offset + m') puts the contraction into one slice of the new axis
    new[..., offset : offset + 2 * l_in + 1] = torch.einsum("m...,mnM->M...n", left, cg)
    return new


def _coupled_tensors(
    irreps_in: o3.Irreps, nu: int, targets: tuple[o3.Irrep, ...]
) -> list[tuple[o3.Irrep, torch.Tensor]]:
    """All recursively coupled tensors of order ``nu`` whose irrep is one of ``targets``."""
    d = irreps_in.dim
    lmax_in = max(ir.l for _, ir in irreps_in)
    offsets = [s.start for s in irreps_in.slices()]
    level = []
    for (_, ir), off in zip(irreps_in, offsets):
        c = torch.zeros(ir.dim, d, dtype=torch.float64)
        c[:, off : off + ir.dim] = torch.eye(ir.dim, dtype=torch.float64)
        level.append((ir, c))
    for t in range(2, nu + 1):
        remaining = nu - t  # copies still to couple after this one
        nxt = []
        for ir_left, c in level:
            for (_, ir), off in zip(irreps_in, offsets):
                for ir_mid in ir_left * ir:
                    # drop intermediates no later coupling can bring back to a target
                    if all(abs(ir_mid.l - tg.l) > remaining * lmax_in for tg in targets):
                        continue
                    if remaining == 0 and ir_mid not in targets:
                        continue
                    nxt.append((ir_mid, _couple(c, ir_left.l, ir.l, off, d, ir_mid.l)))
        level = nxt
    return [(ir, c) for ir, c in level if ir in targets]


def _symmetrise(c: torch.Tensor, nu: int) -> torch.Tensor:
    perms = itertools.permutations(range(1, nu + 1))
    return torch.stack([c.permute(0, *p) for p in perms]).mean(dim=0)


def _orthonormal_subset(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Gram-Schmidt (twice, for stability) in the given order; dependent tensors are dropped."""
    kept: list[torch.Tensor] = []
    for c in tensors:
        v = c.flatten().clone()
        for _ in range(2):
            for q in kept:
                v = v - (q @ v) * q
        if v.norm() > _DROP:
            kept.append(v / v.norm())
    return kept


@lru_cache(maxsize=64)
def symmetric_coupling_basis(irreps_in: str, ir_out: str, nu: int) -> torch.Tensor:
    r"""The symmetric generalised Clebsch-Gordan tensors coupling ``nu`` copies of ``irreps_in`` into ``ir_out``.

    Parameters
    ----------
    irreps_in : str
        input irreps with multiplicity 1 each, e.g. ``"0e+1o+2e+3o"``.
    ir_out : str
        one output irrep, e.g. ``"1o"``.
    nu : int
        correlation order (number of copies), 1 or more.

    Returns
    -------
    torch.Tensor
        float64, ``(num_paths, 2L+1, d, ..., d)`` with ``nu`` axes of size ``d = irreps_in.dim``;
        ``num_paths`` is 0 when ``ir_out`` cannot be reached. Cached (treat as read-only).
    """
    irreps = o3.Irreps(irreps_in)
    target = o3.Irrep(ir_out)
    if any(mul != 1 for mul, _ in irreps):
        raise ValueError(f"symmetric_coupling_basis needs multiplicity 1 per irrep, got {irreps}")
    if nu < 1:
        raise ValueError(f"correlation order must be >= 1, got {nu}")
    raw = [_symmetrise(c, nu) for _, c in _coupled_tensors(irreps, nu, (target,))]
    shape = (target.dim,) + (irreps.dim,) * nu
    kept = _orthonormal_subset(raw)
    if not kept:
        return torch.zeros((0, *shape), dtype=torch.float64)
    return torch.stack(kept).reshape(-1, *shape) * math.sqrt(target.dim)


def sorted_tuples(d: int, nu: int) -> list[tuple[int, ...]]:
    """Non-decreasing index tuples of length ``nu`` over ``range(d)``, in lexicographic order (the monomials of degree ``nu``)."""
    return list(itertools.combinations_with_replacement(range(d), nu))


def tuple_multiplicity(t: tuple[int, ...]) -> int:
    """How many orderings of the index tuple ``t`` there are (``nu! / prod(count!)``)."""
    out = math.factorial(len(t))
    for _, group in itertools.groupby(t):
        out //= math.factorial(len(list(group)))
    return out
