"""SEGNN and its steerable layers: the fast steerable linear layer against the plain sum over
paths, its weight count against e3nn's fully connected product, equivariance, the cutoff
envelope, and the config errors. The conformance suite (tests/test_conformance.py) audits
the whole model on every task in float32 and float64.
"""

import math

import pytest
import torch
from e3nn import o3

from irrepnet import keys as K
from irrepnet.batch import collate
from irrepnet.irreps import irreps_D, random_rotation
from irrepnet.nn.steerable import SEGNNLayer, SteerableLinear, weight_balanced_irreps
from irrepnet.registry import ConfigError, build_model
from irrepnet.tasks import task_spec

CASES = [
    # (features, attribute, output): SEGNN's message input (repeats, scalars appended), its gate,
    # mixed parities with l = 2 (every coupling branch: identity, outer, dot, general)
    ("32x0e + 32x1o + 32x0e + 32x1o + 2x0e", o3.Irreps.spherical_harmonics(1), "64x0e + 32x1o"),
    ("3x0e + 2x0o + 4x1o + 2x1e + 3x2e", o3.Irreps.spherical_harmonics(2), "5x0e + 2x0o + 3x1o + 2x1e + 2x2e + 1x2o"),
    ("4x1o", o3.Irreps.spherical_harmonics(1), "1x0e + 2x1o"),
]


def reference(layer: SteerableLinear, x, attr):
    """The sum over paths of sum_u W_uw (x_u (x) a)^{l3}, written out with einsum."""
    rows = x.shape[0]
    outs = {o: torch.zeros(rows, mul, 2 * ir.l + 1, dtype=x.dtype) for o, (mul, ir) in enumerate(layer.irreps_out)}
    for (i, j, o), w in layer.path_weights().items():
        cols = getattr(layer, f"_cols_{i}")
        l1 = layer.in_types[i][0]
        xi = x[:, cols].view(rows, -1, 2 * l1 + 1)
        sl = layer.irreps_attr.slices()[j]
        a = attr[:, sl]
        cg = layer._cg[(i, j, o)]
        outs[o] += torch.einsum("rua,rb,abc,uw->rwc", xi, a, cg, w)
    if layer.bias is None:
        return torch.cat([outs[o].reshape(rows, -1) for o in sorted(outs)], dim=1)
    bias = iter(layer.bias.split([layer.irreps_out[o].mul for o in layer.scalar_out]))
    for o in layer.scalar_out:
        outs[o] += next(bias).view(1, -1, 1)
    return torch.cat([outs[o].reshape(rows, -1) for o in sorted(outs)], dim=1)


def _layer(seed, irreps_in, irreps_attr, irreps_out) -> SteerableLinear:
    """A float64 layer with random biases too (they start at 0)."""
    torch.manual_seed(seed)
    layer = SteerableLinear(irreps_in, irreps_attr, irreps_out).double()
    if layer.bias is not None:
        with torch.no_grad():
            layer.bias.normal_()
    return layer


