"""The EGNN family and the non-equivariant baselines as registered models."""

import pytest
import torch

from irrepnet import collate
from irrepnet import keys as K
from irrepnet.equivariance import audit
from irrepnet.interface import TaskSpec
from irrepnet.models.baselines_nn import GNN, MLP
from irrepnet.models.egnn import EGNN, RadialField
from irrepnet.nn import EGNNLayer, RadialFieldLayer
from irrepnet.registry import ConfigError, build_model
from irrepnet.tasks import task_spec

NBODY = task_spec("nbody")
TWELVE2 = task_spec("twelve_body", history=2)


def nbody_batch(sizes=(5, 5, 5), seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return collate(
        [
            {
                K.POS: torch.randn(n, 3, generator=gen, dtype=dtype),
                K.VEL: torch.randn(n, 3, generator=gen, dtype=dtype),
                K.CHARGE: torch.randint(0, 2, (n, 1), generator=gen).to(dtype) * 2 - 1,
                K.NODE_INDEX: torch.arange(n),
            }
            for n in sizes
        ]
    )


def twelve_batch(n_graphs=2, history=2, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n_graphs):
        hist = 0.1 * torch.randn(12, 3 * history, generator=gen, dtype=dtype)
        samples.append(
            {
                K.POS: 3 * torch.randn(12, 3, generator=gen, dtype=dtype),
                K.VEL: hist[:, :3],
                K.VEL_HISTORY: hist,
                K.NODE_INDEX: torch.arange(12),
            }
        )
    return collate(samples)


def linear_shapes(seq):
    """[(in, out, bias) or activation name] of an nn.Sequential."""
    return [
        (m.in_features, m.out_features, m.bias is not None) if isinstance(m, torch.nn.Linear) else type(m).__name__
        for m in seq
    ]


def test_egnn_vel_has_the_paper_layer_shapes_on_nbody():
    model = build_model("egnn-vel", NBODY)
    assert isinstance(model, EGNN) and model.symmetry.value == "E(3)"
    layers = [m for m in model.modules() if isinstance(m, EGNNLayer)]
    assert len(layers) == 4
    for layer in layers:
        assert linear_shapes(layer.edge_mlp) == [(131, 64, True), "SiLU", (64, 64, True), "SiLU"]
        assert linear_shapes(layer.node_mlp) == [(128, 64, True), "SiLU", (64, 64, True)]
        assert linear_shapes(layer.coord_mlp) == [(64, 64, True), "SiLU", (64, 1, False)]
        assert linear_shapes(layer.vel_mlp) == [(64, 64, True), "SiLU", (64, 1, True)]
        assert layer.att_mlp is None and layer.residual and layer.coords_agg == "mean"
    # h^0 = |v| embedded by Linear(1 -> 64); a_ij = [q_i q_j, |x_i^0 - x_j^0|^2]
    embeddings = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.in_features == 1]
    assert len(embeddings) == 1 and embeddings[0].out_features == 64
    per_layer = (
        (131 * 64 + 64 + 64 * 64 + 64) + (128 * 64 + 64 + 64 * 64 + 64) + (64 * 64 + 64 + 64) + (64 * 64 + 64 + 64 + 1)
    )
    assert sum(p.numel() for p in model.parameters()) == 64 + 64 + 4 * per_layer


def test_egnn_vel_inputs_are_the_papers():
    model = build_model("egnn-vel", NBODY).double()
    data = nbody_batch(dtype=torch.float64)
    inputs = model.net.layers[1](model.net.layers[0](data))
    torch.testing.assert_close(inputs[K.NODE_FEATURES], data[K.VEL].norm(dim=1, keepdim=True))
    ei = inputs[K.EDGE_INDEX]
    q = data[K.CHARGE]
    want = torch.cat([q[ei[1]] * q[ei[0]], (data[K.POS][ei[1]] - data[K.POS][ei[0]]).pow(2).sum(1, keepdim=True)], 1)
    torch.testing.assert_close(inputs["edge_attrs"], want)


def test_velocity_models_need_a_velocity():
    with pytest.raises(ConfigError, match="egnn-vel needs a velocity input.*history length >= 1"):
        build_model("egnn-vel", task_spec("twelve_body", history=0))
    model = build_model("egnn-vel", TWELVE2)  # the last frame step is the velocity
    assert model.irreps_in[K.VEL] is not None
    out = model(twelve_batch())
    assert out[K.DISPLACEMENT].shape == (24, 3)
    # the radial field drops its velocity term when there is none
    rf = build_model("radial-field", task_spec("twelve_body", history=0))
    assert isinstance(rf, RadialField) and K.VEL not in rf.irreps_in
    assert all(m.vel_mlp is None for m in rf.modules() if isinstance(m, RadialFieldLayer))
    assert all(
        m.vel_mlp is not None for m in build_model("radial-field", NBODY).modules() if isinstance(m, RadialFieldLayer)
    )


