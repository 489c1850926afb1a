"""Tensor-product convolution: agreement with e3nn, equivariance, normalisation, skips."""

import itertools

import pytest
import torch
from e3nn import o3
from toy_modules import random_batch

from irrepnet import IrrepsSequential
from irrepnet import keys as K
from irrepnet.equivariance import audit
from irrepnet.interface import IrrepsModel, Symmetry
from irrepnet.nn import (
    EdgeTensorProduct,
    GraphConstruction,
    NodeInputs,
    RadialEmbedding,
    RadialMLP,
    SphericalHarmonicsEdgeAttrs,
    TensorProductConv,
)

SH = o3.Irreps.spherical_harmonics(3)
MIXED = o3.Irreps("2x0e + 2x0o + 2x1o + 2x1e + 1x2e + 1x2o")


def e3nn_messages(tp: EdgeTensorProduct, x, sh, w):
    """The same messages from ``e3nn.o3.TensorProduct``, one "uvu" path at a time, in irreps_mid layout."""
    offsets = [0] + list(itertools.accumulate(tp.w_sizes))
    groups = [(l1, l3, U, n) for l1, gs in zip(tp.degrees, tp.groups) for (l3, U, n) in gs]
    allowed = {ir for _, ir in tp.irreps_out}
    channels = []  # (sort key in the group layout, irrep, (E, 2l3+1))
    for g, (l1, l3, U, n) in enumerate(groups):
        blocks = [(i, mul, ir) for i, (mul, ir) in enumerate(tp.irreps_in) if ir.l == l1]
        l2s = [
            j
            for j, (_, ir2) in enumerate(tp.irreps_sh)
            if abs(l1 - ir2.l) <= l3 <= l1 + ir2.l and any(o3.Irrep(l3, ir.p * ir2.p) in allowed for _, _, ir in blocks)
        ]
        assert len(l2s) == n
        u0 = 0
        for i, mul, ir in blocks:
            for a, j in enumerate(l2s):
                ir_out = o3.Irrep(l3, ir.p * tp.irreps_sh[j].ir.p)
                ref = o3.TensorProduct(
                    o3.Irreps([(mul, ir)]),
                    o3.Irreps([tp.irreps_sh[j]]),
                    o3.Irreps([(mul, ir_out)]),
                    [(0, 0, 0, "uvu", True)],
                    shared_weights=False,
                    internal_weights=False,
                )
                weight = w[:, offsets[g] + a * U + u0 : offsets[g] + a * U + u0 + mul]
                out = ref(x[:, tp.irreps_in.slices()[i]], sh[:, tp.irreps_sh.slices()[j]], weight)
                out = out.view(-1, mul, ir_out.dim)
                channels += [((g, a, u0 + u), ir_out, out[:, u]) for u in range(mul)]
            u0 += mul
    channels.sort(key=lambda c: c[0])
    return torch.cat(
        [torch.stack([c for _, ir2, c in channels if ir2 == ir], 1).flatten(1) for _, ir in tp.irreps_mid], dim=1
    )


@pytest.mark.parametrize(
    "irreps_in, irreps_out",
    [
        ("3x0e + 2x1o + 2x1e + 1x2e + 2x0o", "4x0e + 2x0o + 3x1o + 3x1e + 2x2e + 2x2o"),
        ("1x0e + 2x1o", "8x0o + 56x0e + 16x1o + 16x1e + 8x2o + 8x2e"),
        ("4x0e + 2x1o", "1x1o"),
    ],
)
def test_fused_tensor_product_equals_e3nn(irreps_in, irreps_out):
    gen = torch.Generator().manual_seed(0)
    tp = EdgeTensorProduct(irreps_in, SH, irreps_out).double()
    E = 11
    x = torch.randn(E, tp.irreps_in.dim, generator=gen, dtype=torch.float64)
    sh = o3.spherical_harmonics(SH, torch.randn(E, 3, generator=gen, dtype=torch.float64), True)
    w = torch.randn(E, tp.weight_numel, generator=gen, dtype=torch.float64)
    mid = tp.sort_channels(torch.cat(tp(tp.split_by_degree(x), sh, w), dim=1))
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn makes its Wigner-3j constants in the default dtype
    try:
        expected = e3nn_messages(tp, x, sh, w)
    finally:
        torch.set_default_dtype(default)
    torch.testing.assert_close(mid, expected, rtol=1e-12, atol=1e-12)
    assert all(ir in {ir for _, ir in tp.irreps_out} for _, ir in tp.irreps_mid)


class ConvStack(IrrepsModel):
    """Inputs -> radius graph -> SH, radial -> two convolutions with mixed parities."""

    symmetry = Symmetry.E3

    def __init__(self, normalization="sqrt_avg_neighbors", skip="auto"):
        inputs = {K.POS: "1o", K.VEL: "1o"}
        convs = dict(radial_neurons=16, normalization=normalization, avg_num_neighbors=3.0, skip=skip)
        node = NodeInputs(inputs)
        chain = IrrepsSequential(
            node,
            GraphConstruction("radius", r=2.5),
            SphericalHarmonicsEdgeAttrs(3),
            RadialEmbedding(6, 2.5),
            TensorProductConv(node.irreps_out[K.NODE_FEATURES], MIXED, SH, 6, **convs),
            TensorProductConv(MIXED, MIXED, SH, 6, **convs),
            irreps_in=inputs,
        )
        super().__init__(chain.irreps_in, {K.NODE_FEATURES: MIXED})
        self.chain = chain

    def forward(self, data):
        return {K.NODE_FEATURES: self.chain(data)[K.NODE_FEATURES]}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("normalization", ["sqrt_avg_neighbors", "mean", "sum"])