@pytest.mark.parametrize("irreps_in,irreps_attr,irreps_out", CASES)
def test_steerable_linear_equals_the_sum_over_paths(irreps_in, irreps_attr, irreps_out):
    layer = _layer(0, irreps_in, irreps_attr, irreps_out)
    x = torch.randn(7, layer.irreps_in.dim, dtype=torch.float64)
    attr = o3.spherical_harmonics(
        irreps_attr, torch.randn(7, 3, dtype=torch.float64), normalize=True, normalization="component"
    )
    torch.testing.assert_close(layer(x, attr), reference(layer, x, attr), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("irreps_in,irreps_attr,irreps_out", CASES)
def test_steerable_linear_has_the_weights_of_a_fully_connected_product(irreps_in, irreps_attr, irreps_out):
    layer = SteerableLinear(irreps_in, irreps_attr, irreps_out)
    fctp = o3.FullyConnectedTensorProduct(irreps_in, irreps_attr, irreps_out)
    assert layer.weight_numel == fctp.weight_numel
    assert set(layer.path_weights()) and all(
        w.shape[1] == layer.irreps_out[o].mul for (_, _, o), w in layer.path_weights().items()
    )


@pytest.mark.parametrize("irreps_in,irreps_attr,irreps_out", CASES)
def test_steerable_linear_is_o3_equivariant(irreps_in, irreps_attr, irreps_out):
    layer = _layer(1, irreps_in, irreps_attr, irreps_out)
    vec = torch.randn(5, 3, dtype=torch.float64)
    x = torch.randn(5, layer.irreps_in.dim, dtype=torch.float64)
    # a rotation times the inversion; irrepnet's irreps_D is exact in float64 (e3nn's
    # D_from_matrix builds its generators in float32: the attribute's own D was off by 3e-7)
    R = random_rotation(torch.Generator().manual_seed(3), proper=False).double()
    D_in, D_out = irreps_D(layer.irreps_in, R), irreps_D(layer.irreps_out, R)

    def sh(v):
        return o3.spherical_harmonics(irreps_attr, v, normalize=True, normalization="component")

    torch.testing.assert_close(layer(x @ D_in.T, sh(vec @ R.T)), layer(x, sh(vec)) @ D_out.T, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("irreps_in,irreps_attr,irreps_out", CASES)
def test_linear_parametrization_is_torch_linear_init_of_the_same_function(irreps_in, irreps_attr, irreps_out):
    layer = _layer(2, irreps_in, irreps_attr, irreps_out)
    torch.manual_seed(4)
    layer.reset_parameters("linear")
    assert layer.parametrization == "linear"
    # the weights as used are the parameters themselves, each within +-1/sqrt(fan-in) of its output
    for (_i, _j, o), w in layer.path_weights().items():
        assert w.abs().max() <= layer.fan_in[o] ** -0.5 + 1e-12
    raw = [p for p in list(layer.weights_mix) + list(layer.weights_couple)]
    assert torch.equal(
        torch.cat([w.flatten() for w in layer.path_weights().values()]).sort().values,
        torch.cat([p.flatten() for p in raw]).sort().values,
    )
    if layer.bias is not None:
        assert layer.bias.abs().max() > 0  # drawn like nn.Linear's bias, not zero
    # still the same function class: the fast layer equals the sum over paths, and is equivariant
    x = torch.randn(7, layer.irreps_in.dim, dtype=torch.float64)
    attr = o3.spherical_harmonics(
        irreps_attr, torch.randn(7, 3, dtype=torch.float64), normalize=True, normalization="component"
    )
    torch.testing.assert_close(layer(x, attr), reference(layer, x, attr), rtol=1e-10, atol=1e-10)
    layer.reset_parameters("e3nn")  # and back: unit-normal parameters, scaled by 1/sqrt(fan-in) in the forward
    raw = torch.cat([p.flatten() for p in list(layer.weights_mix) + list(layer.weights_couple)])
    assert 0.5 < float(raw.std()) < 1.5 and layer.parametrization == "e3nn"
    torch.testing.assert_close(layer(x, attr), reference(layer, x, attr), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="parametrization"):
        layer.reset_parameters("xavier")


def test_steerable_linear_refuses_unreachable_outputs_and_repeated_ones():
    with pytest.raises(ValueError, match="no tensor-product path"):
        SteerableLinear("4x0e", o3.Irreps.spherical_harmonics(1), "2x2e")
    with pytest.raises(ValueError, match="each irrep once"):
        SteerableLinear("4x0e", o3.Irreps.spherical_harmonics(1), "2x0e + 1x1o + 2x0e")
    with pytest.raises(ValueError, match="each degree once"):
        SteerableLinear("4x0e", "2x0e + 1x1o", "2x0e")


def test_weight_balanced_irreps_match_the_paper():
    attr = o3.Irreps.spherical_harmonics(1)
    assert weight_balanced_irreps(64, 1, attr) == o3.Irreps("32x0e + 32x1o")
    hidden = weight_balanced_irreps(64, 1, attr)
    assert SteerableLinear(hidden, attr, hidden).weight_numel >= 64 * 64


def _nbody_batch(n_graphs=3, n=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    samples = [
        {
            K.POS: torch.randn(n, 3, generator=gen, dtype=torch.float64),
            K.VEL: torch.randn(n, 3, generator=gen, dtype=torch.float64),
            K.CHARGE: torch.randint(0, 2, (n, 1), generator=gen).double() * 2 - 1,
        }
        for _ in range(n_graphs)
    ]
    return collate(samples)


def test_segnn_default_is_the_papers_nbody_model():
    spec = task_spec("nbody")
    model = build_model("segnn", spec)
    assert model.hidden_irreps == o3.Irreps("32x0e + 32x1o")
    layers = [m for m in model.chain.layers if isinstance(m, SEGNNLayer)]
    assert len(layers) == 4
    # charge product and distance as message scalars
    assert layers[0].edge_scalars == 2
    out = model(_nbody_batch())[K.DISPLACEMENT]
    assert out.shape == (15, 3) and torch.isfinite(out).all()


def test_segnn_papers_code_inputs_and_attribute_scales():
    """``attr_normalization="integral"``, ``node_charge=False``: the N-body inputs of the paper's code."""
    torch.manual_seed(0)
    spec = task_spec("nbody")
    model = build_model("segnn", spec, attr_normalization="integral", node_charge=False, aggregation="sum").double()
    data = _nbody_batch()
    seen = {}
    inputs = model.chain.layers[3]  # graph, invariant inputs, edge SH, SteerableInputs
    inputs.register_forward_hook(lambda _m, _args, out: seen.update(out))
    model(data)
    # a_i = mean_j Y(x_ij) + Y(v_i), Y^0 = 1/sqrt(4 pi) (e3nn's "integral"): a_i^0 = 2/sqrt(4 pi)
    torch.testing.assert_close(
        seen[K.NODE_ATTRS][:, 0], torch.full((15,), 2 / math.sqrt(4 * math.pi), dtype=torch.float64)
    )
    # h^0: 1, |v| (no charge), then v and x - centroid
    assert seen[K.NODE_FEATURES].shape[1] == 2 + 3 + 3
    default = build_model("segnn", spec).double()
    assert default.chain.layers[3].irreps_out[K.NODE_FEATURES].dim == 3 + 3 + 3  # 1, |v|, q, v, x - centroid


def test_segnn_runs_without_velocities():
    spec = task_spec("twelve_body", history=0)
    model = build_model("segnn", spec)
    batch = collate([{K.POS: torch.randn(12, 3), K.NODE_INDEX: torch.arange(12)} for _ in range(2)])
    assert model(batch)[K.DISPLACEMENT].shape == (24, 3)


def test_segnn_radius_graph_fades_edges_out_at_the_cutoff():
    """With graph='radius' a pair crossing the cutoff changes the output continuously."""
    torch.manual_seed(0)
    # centred positions off: moving a node moves the centroid, which every output reads
    # readout at full scale: outputs of order 1e-2, so that the thresholds below mean the same for any init
    model = build_model(
        "segnn", task_spec("nbody"), graph="radius", radius=2.0, center_positions=False, readout_init_scale=1.0
    ).double()
    # node 3 at (x, 0, 0) with x near 2: only its edge to node 0 crosses the cutoff
    pos = torch.tensor([[0.0, 0, 0], [-0.3, 0.4, 0], [-0.5, 0.2, 0.1], [0.0, 0.0, 0.0]], dtype=torch.float64)
    base = {K.VEL: torch.randn(4, 3, dtype=torch.float64), K.CHARGE: torch.ones(4, 1, dtype=torch.float64)}

    def run(x):
        p = pos.clone()
        p[3, 0] = x
        return model(collate([{**base, K.POS: p}]))[K.DISPLACEMENT]

    inside, outside = run(2.0 - 1e-4), run(2.0 + 1e-4)
    near = run(1.5)
    # the others see the moving node only through its edges, which fade out at the cutoff
    assert (inside[:3] - outside[:3]).abs().max() < 1e-9
    assert (near[:3] - outside[:3]).abs().max() > 1e-3  # within the cutoff it matters: not a vacuous check
    assert outside.abs().max() < 10  # and the scale is what the thresholds assume


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(lmax_attr=0), "lmax_attr"),
        (dict(layers=0), "layers"),
        (dict(aggregation="max"), "aggregation"),
        (dict(hidden_irreps="8x1o"), "0e"),
        (dict(hidden_irreps="eight vectors"), "invalid hidden_irreps"),
        (dict(graph="radius"), "radius"),
        (dict(features=0), "features"),
        (dict(parametrization="xavier"), "parametrization"),
        (dict(attr_normalization="norm"), "attr_normalization"),
    ],
)
def test_segnn_config_errors_say_what_to_change(overrides, match):
    with pytest.raises(ConfigError, match=match):
        build_model("segnn", task_spec("nbody"), **overrides)
