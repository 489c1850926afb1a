r"""Gated nonlinearity (e3nn ``nn.Gate``) as a layer over any irreps field.

Weiler et al. 2018, "3D Steerable CNNs" (NeurIPS), gated nonlinearities; as used by
Tensor Field Networks / NequIP (Batzner et al. 2022) and e3nn's ``gate_points_2101``.
A nonlinearity of a vector would break rotation equivariance, so only scalars go
through activations, and every :math:`l > 0` irrep is multiplied by its own scalar gate:

.. math::

    \text{Gate}(s \oplus g \oplus v) = \bigoplus_k \phi_k(s_k) \;\oplus\; \bigoplus_c \sigma(g_c)\, v_c

with :math:`\phi` = SiLU on even scalars (``0e``) and tanh on odd ones (``0o``; an odd
function keeps the parity), gates :math:`\sigma` = sigmoid on ``0e`` gates (tanh on ``0o``).
The layer before a gate must therefore output more than the gate returns:
:func:`gate_irreps` does that arithmetic.

Shapes/irreps
-------------
``hidden = S + V`` (``S`` scalars, ``V`` the :math:`l > 0` part, ``V.num_irreps = C``):
reads ``field (n, irreps_in.dim)`` with ``irreps_in = sort(S + C x 0e + V)`` (e3nn's order:
sorted and simplified); writes ``field (n, irreps_out.dim)``, ``irreps_out = S + V``
(scalars first, each simplified).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3

from .. import keys as K
from ..interface import IrrepsModule

SCALAR_ACTS = {1: torch.nn.functional.silu, -1: torch.tanh}
GATE_ACTS = {1: torch.sigmoid, -1: torch.tanh}


class GateIrreps(NamedTuple):
    """The pieces of a gate for target ``hidden`` irreps (see :func:`gate_irreps`)."""

    scalars: o3.Irreps  # l = 0 part of hidden, through activations
    gates: o3.Irreps  # one scalar per gated irrep
    gated: o3.Irreps  # l > 0 part of hidden
    irreps_in: o3.Irreps  # what the preceding layer must output
    irreps_out: o3.Irreps  # what the gate returns (scalars + gated)


def gate_irreps(hidden, gate: str = "0e") -> GateIrreps:
    """Irreps a layer must output so that a :class:`Gate` after it returns ``hidden``.

    Parameters
    ----------
    hidden : Irreps or str
        the features wanted after the gate, e.g. ``"16x0e + 16x0o + 8x1e + 8x1o"``.
    gate : {"0e", "0o"}
        irrep of the gate scalars; ``"0o"`` only when the preceding layer cannot produce
        even scalars.

    Returns
    -------
    GateIrreps
        ``irreps_in`` is ``(scalars + gates + gated)`` sorted and simplified, the order
        e3nn's ``Gate`` reads; e.g. hidden ``16x0e + 16x0o + 8x1e + 8x1o`` needs ``16x0o + 32x0e + 8x1o + 8x1e``
        in (16 of the 32 ``0e`` are gates) and returns the hidden irreps.
    """
    hidden = o3.Irreps(hidden)
    gate_ir = o3.Irrep(gate)
    if gate_ir.l != 0:
        raise ValueError(f"gate scalars must be 0e or 0o, got {gate}")
    if hidden.dim == 0:
        raise ValueError("gate_irreps needs non-empty hidden irreps")
    scalars = o3.Irreps([(mul, ir) for mul, ir in hidden if ir.l == 0]).simplify()
    gated = o3.Irreps([(mul, ir) for mul, ir in hidden if ir.l > 0]).simplify()
    gates = o3.Irreps([(gated.num_irreps, gate_ir)]) if gated.num_irreps else o3.Irreps("")
    irreps_in = (scalars + gates + gated).sort().irreps.simplify()
    return GateIrreps(scalars, gates, gated, irreps_in, scalars + gated)


class Gate(IrrepsModule):
    """e3nn's ``nn.Gate`` behind the dict interface, over one field (``node_features`` by default).

    Parameters
    ----------
    hidden : Irreps or str
        irreps after the gate; ``irreps_in`` holds what the field must have before.
    field : str
        the field read and overwritten.
    gate : {"0e", "0o"}
        irrep of the gate scalars (see :func:`gate_irreps`).
    act_even, act_odd : callable, optional
        activations of ``0e`` and ``0o`` scalars (SiLU, tanh); ``act_odd`` must be odd
        (e3nn refuses one that is neither odd nor even).

    Shapes/irreps
    -------------
    ``field (n, irreps_in.dim)`` -> ``field (n, irreps_out.dim)``, see :func:`gate_irreps`.
    """

    def __init__(
        self,
        hidden,
        field: str = K.NODE_FEATURES,
        gate: str = "0e",
        act_even: Callable | None = None,
        act_odd: Callable | None = None,
    ):
        parts = gate_irreps(hidden, gate)
        acts = {1: act_even or SCALAR_ACTS[1], -1: act_odd or SCALAR_ACTS[-1]}
        super().__init__({field: parts.irreps_in}, {field: parts.irreps_out})
        self.gate = e3nn_nn.Gate(
            parts.scalars,
            [acts[ir.p] for _, ir in parts.scalars],
            parts.gates,
            [GATE_ACTS[ir.p] for _, ir in parts.gates],
            parts.gated,
        )
        # e3nn sorts its input; if the arithmetic above ever diverged from it, say so now
        if self.gate.irreps_in != parts.irreps_in or self.gate.irreps_out != parts.irreps_out:
            raise RuntimeError(
                f"gate irreps disagree with e3nn: {parts} vs {self.gate.irreps_in} -> {self.gate.irreps_out}"
            )
        self.field, self.parts = field, parts

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        """The gate on a tensor ``(rows, irreps_in.dim) -> (rows, irreps_out.dim)``, for layers that gate inside."""
        return self.gate(x)

    def forward(self, data):
        return {**data, self.field: self.activate(data[self.field])}

    def extra_repr(self) -> str:
        return f"{self.parts.irreps_in} -> {self.parts.irreps_out} on {self.field!r}"
