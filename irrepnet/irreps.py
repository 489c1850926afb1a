"""Irreps helpers: irreps dicts, packing of vector channels, exact Wigner matrices.

Conventions
-----------
An *irreps dict* maps a field name to an :class:`e3nn.o3.Irreps`, or to ``None`` for
fields that are not geometric (``edge_index``, ``batch``). Features use e3nn's
``mul_ir`` layout: ``"Cx1o"`` is ``(n, C, 3)`` flattened to ``(n, 3C)``, channel-major.
With e3nn >= 0.5 the ``1o`` basis is Cartesian ``(x, y, z)``, i.e.
``Irreps("1o").D_from_matrix(R) == R`` (tested in ``tests/test_irreps.py``), so
positions and velocities are ``1o`` as they are.

Why our own Wigner matrices: ``e3nn.o3.Irreps.D_from_matrix`` goes through Euler
angles and is accurate only to about 1e-7 (l=1) to 5e-5 (l=3) even in float64
(measured on e3nn 0.6). That is far above the float64 noise floor of an equivariant
network, so an audit built on it cannot tell float64 round-off from a real bug.
:func:`wigner_D` solves ``Y_l(R x) = D_l(R) Y_l(x)`` by least squares on random points,
which is exact to about 1e-15 in float64.

Shapes/irreps
-------------
``wigner_D(l, R)``: ``R (3, 3)`` -> ``(2l+1, 2l+1)``.
``irreps_D(irreps, R)``: ``(irreps.dim, irreps.dim)``, block diagonal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeAlias

import torch
from e3nn import o3

IrrepsLike: TypeAlias = str | o3.Irreps | o3.Irrep | None
IrrepsDict: TypeAlias = dict[str, o3.Irreps | None]


def as_irreps(irreps: IrrepsLike) -> o3.Irreps | None:
    """``"8x0e + 1x1o"`` -> ``Irreps``; ``None`` stays ``None``."""
    if irreps is None:
        return None
    try:
        return o3.Irreps(irreps)
    except (ValueError, AssertionError, TypeError) as exc:
        raise ValueError(f"invalid irreps {irreps!r}: {exc}. Write them like '8x0e + 4x1o'") from None


def as_irreps_dict(d: Mapping[str, IrrepsLike] | None) -> IrrepsDict:
    """Normalise a mapping of field -> irreps-like into an irreps dict."""
    if d is None:
        return {}
    return {str(k): as_irreps(v) for k, v in d.items()}


def format_irreps(irreps: o3.Irreps | None) -> str:
    """``irreps`` as text; ``None`` for a non-geometric field."""
    return "None" if irreps is None else str(irreps)


def format_irreps_dict(d: Mapping[str, o3.Irreps | None]) -> str:
    """An irreps dict as ``{field: irreps, ...}`` text, for error messages and reprs."""
    return "{" + ", ".join(f"{k}: {format_irreps(v)}" for k, v in d.items()) + "}"


def pack_vectors(v: torch.Tensor) -> torch.Tensor:
    """``(n, C, 3)`` Cartesian vectors -> ``(n, 3C)`` features of irreps ``Cx1o``."""
    if v.dim() != 3 or v.shape[-1] != 3:
        raise ValueError(f"pack_vectors expects shape (n, C, 3), got {tuple(v.shape)}")
    return v.reshape(v.shape[0], -1)


def unpack_vectors(x: torch.Tensor) -> torch.Tensor:
    """``(n, 3C)`` features of irreps ``Cx1o`` -> ``(n, C, 3)`` Cartesian vectors."""
    if x.dim() != 2 or x.shape[-1] % 3 != 0:
        raise ValueError(f"unpack_vectors expects shape (n, 3C), got {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1, 3)


def _proper_wigner_D(l: int, Q: torch.Tensor) -> torch.Tensor:
    """D_l(Q) for a proper rotation Q, in float64, by least squares on Y_l."""
    if l == 0:
        return torch.ones(1, 1, dtype=torch.float64)
    # A fixed, well-conditioned point set: deterministic so the audit is reproducible.
    gen = torch.Generator().manual_seed(1234 + l)
    pts = torch.randn(4 * (2 * l + 1), 3, generator=gen, dtype=torch.float64)
    y = o3.spherical_harmonics(l, pts, normalize=False)  # [m, 2l+1]
    y_rot = o3.spherical_harmonics(l, pts @ Q.T, normalize=False)  # [m, 2l+1]
    # y_rot = y @ D^T  ->  D^T = lstsq(y, y_rot)
    return torch.linalg.lstsq(y, y_rot).solution.T.contiguous()


def wigner_D(l: int, R: torch.Tensor, parity: int | None = None) -> torch.Tensor:
    """Representation matrix of the irrep ``(l, parity)`` at ``R`` in O(3), float64.

    ``parity`` defaults to ``(-1)**l`` (the parity of spherical harmonics).

    For ``det R = -1``, ``R = -Q`` with ``Q`` proper and ``D = parity * D_l(Q)``,
    e3nn's convention for parity.
    """
    if parity is None:
        parity = (-1) ** l
    if parity not in (1, -1):
        raise ValueError(f"parity must be +1 or -1, got {parity}")
    R = R.to(torch.float64)
    det = torch.linalg.det(R)
    if abs(abs(float(det)) - 1.0) > 1e-6:
        raise ValueError(f"R must be orthogonal (|det R| = 1), got det = {float(det):.3g}")
    improper = float(det) < 0
    Q = -R if improper else R
    D = _proper_wigner_D(l, Q)
    return D * parity if improper else D


def irreps_D(irreps: IrrepsLike, R: torch.Tensor) -> torch.Tensor:
    """Block-diagonal representation of ``irreps`` at ``R`` (float64)."""
    irreps = as_irreps(irreps)
    if irreps is None:
        raise ValueError("irreps_D needs irreps, not None (a non-geometric field has no representation)")
    cache: dict[tuple, torch.Tensor] = {}
    blocks = []
    for mul, ir in irreps:
        key = (ir.l, ir.p)
        if key not in cache:
            cache[key] = wigner_D(ir.l, R, ir.p)
        blocks.extend([cache[key]] * mul)
    if not blocks:
        return torch.zeros(0, 0, dtype=torch.float64)
    return torch.block_diag(*blocks)


def random_rotation(generator: torch.Generator | None = None, proper: bool = True) -> torch.Tensor:
    """Haar-random rotation in float64 (QR of a Gaussian); ``proper=False`` gives ``-R``."""
    a = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))  # uniqueness of QR -> Haar measure
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q if proper else -q


_W3J_BUFFER = re.compile(r"_w3j_(\d+)_(\d+)_(\d+)$")


def refresh_wigner_3j(module: torch.nn.Module) -> None:
    """Recompute the Wigner-3j buffers of every e3nn tensor product in ``module`` in its current dtype.

    e3nn stores them as buffers made in the default dtype: a model built in float32
    and cast to float64 keeps float32-rounded coupling coefficients, which breaks
    equivariance at the 1e-9 level the float64 audit checks. They are exact functions
    of ``(l1, l2, l3)``, so they are recomputed rather than cast. Call it after
    ``.to(dtype)`` and ``load_state_dict`` (e.g. from ``_apply`` and a post-load hook).
    """
    for name, buf in module.named_buffers():
        match = _W3J_BUFFER.search(name)
        if match is not None and buf.is_floating_point():
            with torch.no_grad():
                buf.copy_(o3.wigner_3j(*map(int, match.groups()), dtype=buf.dtype, device=buf.device))
