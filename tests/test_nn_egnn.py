"""The EGNN and radial-field layers: shapes, a hand-computed example, equivariance of every option."""

import itertools
import math

import pytest
import torch
from e3nn import o3

from irrepnet import keys as K
from irrepnet.equivariance import audit
from irrepnet.interface import IrrepsSequential
from irrepnet.nn import EGNNLayer, RadialFieldLayer, ScalarEmbedding
from irrepnet.nn.egnn import COORD_SHIFT, EDGE_ATTRS


def layer_batch(n_per_graph=(4, 3), features=5, edge_dim=2, seed=0, dtype=torch.float64):
    """Two graphs, full edges, random features: everything a layer reads."""
    gen = torch.Generator().manual_seed(seed)
    edges, offset = [], 0
    for n in n_per_graph:
        for i in range(n):
            edges += [(offset + j, offset + i) for j in range(n) if j != i]  # (sender, receiver)
        offset += n
    n = offset
    ei = torch.tensor(edges, dtype=torch.long).T
    pos = torch.randn(n, 3, generator=gen, dtype=dtype)
    return {
        K.POS: pos,
        K.EDGE_INDEX: ei,
        K.EDGE_VEC: pos[ei[1]] - pos[ei[0]],
        COORD_SHIFT: 0.3 * torch.randn(n, 3, generator=gen, dtype=dtype),
        K.NODE_FEATURES: torch.randn(n, features, generator=gen, dtype=dtype),
        EDGE_ATTRS: torch.randn(ei.shape[1], edge_dim, generator=gen, dtype=dtype),
        K.VEL: torch.randn(n, 3, generator=gen, dtype=dtype),
        K.BATCH: torch.repeat_interleave(torch.arange(len(n_per_graph)), torch.tensor(n_per_graph)),
        K.NUM_NODES: torch.tensor(n_per_graph),
    }


def test_layer_shapes_and_declared_irreps():
    data = layer_batch(features=5, edge_dim=2)
    layer = EGNNLayer(5, 7, hidden=11, edge_attr_dim=2, residual=False, velocity=True).double()
    assert layer.irreps_in == {
        K.NODE_FEATURES: o3.Irreps("5x0e"),
        K.EDGE_INDEX: None,
        K.EDGE_VEC: o3.Irreps("1o"),
        COORD_SHIFT: o3.Irreps("1o"),
        EDGE_ATTRS: o3.Irreps("2x0e"),
        K.VEL: o3.Irreps("1o"),
    }
    assert layer.irreps_out == {K.NODE_FEATURES: o3.Irreps("7x0e"), COORD_SHIFT: o3.Irreps("1o")}
    out = layer(data)
    assert out[K.NODE_FEATURES].shape == (7, 7) and out[COORD_SHIFT].shape == (7, 3)
    assert out[EDGE_ATTRS] is data[EDGE_ATTRS]  # inputs pass through
    assert "5 -> 7" in repr(layer) and "velocity" in repr(layer)
    # without edge attributes or velocity the layer does not read them
    plain = EGNNLayer(5).double()
    assert EDGE_ATTRS not in plain.irreps_in and K.VEL not in plain.irreps_in
    assert plain(data)[K.NODE_FEATURES].shape == (7, 5)


def test_layers_compose_and_mismatches_are_caught():
    given = {K.NODE_FEATURES: "3x0e", K.EDGE_INDEX: None, K.EDGE_VEC: "1o", COORD_SHIFT: "1o"}
    IrrepsSequential(ScalarEmbedding(3, 8), EGNNLayer(8), EGNNLayer(8, 4, residual=False), irreps_in=given)
    with pytest.raises(ValueError, match="node_features"):
        IrrepsSequential(ScalarEmbedding(3, 8), EGNNLayer(6), irreps_in=given)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"in_features": 4, "out_features": 5, "residual": True}, "in_features == out_features"),
        ({"in_features": 4, "coords_agg": "max"}, "coords_agg"),
        ({"in_features": 0}, "positive"),
        ({"in_features": 4, "act": "swish"}, "unknown activation"),
    ],
)
def test_layer_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EGNNLayer(**kwargs)


def test_coordinate_mlp_starts_small():
    # xavier gain 1e-3 on the last coordinate weights: an untrained layer barely moves nodes
    layer = EGNNLayer(8).double()
    assert layer.coord_mlp[-1].bias is None
    assert layer.coord_mlp[-1].weight.abs().max() < 1e-3
    data = layer_batch(features=8, edge_dim=0)
    step = layer(data)[COORD_SHIFT] - data[COORD_SHIFT]
    assert step.abs().max() < 1e-2


# --- a hand-computed example ----------------------------------------------------


def silu(z):
    return z / (1.0 + math.exp(-z))


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


