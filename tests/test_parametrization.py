"""``irrepnet.nn.parametrization``: e3nn layers stored as ``torch.nn.Linear`` would store them.

What must hold: the switch keeps the function, finds every fan-in-normalised weight of
the models that use it (e3nn's ``o3.Linear`` and ``FullyConnectedNet``, irrepnet's
``RadialMLP``), makes one Adam step move an applied weight by ``lr`` instead of
``lr / sqrt(fan-in)``, and old state_dicts (before the switch, and before se3-transformer's
skip) still load as the same function. The equivariance of the models built this way is
the conformance suite's (their default configs).
"""

import math

import pytest
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch.nn.utils import parametrize
from toy_modules import twelve_body_batch

from irrepnet import keys as K
from irrepnet.nn.parametrization import applied_scales, use_linear_parametrization
from irrepnet.nn.tp_conv import RadialMLP
from irrepnet.registry import ConfigError, build_model
from irrepnet.tasks import task_spec

SE3_SMALL = {"hidden_irreps": "8x0e + 4x0o + 4x1o + 4x1e", "heads": 4, "layers": 2, "radius": 2.5}
TFN_SMALL = {"hidden_irreps": "8x0e + 4x1o + 2x2e", "layers": 2, "radial_neurons": 16}
MODELS = [("se3-transformer", SE3_SMALL), ("tfn", TFN_SMALL)]


def batch():
    return twelve_body_batch()


def applied_weight(layer: o3.Linear) -> torch.Tensor:
    """The weights the layer multiplies its input by: each instruction's path weight times ``layer.weight``.

    Computed here from e3nn's instructions, independently of the module under test.
    """
    path_weights = [
        torch.full((ins.path_shape[0] * ins.path_shape[1],), ins.path_weight)
        for ins in layer.instructions
        if ins.i_in != -1
    ]
    return layer.weight * torch.cat(path_weights)


def test_the_switch_keeps_the_function_and_stores_the_applied_weight():
    torch.manual_seed(0)
    layer = o3.Linear("16x0e + 4x1o", "8x0e + 2x1o")
    x = torch.randn(5, layer.irreps_in.dim)
    before, applied = layer(x), applied_weight(layer).detach().clone()
    assert use_linear_parametrization(layer) == 1
    torch.testing.assert_close(layer(x), before)
    torch.testing.assert_close(layer.parametrizations.weight.original, applied)  # what Adam now moves
    assert use_linear_parametrization(layer) == 0  # idempotent


@pytest.mark.parametrize("switched", [False, True])
def test_one_adam_step_moves_an_applied_weight_by_lr_only_when_switched(switched):
    torch.manual_seed(0)
    fan_in, lr = 64, 1e-3
    layer = o3.Linear(f"{fan_in}x0e", "4x0e")
    if switched:
        use_linear_parametrization(layer)
    before = applied_weight(layer).detach().clone()
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    layer(torch.randn(32, fan_in)).pow(2).sum().backward()
    opt.step()
    step = (applied_weight(layer).detach() - before).abs()
    # Adam's first step is lr * g / (|g| + eps): lr in each stored weight, then scaled by the forward
    expected = lr if switched else lr / math.sqrt(fan_in)
    torch.testing.assert_close(step, torch.full_like(step, expected), rtol=1e-3, atol=1e-9)


def test_fully_connected_and_radial_mlp_weights_are_found_and_kept():
    torch.manual_seed(0)
    fc = e3nn_nn.FullyConnectedNet([8, 16, 5], torch.nn.functional.silu)
    mlp = RadialMLP(8, 5, neurons=16, layers=2)
    x = torch.randn(7, 8)
    before = fc(x), mlp(x)
    assert use_linear_parametrization(fc) == 2 and use_linear_parametrization(mlp) == 3
    torch.testing.assert_close(fc(x), before[0])
    torch.testing.assert_close(mlp(x), before[1])
    # stored = applied (the 1/sqrt(fan-in) of the forward folded in)
    first = mlp.weights.parametrizations["0"].original
    torch.testing.assert_close(first * math.sqrt(8), mlp.weights[0])
    assert applied_scales(torch.nn.Linear(3, 4)) == {}  # a plain Linear already stores what it applies


@pytest.mark.parametrize("name,small", MODELS)
def test_models_switch_every_fan_in_normalised_weight(name, small):
    torch.manual_seed(0)
    model = build_model(name, task_spec("twelve_body", history=2), **{**small, "parametrization": "linear"})
    raw = [n for n, _ in model.named_parameters() if "parametrizations" in n]
    left = [n for n, m in model.named_modules() if applied_scales(m) and not parametrize.is_parametrized(m)]
    assert raw and not left, left


@pytest.mark.parametrize("name,small", MODELS)
def test_a_state_dict_from_before_the_switch_loads_as_the_same_function(name, small):
    torch.manual_seed(0)
    spec = task_spec("twelve_body", history=2)
    old = build_model(name, spec, **{**small, "parametrization": "e3nn"}).double()
    new = build_model(name, spec, **{**small, "parametrization": "linear"}).double()
    new.load_state_dict(old.state_dict())  # strict
    data = batch()
    torch.testing.assert_close(new(data)[K.DISPLACEMENT], old(data)[K.DISPLACEMENT])
    again = build_model(name, spec, **{**small, "parametrization": "linear"}).double()
    again.load_state_dict(new.state_dict())  # and its own round trip
    torch.testing.assert_close(again(data)[K.DISPLACEMENT], old(data)[K.DISPLACEMENT])


def test_an_se3_transformer_from_before_the_skip_and_the_switch_loads_as_the_same_function():
    torch.manual_seed(0)
    spec = task_spec("twelve_body", history=2)
    old = build_model("se3-transformer", spec, **{**SE3_SMALL, "skip": "none", "parametrization": "e3nn"}).double()
    new = build_model("se3-transformer", spec, **{**SE3_SMALL, "skip": "linear", "parametrization": "linear"}).double()
    new.load_state_dict(old.state_dict())
    data = batch()
    torch.testing.assert_close(new(data)[K.DISPLACEMENT], old(data)[K.DISPLACEMENT])


@pytest.mark.parametrize("name", ["se3-transformer", "tfn"])
def test_an_unknown_parametrization_is_a_config_error(name):
    with pytest.raises(ConfigError, match="parametrization must be one of"):
        build_model(name, task_spec("twelve_body", history=2), parametrization="xavier")


@pytest.mark.repo
def test_speed_benchmark_builds_the_e3nn_weight_variant():
    """benchmarks/speed.py's NAME@e3nn-weights: the same model without the parametrisation, to time its cost."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"
    spec_ = importlib.util.spec_from_file_location("speed", path)
    speed = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(speed)
    spec = task_spec("twelve_body", history=2, num_nodes=12)
    default, plain = speed.build("tfn", spec), speed.build("tfn@e3nn-weights", spec)
    assert any(parametrize.is_parametrized(m) for m in default.modules())
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert sum(p.numel() for p in default.parameters()) == sum(p.numel() for p in plain.parameters())
