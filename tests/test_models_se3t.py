"""The ``se3-transformer`` model: registry entry, symmetry claim, shared edge work, config errors.

Outputs, the audit in float32/float64, batching, gradients and the state_dict round
trip of the default config are in the shared conformance suite.
"""

import pytest
import torch
from toy_modules import twelve_body_batch

from irrepnet import keys as K
from irrepnet.equivariance import audit
from irrepnet.interface import Symmetry
from irrepnet.models.se3_transformer import SE3TransformerConfig
from irrepnet.nn import GraphConstruction, RadialEmbedding, SphericalHarmonicsEdgeAttrs
from irrepnet.nn.attention import EquivariantAttention
from irrepnet.registry import ConfigError, build_model, get_model_entry, list_models
from irrepnet.tasks import task_spec

SMALL = {"hidden_irreps": "8x0e + 4x0o + 4x1o + 4x1e", "heads": 4, "layers": 2, "radius": 2.5}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Graphs of a few nodes: a second intra-op thread only adds synchronisation (and stalls on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_registered_with_documented_defaults():
    assert "se3-transformer" in list_models()
    entry = get_model_entry("se3-transformer")
    assert "attention" in entry.description
    cfg = entry.default_config()
    assert (cfg.hidden_irreps, cfg.lmax, cfg.heads, cfg.layers, cfg.graph, cfg.radius, cfg.basis, cfg.skip) == (
        "32x0e + 16x1o + 16x1e",
        2,
        4,
        2,
        "auto",
        None,
        "bessel",
        "linear",
    )


def test_radius_defaults_per_task():
    # nbody: half the pairs are beyond 3.5 data units (issue 12); 2.5 fitted lengths are 10.4 (issue 25);
    # the radius of every block, graph and basis
    for name, radius in (("nbody", 2.5), ("twelve_body", 3.5), ("molecules", 3.5)):
        spec = task_spec(name, history=2) if name == "twelve_body" else task_spec(name)
        model = build_model("se3-transformer", spec, **{**SMALL, "radius": None})
        model = getattr(model, "backbone", model)  # molecules: the energy model's backbone
        blocks = [m for m in model.modules() if isinstance(m, EquivariantAttention)]
        embedding = next(m for m in model.modules() if isinstance(m, RadialEmbedding))
        assert model.radius == radius and embedding.r_max == radius and {b.r_max for b in blocks} == {radius}
    model = build_model("se3-transformer", task_spec("nbody"), **{**SMALL, "radius": 4.0})
    assert model.radius == 4.0


@pytest.mark.parametrize(
    "skip, kinds", [("linear", ["linear", "linear"]), ("auto", ["linear", "residual"]), ("none", ["none", "none"])]
)
def test_skip_options_and_their_equivariance(skip, kinds):
    torch.manual_seed(0)
    model = build_model("se3-transformer", task_spec("twelve_body", history=2), **{**SMALL, "skip": skip})
    assert [m.skip for m in model.modules() if isinstance(m, EquivariantAttention)] == kinds
    for dtype in (torch.float32, torch.float64):
        report = audit(model, twelve_body_batch(), dtype=dtype, checks=("rotation", "reflection", "translation"))
        assert report.passed, str(report)


def test_skip_is_a_linear_path_from_the_input_velocity():
    # with the gated paths silenced, the skips alone map the velocity linearly to the displacement
    torch.manual_seed(0)
    model = build_model("se3-transformer", task_spec("twelve_body", history=2), **{**SMALL, "skip": "linear"}).double()
    for m in model.modules():
        if isinstance(m, EquivariantAttention):
            with torch.no_grad():  # the stored weights, whatever their parametrisation
                for p in m.self_interaction.parameters():
                    p.zero_()
    data = twelve_body_batch()
    out = model(data)[K.DISPLACEMENT]
    data2 = {**data, K.VEL_HISTORY: 2 * data[K.VEL_HISTORY]}
    torch.testing.assert_close(model(data2)[K.DISPLACEMENT], 2 * out)
    assert out.abs().max() > 0


def test_a_checkpoint_without_skip_weights_loads_as_the_same_function():
    # models saved before the skip existed: their state has no sc weights; zeros are filled in
    torch.manual_seed(0)
    spec = task_spec("twelve_body", history=2)
    old = build_model("se3-transformer", spec, **{**SMALL, "skip": "none"}).double()
    new = build_model("se3-transformer", spec, **{**SMALL, "skip": "linear"}).double()
    new.load_state_dict(old.state_dict())  # strict: nothing missing once the hook has filled the skip
    data = twelve_body_batch()
    torch.testing.assert_close(new(data)[K.DISPLACEMENT], old(data)[K.DISPLACEMENT])
    with pytest.raises(RuntimeError, match="Unexpected key"):  # the other way round still refuses
        old.load_state_dict(new.state_dict())


def test_claims_e3_and_passes_reflections_with_sixteen_heads():
    torch.manual_seed(0)  # the default config on both tasks is audited by the conformance suite
    model = build_model("se3-transformer", task_spec("twelve_body", history=2), heads=16, layers=1)
    assert model.symmetry is Symmetry.E3
    report = audit(model, twelve_body_batch(), dtype=torch.float64, checks=("rotation", "reflection"))
    assert report.passed and report["reflection"].passed, str(report)


def test_edge_work_is_done_once_per_batch_and_shared_by_blocks():
    model = build_model("se3-transformer", task_spec("twelve_body", history=2), layers=3, heads=4)
    calls = {}
    for module in model.modules():
        if isinstance(module, (GraphConstruction, SphericalHarmonicsEdgeAttrs, RadialEmbedding, EquivariantAttention)):
            name = type(module).__name__
            calls.setdefault(name, 0)
            module.register_forward_hook(lambda m, i, o, name=name: calls.__setitem__(name, calls[name] + 1))
    model(twelve_body_batch(torch.float32))
    assert calls == {
        "GraphConstruction": 1,
        "SphericalHarmonicsEdgeAttrs": 1,
        "RadialEmbedding": 1,
        "EquivariantAttention": 3,
    }


def test_full_graph_gives_the_radius_graph_output():
    # edges beyond the radius get attention weight exactly 0, so only the cost differs
    spec = task_spec("twelve_body", history=2)
    radius = build_model("se3-transformer", spec, graph="radius", **SMALL).double()
    full = build_model("se3-transformer", spec, graph="full", **SMALL).double()
    full.load_state_dict(radius.state_dict())
    data = twelve_body_batch()
    data[K.POS] = data[K.POS] * 2.0  # some pairs beyond the radius
    torch.testing.assert_close(full(data)[K.DISPLACEMENT], radius(data)[K.DISPLACEMENT])


def test_a_few_adam_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = build_model("se3-transformer", task_spec("twelve_body", history=2), **{**SMALL, "layers": 1})
    data = twelve_body_batch(torch.float32)
    target = 0.5 * data[K.VEL] + 0.2 * data[K.VEL_HISTORY][:, 3:]  # an equivariant function of the inputs
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = (model(data)[K.DISPLACEMENT] - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"heads": 3}, r"hidden_irreps=.*multiplicities of 32x0e, 16x1o, 16x1e are not divisible by heads=3"),
        ({"heads": 32}, r"16x1o, 16x1e are not divisible by heads=32"),
        ({"key_irreps": "6x0e + 4x1o"}, r"key_irreps=.*6x0e are not divisible by heads=4"),
        ({"hidden_irreps": "32x0e + 16x1e"}, r"no 1o channels"),
        ({"graph": "knn"}, r"'radius', 'full' or 'auto'"),
        ({"heads": 0}, r"heads >= 1"),
        ({"radius": 0.0}, r"radius must be > 0"),
        ({"skip": "gated"}, r"skip must be one of"),
    ],
)
def test_config_errors_are_clear(overrides, match):
    with pytest.raises(ConfigError, match=match):
        build_model("se3-transformer", task_spec("twelve_body", history=2), **overrides)


def test_config_dataclass_defaults_match_the_registry():
    assert get_model_entry("se3-transformer").config is SE3TransformerConfig