W = {
    "e1": ([0.5, -0.25, 0.1, 1.0], 0.2),
    "e2": (0.7, -0.1),
    "x1": (1.5, 0.05),
    "x2": -0.8,
    "h1": ([0.3, 0.6], 0.0),
    "h2": (2.0, 0.1),
    "v1": (0.9, 0.2),
    "v2": (0.5, 0.3),
    "att": (1.2, -0.4),
}


def set_weights(layer):
    def put(lin, w, b=None):
        lin.weight.copy_(torch.tensor(w, dtype=torch.float64).reshape(lin.weight.shape))
        if b is not None:
            lin.bias.fill_(b)

    with torch.no_grad():
        put(layer.edge_mlp[0], *W["e1"])
        put(layer.edge_mlp[2], *W["e2"])
        put(layer.coord_mlp[0], *W["x1"])
        put(layer.coord_mlp[2], W["x2"])
        put(layer.node_mlp[0], *W["h1"])
        put(layer.node_mlp[2], *W["h2"])
        if layer.vel_mlp is not None:
            put(layer.vel_mlp[0], *W["v1"])
            put(layer.vel_mlp[2], *W["v2"])
        if layer.att_mlp is not None:
            put(layer.att_mlp, *W["att"])


def reference(x, h, v, a, *, mean, velocity, attention=False, normalize=False, tanh=False, rng=1.0):
    """One EGNN layer with scalar features, written out node by node with Python floats."""
    n = len(x)
    new_x, new_h = [], []
    for i in range(n):
        step, m_sum, others = [0.0, 0.0, 0.0], 0.0, [j for j in range(n) if j != i]
        for j in others:
            d = [x[i][k] - x[j][k] for k in range(3)]
            r2 = sum(c * c for c in d)
            (w1, b1), (w2, b2) = W["e1"], W["e2"]
            m = silu(w2 * silu(w1[0] * h[i] + w1[1] * h[j] + w1[2] * r2 + w1[3] * a[(i, j)] + b1) + b2)
            if attention:
                m *= sigmoid(W["att"][0] * m + W["att"][1])
            phi = W["x2"] * silu(W["x1"][0] * m + W["x1"][1])
            if tanh:
                phi = rng * math.tanh(phi)
            if normalize:
                d = [c / (math.sqrt(r2) + 1e-8) for c in d]
            step = [step[k] + d[k] * phi / (len(others) if mean else 1.0) for k in range(3)]
            m_sum += m
        if velocity:
            phi_v = W["v2"][0] * silu(W["v1"][0] * h[i] + W["v1"][1]) + W["v2"][1]
            step = [step[k] + phi_v * v[i][k] for k in range(3)]
        new_x.append([x[i][k] + step[k] for k in range(3)])
        new_h.append(h[i] + W["h2"][0] * silu(W["h1"][0][0] * h[i] + W["h1"][0][1] * m_sum + W["h1"][1]) + W["h2"][1])
    return new_x, new_h


@pytest.mark.parametrize(
    "opts",
    [
        dict(mean=True, velocity=True),
        dict(mean=False, velocity=False, attention=True, normalize=True, tanh=True, rng=2.5),
    ],
)
def test_layer_matches_a_hand_computed_three_node_example(opts):
    x0 = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.5]]
    shift = [[0.1, -0.2, 0.0], [0.0, 0.3, 0.1], [-0.1, 0.0, 0.2]]
    h, v, q = [0.4, -1.0, 0.25], [[0.1, 0.0, -0.2], [0.0, 0.5, 0.0], [0.3, 0.3, 0.3]], [1.0, -1.0, 2.0]
    edges = [(2, 0), (0, 1), (1, 0), (2, 1), (0, 2), (1, 2)]  # (sender j, receiver i), deliberately unsorted
    ei = torch.tensor(edges).T
    pos, s = torch.tensor(x0, dtype=torch.float64), torch.tensor(shift, dtype=torch.float64)
    data = {
        K.NODE_FEATURES: torch.tensor(h, dtype=torch.float64)[:, None],
        K.EDGE_INDEX: ei,
        K.EDGE_VEC: pos[ei[1]] - pos[ei[0]],
        COORD_SHIFT: s,
        EDGE_ATTRS: torch.tensor([[q[i] * q[j]] for j, i in edges], dtype=torch.float64),
        K.VEL: torch.tensor(v, dtype=torch.float64),
    }
    layer = EGNNLayer(
        1,
        1,
        1,
        edge_attr_dim=1,
        residual=True,
        attention=opts.get("attention", False),
        normalize=opts.get("normalize", False),
        tanh=opts.get("tanh", False),
        coords_range=opts.get("rng", 1.0),
        coords_agg="mean" if opts["mean"] else "sum",
        velocity=opts["velocity"],
    ).double()
    set_weights(layer)
    out = layer(data)
    x = [[x0[i][k] + shift[i][k] for k in range(3)] for i in range(3)]
    want_x, want_h = reference(x, h, v, {(i, j): q[i] * q[j] for i in range(3) for j in range(3)}, **opts)
    got_x = (pos + out[COORD_SHIFT]).tolist()
    for i in range(3):
        assert out[K.NODE_FEATURES][i, 0].item() == pytest.approx(want_h[i], abs=1e-12)
        assert got_x[i] == pytest.approx(want_x[i], abs=1e-12)


