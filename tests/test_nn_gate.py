"""Gate layer: irreps arithmetic, values, equivariance, composition."""

import pytest
import torch
from e3nn import o3

from irrepnet import IrrepsMismatchError, IrrepsSequential
from irrepnet import keys as K
from irrepnet.equivariance import audit
from irrepnet.interface import Symmetry
from irrepnet.nn import Gate, TensorProductConv, gate_irreps


class E3Gate(Gate):
    symmetry = Symmetry.E3  # a bare layer claims nothing; the audit needs a claim to judge


@pytest.mark.parametrize(
    "hidden, scalars, gates, gated, irreps_in",
    [
        ("16x0e + 16x0o + 8x1e + 8x1o", "16x0e + 16x0o", "16x0e", "8x1e + 8x1o", "16x0o + 32x0e + 8x1o + 8x1e"),
        (
            "8x0e + 8x0o + 16x1e + 16x1o + 8x2e + 8x2o",
            "8x0e + 8x0o",
            "48x0e",
            "16x1e + 16x1o + 8x2e + 8x2o",
            "8x0o + 56x0e + 16x1o + 16x1e + 8x2o + 8x2e",
        ),
        ("4x0e", "4x0e", "", "", "4x0e"),
        ("2x1o + 3x2e", "", "5x0e", "2x1o + 3x2e", "5x0e + 2x1o + 3x2e"),
        ("2x0e + 1x1o + 2x0e", "4x0e", "1x0e", "1x1o", "5x0e + 1x1o"),  # repeated irreps are simplified
    ],
)
def test_gate_irreps_arithmetic(hidden, scalars, gates, gated, irreps_in):
    parts = gate_irreps(hidden)
    assert parts.scalars == o3.Irreps(scalars)
    assert parts.gates == o3.Irreps(gates)
    assert parts.gated == o3.Irreps(gated)
    assert parts.irreps_in == o3.Irreps(irreps_in)
    assert parts.irreps_out == parts.scalars + parts.gated
    # one extra scalar per gated irrep, nothing else
    assert parts.irreps_in.dim == parts.irreps_out.dim + parts.gated.num_irreps
    layer = Gate(hidden)  # checks itself against e3nn's own arithmetic
    assert layer.irreps_in[K.NODE_FEATURES] == parts.irreps_in
    assert layer.irreps_out[K.NODE_FEATURES] == parts.irreps_out


def test_odd_gates_and_errors():
    assert gate_irreps("2x1o", gate="0o").gates == o3.Irreps("2x0o")
    with pytest.raises(ValueError, match="0e or 0o"):
        gate_irreps("2x1o", gate="1o")
    with pytest.raises(ValueError, match="non-empty"):
        gate_irreps("")


def test_gate_values():
    layer = Gate("1x0e + 1x0o + 1x1o")  # reads 1x0o + 2x0e + 1x1o: 0o, then scalar 0e and gate 0e, then 1o
    assert layer.irreps_in[K.NODE_FEATURES] == o3.Irreps("1x0o + 2x0e + 1x1o")
    x = torch.tensor([[0.3, -1.2, 0.7, 1.0, 2.0, -3.0]])
    out = layer({K.NODE_FEATURES: x})[K.NODE_FEATURES]
    # e3nn normalises activations to unit second moment, so compare up to those constants
    s_even, s_odd = out[0, 0] / torch.nn.functional.silu(x[0, 1]), out[0, 1] / torch.tanh(x[0, 0])
    assert s_even > 0 and s_odd > 0
    gate = out[0, 2:] / x[0, 3:]
    torch.testing.assert_close(gate, gate[0].expand(3))  # one gate scales the whole vector
    assert gate[0] / torch.sigmoid(x[0, 2]) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gate_is_equivariant(dtype):
    layer = E3Gate("4x0e + 3x0o + 2x1o + 2x1e + 1x2e + 1x2o")
    gen = torch.Generator().manual_seed(0)
    data = {K.NODE_FEATURES: torch.randn(7, layer.irreps_in[K.NODE_FEATURES].dim, generator=gen)}
    report = audit(layer, data, dtype=dtype)
    assert report.passed, str(report)


def test_a_non_odd_activation_on_odd_scalars_is_refused():
    # SiLU(-x) != -SiLU(x): on 0o scalars it would break reflection equivariance, and
    # e3nn's Gate refuses it at construction rather than let the audit find out
    with pytest.raises(ValueError, match="parity"):
        Gate("3x0o", act_odd=torch.nn.functional.silu)


def test_gate_composes_after_a_convolution_and_mismatch_is_named():
    hidden = "4x0e + 2x1o"
    sh = o3.Irreps.spherical_harmonics(2)
    provided = {K.NODE_FEATURES: "1x0e + 1x1o", K.EDGE_INDEX: None, K.EDGE_SH: sh, K.EDGE_EMBEDDING: "4x0e"}
    gate = Gate(hidden)
    conv = TensorProductConv("1x0e + 1x1o", gate.irreps_in[K.NODE_FEATURES], sh, 4, normalization="sum")
    chain = IrrepsSequential(conv, gate, irreps_in=provided)
    assert chain.irreps_out[K.NODE_FEATURES] == o3.Irreps(hidden)
    wrong = TensorProductConv("1x0e + 1x1o", hidden, sh, 4, normalization="sum")  # forgot the gates
    with pytest.raises(IrrepsMismatchError, match="node_features"):
        IrrepsSequential(wrong, Gate(hidden), irreps_in=provided)
