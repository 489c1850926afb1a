"""SE(3)-transformer attention block: equivariance, softmax, heads, smooth cutoff, errors."""

import copy

import pytest
import torch
from e3nn import o3
from toy_modules import random_batch

from irrepnet import IrrepsModule, IrrepsSequential
from irrepnet import keys as K
from irrepnet.equivariance import audit
from irrepnet.interface import Symmetry
from irrepnet.nn import GraphConstruction, NodeInputs, RadialEmbedding, SphericalHarmonicsEdgeAttrs
from irrepnet.nn.attention import EquivariantAttention, head_matrix

INPUTS = {K.POS: "1o", K.VEL: "1o"}
HIDDEN = "8x0e + 4x0o + 4x1o + 4x1e"  # both parities: reflections are really tested
R_MAX = 2.0


def block(irreps_in="1x0e + 1x1o", irreps_out=HIDDEN, heads=4, lmax=2, **kwargs):
    return EquivariantAttention(irreps_in, irreps_out, o3.Irreps.spherical_harmonics(lmax), 8, R_MAX, heads, **kwargs)


def edge_layers(graph="radius", lmax=2):
    r = R_MAX if graph == "radius" else None
    return [
        NodeInputs(INPUTS),
        GraphConstruction(graph, r=r),
        SphericalHarmonicsEdgeAttrs(lmax),
        RadialEmbedding(8, R_MAX),
    ]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Graphs of a few nodes: a second intra-op thread only adds synchronisation (and stalls on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Probe(IrrepsModule):
    """Graph, edge embeddings and attention blocks; returns only the node features (edges reorder under permutation)."""

    symmetry = Symmetry.E3

    def __init__(self, *blocks, graph="radius"):
        chain = IrrepsSequential(*edge_layers(graph), *blocks, irreps_in=INPUTS)
        super().__init__(chain.irreps_in, {K.NODE_FEATURES: chain.irreps_out[K.NODE_FEATURES]})
        self.chain = chain

    def edges(self, data):
        return IrrepsSequential(*self.chain.layers[:4], irreps_in=INPUTS)(data)

    def forward(self, data):
        return {K.NODE_FEATURES: self.chain(data)[K.NODE_FEATURES]}


def batch(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return random_batch(sizes=(5, 7, 1), dtype=dtype)


@pytest.fixture(scope="module")
def probe():
    """Two blocks (4 heads, then 2), built once in float32: e3nn's code generation is the slow part."""
    torch.manual_seed(0)
    return Probe(block(heads=4), block(HIDDEN, HIDDEN, heads=2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_two_blocks_are_e3_equivariant(probe, dtype):
    report = audit(probe, batch(), dtype=dtype)
    assert report.passed, str(report)
    assert report["reflection"].passed  # E(3), not only SE(3)


def test_float64_audit_is_exact_after_casting_a_float32_block(probe):
    # e3nn's Wigner-3j buffers are made in float32; the block re-derives them in float64
    assert next(probe.parameters()).dtype == torch.float32
    rotation = {"checks": ("rotation",), "trials": 1}
    assert audit(probe, batch(), dtype=torch.float64, **rotation)["rotation"].rel_error < 1e-12
    clone = copy.deepcopy(probe).double()  # a float32 checkpoint loaded into a float64 model stays exact
    clone.load_state_dict(probe.state_dict())
    assert audit(clone, batch(), dtype=torch.float64, **rotation)["rotation"].rel_error < 1e-12


def test_attention_weights_sum_to_one_over_each_receivers_neighbours(probe):
    probe = copy.deepcopy(probe).double()
    data = probe.edges(batch())
    alpha, aggregated = probe.chain.layers[4].attend(data)
    n, receiver = data[K.POS].shape[0], data[K.EDGE_INDEX][1]
    assert alpha.shape == (receiver.numel(), 4) and (alpha >= 0).all()
    sums = torch.zeros(n, 4, dtype=alpha.dtype).index_add_(0, receiver, alpha)
    has_edges = torch.bincount(receiver, minlength=n) > 0
    assert not has_edges.all()  # the one-node graph: an isolated receiver gets nothing, not NaN
    torch.testing.assert_close(sums[has_edges], torch.ones_like(sums[has_edges]))
    assert aggregated[~has_edges].abs().max() == 0 and torch.isfinite(aggregated).all()


def test_edges_beyond_the_cutoff_get_zero_weight_and_full_graph_equals_radius_graph():
    torch.manual_seed(0)
    attention = block(heads=2).double()
    data = batch()
    data[K.POS] = data[K.POS] * 1.5  # spread out: many pairs beyond R_MAX
    radius = Probe(attention, graph="radius")
    full = Probe(attention, graph="full")
    edges = full.edges(data)
    alpha, _ = attention.attend(edges)
    outside = edges[K.EDGE_LEN] >= R_MAX
    assert outside.any() and (alpha[outside] == 0).all()
    torch.testing.assert_close(full(data)[K.NODE_FEATURES], radius(data)[K.NODE_FEATURES])
    full.double()(data)[K.NODE_FEATURES].pow(2).sum().backward()  # log(u) is safe where u = 0
    assert all(torch.isfinite(p.grad).all() for p in attention.parameters() if p.grad is not None)


def _head_entries(linear: o3.Linear, first_block: int, heads: int, head: int) -> torch.Tensor:
    """Mask of ``linear.weight`` entries writing output channels of ``head`` in blocks ``>= first_block``."""
    mask, offset = torch.zeros_like(linear.weight, dtype=torch.bool), 0
    for ins in linear.instructions:
        mul_in, mul_out = ins.path_shape
        size = mul_in * mul_out
        if ins.i_out >= first_block:
            owner = torch.arange(mul_out) // (mul_out // heads)
            mask[offset : offset + size] = (owner == head).repeat(mul_in)
        offset += size
    return mask


def test_heads_are_independent(probe):
    heads = 4
    probe = copy.deepcopy(probe).double()
    attention = probe.chain.layers[4]
    data = probe.edges(batch())
    alpha, agg = attention.attend(data)
    value_owner = head_matrix(attention.irreps_value, heads).argmax(1)
    n_key_blocks = len(attention.irreps_key)
    with torch.no_grad():  # change head 0's value weights only
        mask = _head_entries(attention.key_value, n_key_blocks, heads, 0)
        attention.key_value.weight[mask] += torch.randn(int(mask.sum()), dtype=torch.float64)
    alpha2, agg2 = attention.attend(data)
    torch.testing.assert_close(alpha2, alpha)
    torch.testing.assert_close(agg2[:, value_owner != 0], agg[:, value_owner != 0])
    assert (agg2[:, value_owner == 0] - agg[:, value_owner == 0]).abs().max() > 1e-3
    with torch.no_grad():  # change head 0's query weights only: other heads attend as before
        mask = _head_entries(attention.query, 0, heads, 0)
        attention.query.weight[mask] += torch.randn(int(mask.sum()), dtype=torch.float64)
    alpha3, agg3 = attention.attend(data)
    torch.testing.assert_close(alpha3[:, 1:], alpha[:, 1:])
    assert (alpha3[:, 0] - alpha[:, 0]).abs().max() > 1e-3
    torch.testing.assert_close(agg3[:, value_owner != 0], agg[:, value_owner != 0])
    with torch.no_grad():  # and head 0's logit scale
        attention.log_logit_scale[0] += 1.0
    alpha4, _ = attention.attend(data)
    torch.testing.assert_close(alpha4[:, 1:], alpha[:, 1:])
    assert (alpha4[:, 0] - alpha3[:, 0]).abs().max() > 1e-3


@pytest.mark.parametrize("neighbours", [1, 3], ids=["last-neighbour", "one-of-three"])
def test_output_is_continuous_as_a_neighbour_crosses_the_cutoff(probe, neighbours):
    # one block: node 0's output then depends on the moving node only through the edge 1 -> 0
    probe = Probe(copy.deepcopy(probe.chain.layers[4])).double()
    others = [[0.3, 0.8, -0.2], [-0.9, 0.1, 0.4]][: neighbours - 1]
    vel = torch.randn(neighbours + 1, 3, dtype=torch.float64)

    def receiver_output(distance):
        pos = torch.tensor([[0.0, 0.0, 0.0], [distance, 0.0, 0.0]] + others, dtype=torch.float64)
        out = probe({K.POS: pos, K.VEL: vel, K.BATCH: torch.zeros(len(pos), dtype=torch.long)})
        return out[K.NODE_FEATURES][0]

    inside, outside = receiver_output(R_MAX - 1e-3), receiver_output(R_MAX + 1e-3)
    assert (inside - outside).abs().max() < 1e-6
    # the check is sensitive: moving the same node well inside the radius changes the output
    assert (receiver_output(0.5 * R_MAX) - receiver_output(0.7 * R_MAX)).abs().max() > 1e-3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"heads": 3}, r"multiplicities of 8x0e, 4x0o, 4x1o, 4x1e are not divisible by heads=3"),
        ({"heads": 8}, r"4x0o, 4x1o, 4x1e are not divisible by heads=8"),
        ({"heads": 2, "irreps_key": "3x0e + 2x1o"}, r"key irreps 3x0e\+2x1o: multiplicities of 3x0e"),
        ({"heads": 0}, r"heads must be >= 1"),
    ],
)
def test_multiplicity_not_divisible_by_heads_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        block(**kwargs)


def test_head_matrix_assigns_contiguous_channels():
    m = head_matrix(o3.Irreps("4x0e + 2x1o"), 2)
    owner = m.argmax(1).tolist()
    assert owner == [0, 0, 1, 1] + [0, 0, 0, 1, 1, 1]
    assert m.sum(1).eq(1).all()