# --- equivariance of every option combination ----------------------------------

OPTIONS = list(
    itertools.product([False, True], [False, True], [False, True], [False, True], ["mean", "sum"], [False, True])
)


@pytest.mark.parametrize("residual, attention, normalize, tanh, agg, velocity", OPTIONS)
def test_every_option_combination_is_e3_equivariant(residual, attention, normalize, tanh, agg, velocity):
    torch.manual_seed(0)
    data = layer_batch(features=4, edge_dim=2)
    layer = EGNNLayer(
        4,
        4 if residual else 6,
        hidden=8,
        edge_attr_dim=2,
        residual=residual,
        attention=attention,
        normalize=normalize,
        tanh=tanh,
        coords_range=3.0,
        coords_agg=agg,
        velocity=velocity,
    )
    with torch.no_grad():  # make coordinate updates of order one, so that a symmetry break would show
        layer.coord_mlp[-1].weight.normal_()
    report = audit(layer, data, dtype=torch.float64, checks=("rotation", "reflection", "permutation"), trials=1)
    assert report.passed, str(report)
    assert report["rotation"].rel_error < 1e-12


@pytest.mark.parametrize("velocity", [False, True])
def test_radial_field_layer(velocity):
    data = layer_batch(edge_dim=2)
    layer = RadialFieldLayer(edge_attr_dim=2, hidden=16, velocity=velocity)
    assert (K.VEL in layer.irreps_in) == velocity and layer.irreps_out == {COORD_SHIFT: o3.Irreps("1o")}
    assert layer.phi[2].bias is None and isinstance(layer.phi[3], torch.nn.Tanh)
    out = layer.double()(data)
    assert out[COORD_SHIFT].shape == (7, 3)
    with torch.no_grad():
        layer.phi[2].weight.normal_()
    report = audit(layer, data, dtype=torch.float64, checks=("rotation", "reflection", "permutation"))
    assert report.passed, str(report)


def test_coincident_nodes_give_finite_gradients():
    data = layer_batch(features=3, edge_dim=0)
    data[K.EDGE_VEC] = torch.zeros_like(data[K.EDGE_VEC]).requires_grad_()
    data[COORD_SHIFT] = torch.zeros_like(data[COORD_SHIFT])
    for layer in (EGNNLayer(3, normalize=True).double(), RadialFieldLayer().double()):
        (grad,) = torch.autograd.grad(layer(data)[COORD_SHIFT].sum() + 0 * data[K.EDGE_VEC].sum(), data[K.EDGE_VEC])
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", ["egnn", "egnn-vel", "radial-field", "tfn", "se3-transformer"])
def test_regular_graph_path_gives_the_numbers_of_the_gather_scatter_path(name):
    """A full graph of equal-size systems takes the dense (n, D) path; the sparse path must agree."""
    from irrepnet import keys as K
    from irrepnet.nn.graph_layer import GraphConstruction
    from irrepnet.registry import build_model
    from irrepnet.tasks import task_spec

    spec = task_spec("nbody", delta_t=0.001)
    graph = {"tfn": {"graph": "full"}, "se3-transformer": {"graph": "full", "radius": 50.0}}.get(name, {})
    torch.manual_seed(0)
    model = build_model(name, spec, **graph).double()
    g = torch.Generator().manual_seed(1)
    n = 4 * 5
    data = {
        K.POS: torch.randn(n, 3, generator=g, dtype=torch.float64),
        K.VEL: torch.randn(n, 3, generator=g, dtype=torch.float64),
        K.CHARGE: torch.randn(n, 1, generator=g, dtype=torch.float64).sign(),
        K.NUM_NODES: torch.full((4,), 5),
        K.BATCH: torch.arange(4).repeat_interleave(5),
    }
    layer = next(m for m in model.modules() if isinstance(m, GraphConstruction))
    assert K.RECEIVER_SLOTS in layer(data)
    dense = model(data)[K.DISPLACEMENT]
    layer.regular = False
    assert K.RECEIVER_SLOTS not in layer(data)
    torch.testing.assert_close(model(data)[K.DISPLACEMENT], dense, rtol=1e-10, atol=1e-12)