def test_convolution_is_e3_equivariant(dtype, normalization):
    torch.manual_seed(0)
    report = audit(ConvStack(normalization), random_batch(sizes=(5, 4, 1)), dtype=dtype)
    assert report.passed, str(report)
    assert report["reflection"].claimed  # odd and even outputs both checked under inversion


def test_float64_copy_uses_exact_coefficients():
    tp = EdgeTensorProduct("2x1o + 1x2e", SH, "1x0e + 1x1o + 1x2e")
    assert tp.cg_sh.dtype == torch.float32
    tp.double()
    assert tp.cg_sh.dtype == torch.float64
    torch.testing.assert_close(tp.cg_sh, tp._cg_sh_exact, rtol=0, atol=0)


def _single_conv(normalization, data, skip="none"):
    torch.manual_seed(1)
    conv = TensorProductConv(
        "1x0e + 1x1o",
        "2x0e + 1x1o + 1x1e",
        SH,
        4,
        radial_neurons=8,
        normalization=normalization,
        avg_num_neighbors=4.0,
        skip=skip,
    ).double()
    return conv, conv(data)[K.NODE_FEATURES]


def test_normalisation_options():
    gen = torch.Generator().manual_seed(0)
    # node 0 receives 3 edges, node 1 one, node 2 none
    edge_index = torch.tensor([[1, 2, 3, 0], [0, 0, 0, 1]])
    data = {
        K.NODE_FEATURES: torch.randn(4, 4, generator=gen, dtype=torch.float64),
        K.EDGE_INDEX: edge_index,
        K.EDGE_SH: o3.spherical_harmonics(SH, torch.randn(4, 3, generator=gen, dtype=torch.float64), True),
        K.EDGE_EMBEDDING: torch.randn(4, 4, generator=gen, dtype=torch.float64),
    }
    _, summed = _single_conv("sum", data)
    _, sqrt_avg = _single_conv("sqrt_avg_neighbors", data)
    _, mean = _single_conv("mean", data)
    torch.testing.assert_close(sqrt_avg, summed / 2.0)  # sqrt(4) = 2
    degree = torch.tensor([3.0, 1.0, 1.0, 1.0], dtype=torch.float64)[:, None]  # empty nodes divide by 1
    torch.testing.assert_close(mean, summed / degree)
    assert summed[2:].abs().max() == 0  # no incoming edge, no skip: nothing


def test_configuration_errors():
    with pytest.raises(ValueError, match="avg_num_neighbors"):
        TensorProductConv("1x0e", "1x1o", SH, 4)
    with pytest.raises(ValueError, match="normalization"):
        TensorProductConv("1x0e", "1x1o", SH, 4, normalization="max")
    with pytest.raises(ValueError, match="residual"):
        TensorProductConv("1x0e", "1x1o", SH, 4, normalization="sum", skip="residual")
    with pytest.raises(ValueError, match="no tensor-product path"):
        TensorProductConv("1x0e", "1x1o", "1x0e", 4, normalization="sum")
    with pytest.raises(ValueError, match="multiplicity 1"):
        EdgeTensorProduct("1x0e", "2x1o", "1x1o")


def test_skip_choices():
    auto_same = TensorProductConv("2x0e + 1x1o", "2x0e + 1x1o", SH, 4, normalization="sum")
    auto_diff = TensorProductConv("2x0e + 1x1o", "3x0e + 1x1o", SH, 4, normalization="sum")
    none = TensorProductConv("2x0e + 1x1o", "3x0e + 1x1o", SH, 4, normalization="sum", skip="none")
    assert (auto_same.skip, auto_diff.skip, none.skip) == ("residual", "linear", "none")
    assert auto_same.sc is None and auto_diff.sc is not None and none.sc is None
    # a residual conv with zero radial weights is the identity on the features
    with torch.no_grad():
        for w in auto_same.radial.weights:
            w.zero_()
    x = torch.randn(3, auto_same.irreps_in[K.NODE_FEATURES].dim)
    data = {
        K.NODE_FEATURES: x,
        K.EDGE_INDEX: torch.tensor([[0, 1], [1, 2]]),
        K.EDGE_SH: torch.randn(2, SH.dim),
        K.EDGE_EMBEDDING: torch.randn(2, 4),
    }
    torch.testing.assert_close(auto_same(data)[K.NODE_FEATURES], x)


def test_radial_mlp_vanishes_with_the_embedding():
    mlp = RadialMLP(6, 10, neurons=8, layers=2)
    assert mlp(torch.zeros(5, 6)).abs().max() == 0  # bias-free: edges beyond the cutoff send nothing
    assert mlp(torch.randn(5, 6)).shape == (5, 10)


def test_audit_catches_a_broken_coupling():
    # meta-test: permuting the Clebsch-Gordan columns keeps every shape but breaks the symmetry
    torch.manual_seed(0)
    model = ConvStack()
    for conv in model.chain.layers[4:]:
        perm = torch.randperm(conv.tp._cg_sh_exact.shape[1], generator=torch.Generator().manual_seed(1))
        conv.tp._cg_sh_exact = conv.tp._cg_sh_exact[:, perm]
    report = audit(model, random_batch(sizes=(5, 4, 1)), checks=("rotation", "permutation"), trials=1)
    assert not report["rotation"].passed and report["permutation"].passed