def test_graphs_of_any_size_batch_like_one_at_a_time():
    sizes = (3, 7, 2, 5)
    data = nbody_batch(sizes, dtype=torch.float64)
    for name in ("egnn", "egnn-vel", "radial-field", "gnn"):
        model = build_model(name, NBODY, layers=2, hidden=16).double()
        whole, start = model(data)[K.DISPLACEMENT], 0
        for n in sizes:
            one = {k: v[start : start + n] for k, v in data.items() if k in (K.POS, K.VEL, K.CHARGE, K.NODE_INDEX)}
            torch.testing.assert_close(model(one)[K.DISPLACEMENT], whole[start : start + n])
            start += n


@pytest.mark.parametrize(
    "overrides",
    [
        {"attention": True},
        {"normalize": True, "coords_agg": "sum"},
        {"tanh": True, "coords_range": 2.0},
        {"residual": False, "act": "relu"},
        {"graph": "radius", "radius": 2.5},
    ],
)
def test_egnn_options_stay_e3_equivariant_with_translations(overrides):
    for name, spec, data in (("egnn", NBODY, nbody_batch()), ("egnn-vel", TWELVE2, twelve_batch())):
        model = build_model(name, spec, layers=2, hidden=16, **overrides)
        for layer in model.modules():
            if isinstance(layer, EGNNLayer):
                with torch.no_grad():
                    layer.coord_mlp[-1].weight.normal_(std=0.3)  # order-one coordinate updates
        report = audit(model, data, dtype=torch.float64)
        assert report.passed and report["translation"].rel_error < 1e-10, str(report)


def test_float64_batches_feed_float32_models():
    model = build_model("egnn", NBODY)
    out = model(nbody_batch(dtype=torch.float64))
    assert out[K.DISPLACEMENT].dtype == torch.float32


@pytest.mark.parametrize(
    "name, overrides, match",
    [
        ("egnn", {"graph": "radius"}, "radius > 0"),
        ("egnn", {"graph": "knn"}, "unknown graph"),
        ("egnn", {"coords_agg": "max"}, "coords_agg"),
        ("egnn", {"act": "swish"}, "unknown activation"),
        ("radial-field", {"layers": 0}, "layers must be >= 1"),
        ("gnn", {"hidden": 0}, "hidden >= 1"),
    ],
)
def test_bad_options_are_config_errors(name, overrides, match):
    with pytest.raises(ConfigError, match=match):
        build_model(name, NBODY, **overrides)


def test_mlp_needs_a_fixed_node_count():
    with pytest.raises(ConfigError, match="fixed node count"):
        build_model("mlp", TaskSpec("polymers", TWELVE2.inputs, K.DISPLACEMENT, num_nodes=None))
    model = build_model("mlp", NBODY)
    assert isinstance(model, MLP) and model.permutation_equivariant is False
    assert model(nbody_batch((5, 5)))[K.DISPLACEMENT].shape == (10, 3)
    with pytest.raises(ValueError, match=r"graphs of 5 nodes, but graph 1 of the batch has 7 nodes"):
        model(nbody_batch((5, 7)))


def test_mlp_batch_order_does_not_need_contiguous_graphs():
    model = build_model("mlp", NBODY).double()
    data = nbody_batch((5, 5), dtype=torch.float64)
    want = model(data)[K.DISPLACEMENT]
    order = torch.tensor([5, 0, 6, 1, 7, 2, 8, 3, 9, 4])  # interleave the graphs, keep each graph's order
    mixed = {k: v[order] if k in (K.POS, K.VEL, K.CHARGE, K.BATCH, K.NODE_INDEX) else v for k, v in data.items()}
    torch.testing.assert_close(model(mixed)[K.DISPLACEMENT], want[order])


@pytest.mark.parametrize("name", ["mlp", "gnn"])
@pytest.mark.parametrize("spec, data", [(NBODY, nbody_batch()), (TWELVE2, twelve_batch())])
def test_the_audit_bites_on_the_non_equivariant_baselines(name, spec, data):
    model = build_model(name, spec, hidden=32)
    assert model.symmetry.value == "none"
    for dtype in (torch.float32, torch.float64):
        report = audit(model, data, dtype=dtype, trials=1)
        assert report.passed  # nothing geometric is claimed ...
        assert report["rotation"].passed is None and report["rotation"].rel_error > 1e-2  # ... and it shows
        assert report["reflection"].rel_error > 1e-2
        if name == "gnn":
            assert isinstance(model, GNN) and report["permutation"].passed is True
        else:
            assert report["permutation"].passed is None and report["permutation"].rel_error > 1e-2
