"""Shared layers: graph construction, edge embeddings, node inputs, heads."""

import pytest
import torch
from e3nn import o3
from toy_modules import random_batch

from irrepnet import IrrepsSequential
from irrepnet import keys as K
from irrepnet.equivariance import audit
from irrepnet.interface import IrrepsModel, Symmetry
from irrepnet.nn import (
    GraphConstruction,
    NodeInputs,
    RadialEmbedding,
    ScalarHead,
    SphericalHarmonicsEdgeAttrs,
    VectorHead,
    polynomial_cutoff,
)
from irrepnet.tasks import task_spec


class EdgeFeatureModel(IrrepsModel):
    """Graph -> SH -> radial -> sum_j Y(r_ij) * w(r_ij) -> head: equivariant by construction."""

    symmetry = Symmetry.E3

    def __init__(self, basis="bessel"):
        spec = task_spec("nbody")
        self.chain = None
        super().__init__(spec.inputs, {K.DISPLACEMENT: "1o", K.ENERGY: "0e"})
        self.chain = IrrepsSequential(
            NodeInputs(spec.inputs),
            GraphConstruction("radius", r=2.5),
            SphericalHarmonicsEdgeAttrs(2),
            RadialEmbedding(6, 2.5, basis),
            irreps_in=spec.inputs,
        )
        self.w = torch.nn.Linear(6, 1)
        irreps = o3.Irreps("1x0e + 1x1o + 1x0e + 1x0e + 1x1o + 1x2e")
        self.vec = VectorHead(irreps)
        self.energy = ScalarHead(irreps)

    def forward(self, data):
        d = self.chain(data)
        j, i = d[K.EDGE_INDEX]
        msg = d[K.EDGE_SH] * self.w(d[K.EDGE_EMBEDDING])
        agg = torch.zeros(d[K.POS].shape[0], msg.shape[1], dtype=msg.dtype).index_add_(0, i, msg)
        d[K.NODE_FEATURES] = torch.cat([d[K.NODE_FEATURES], agg], dim=1)
        return {K.DISPLACEMENT: self.vec(d)[K.DISPLACEMENT], K.ENERGY: self.energy(d)[K.ENERGY]}


def nbody_batch(dtype=torch.float64):
    data = random_batch(sizes=(5, 5, 1), dtype=dtype)
    data[K.CHARGE] = torch.randint(0, 2, (11, 1)).to(dtype) * 2 - 1
    data[K.NODE_INDEX] = torch.tensor([0, 1, 2, 3, 4] * 2 + [0])
    return data


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("basis", ["bessel", "smooth_finite", "gaussian"])
def test_shared_layers_compose_into_an_equivariant_model(dtype, basis):
    torch.manual_seed(0)
    report = audit(EdgeFeatureModel(basis), nbody_batch(), dtype=dtype)
    assert report.passed, str(report)


def test_spherical_harmonics_irreps_and_shape():
    sh = SphericalHarmonicsEdgeAttrs(3)
    assert sh.irreps_out[K.EDGE_SH] == o3.Irreps("1x0e + 1x1o + 1x2e + 1x3o")
    out = sh({K.EDGE_VEC: torch.randn(7, 3)})
    assert out[K.EDGE_SH].shape == (7, 16)
    with pytest.raises(ValueError, match="lmax"):
        SphericalHarmonicsEdgeAttrs(-1)


@pytest.mark.parametrize("basis", ["bessel", "smooth_finite", "gaussian", "cosine"])
def test_radial_embedding_is_zero_beyond_the_cutoff_and_smooth_at_it(basis):
    emb = RadialEmbedding(8, 2.0, basis)
    r = torch.tensor([0.0, 0.5, 1.999, 2.0, 3.0], dtype=torch.float64)
    e = emb.double().embed(r)
    assert e.shape == (5, 8) and torch.isfinite(e).all()
    assert e[3:].abs().max() == 0
    assert e[2].abs().max() < 1e-2  # fades out before the cutoff rather than jumping


def test_polynomial_cutoff_values():
    x = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    u = polynomial_cutoff(x, 2.0)
    assert u[0] == 1.0 and u[2] == 0.0 and u[3] == 0.0 and 0 < u[1] < 1


def test_bad_layer_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown radial basis"):
        RadialEmbedding(4, 2.0, "fourierish")
    with pytest.raises(ValueError, match="r > 0"):
        GraphConstruction("radius")
    with pytest.raises(ValueError, match="k >= 1"):
        GraphConstruction("knn", k=0)
    with pytest.raises(ValueError, match="1o features"):
        VectorHead("4x0e + 2x1e")
    with pytest.raises(ValueError, match="not geometric inputs"):
        NodeInputs(task_spec("twelve_body").inputs, fields=[K.VEL])


def test_node_inputs_follow_the_task():
    assert NodeInputs(task_spec("twelve_body").inputs).irreps_out[K.NODE_FEATURES] == o3.Irreps("1x0e")
    ni = NodeInputs(task_spec("twelve_body", history=3).inputs)
    assert ni.fields == (K.VEL_HISTORY,)  # vel is the first block of vel_history
    assert ni.irreps_out[K.NODE_FEATURES] == o3.Irreps("1x0e + 3x1o")


def test_next_pos_head_translates_with_the_frame():
    head = VectorHead("2x0e + 1x1o", out_field=K.NEXT_POS)
    assert K.POS in head.irreps_in
    feats = torch.randn(4, 5)
    pos = torch.randn(4, 3)
    a = head({K.NODE_FEATURES: feats, K.POS: pos})[K.NEXT_POS]
    b = head({K.NODE_FEATURES: feats, K.POS: pos + 1.0})[K.NEXT_POS]
    torch.testing.assert_close(b - a, torch.ones(4, 3))
