"""Compile conformance: every registered model compiles in one graph and computes what it does eagerly.

Parametrised over the registry like ``test_conformance.py``. Each model is compiled
with ``fullgraph=True`` and no eager fallback (a graph break fails the test), compared
with its eager self within a tolerance per dtype, and audited. Compiling costs seconds
to a minute per model on 2 cores, so models run at small sizes, and the default run
checks inference in float32; float64 and the training step (forward and backward
compiled, gradients compared) are marked slow and run in CI's second pass.

The peers (``irrepnet.models.peers``) are other projects' code and not part of this
contract: egnn-pytorch compiles in one graph (about a minute here), se3-transformer-pytorch
does not (it reads its basis cache from disk in its forward) and ``compile_model`` runs
it eagerly, with a warning.
"""

import copy
import warnings

import pytest
import torch
from test_conformance import make_batches

from irrepnet import keys as K
from irrepnet.batch import to
from irrepnet.compile import CompilationFallbackWarning, CompiledModel, compile_model
from irrepnet.equivariance import audit
from irrepnet.interface import IrrepsModel
from irrepnet.registry import ConfigError, build_model, list_models
from irrepnet.tasks import task_spec

#: sizes that compile quickly; the code paths are those of the defaults
SMALL = {
    "e3nn-reference": dict(
        irreps_hidden="2x0e + 2x0o + 2x1e + 2x1o", layers=1, lmax=1, number_of_basis=4, radial_neurons=8
    ),
    "e3nn-polynomial": dict(lmax=1, hidden_irreps="2x0e + 2x1o"),
    "tfn": dict(hidden_irreps="2x0e + 2x0o + 2x1e + 2x1o", layers=1, lmax=1, radial_neurons=8, graph="full"),
    "se3-transformer": dict(hidden_irreps="4x0e + 4x1o", layers=1, lmax=1, radial_hidden=8),
    "mace": dict(channels=4, max_ell=2, correlation=2, radial_neurons=8, radial_layers=1, readout_mlp=4),
    "egnn": dict(hidden=16, layers=2),
    "egnn-vel": dict(hidden=16, layers=2),
    "radial-field": dict(hidden=16, layers=2),
    "gnn": dict(hidden=16, layers=2),
    "mlp": dict(hidden=16, layers=2),
}
#: compiled vs eager, relative to the output's scale: inductor reorders additions and fuses ops
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10}


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    return make_batches(tmp_path_factory.mktemp("cache"))


def _small(name, spec):
    torch.manual_seed(0)
    try:
        return build_model(name, spec, SMALL.get(name, {}))
    except ConfigError as exc:
        pytest.skip(f"{name}: {exc}")


def _close(got: torch.Tensor, want: torch.Tensor, dtype) -> None:
    scale = max(float(want.abs().max()), 1e-12)
    err = float((got - want).abs().max()) / scale
    assert err <= TOLERANCE[dtype], f"compiled differs from eager by {err:.2e} of the output's scale"


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.float64, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", list_models(peers=False))
def test_compiled_model_matches_eager_and_passes_the_audit(name, dtype, batches):
    spec, batch = batches["twelve_body"]
    batch = to(batch, dtype=dtype)
    eager = _small(name, spec).to(dtype).eval()
    compiled = compile_model(eager, fallback=False)
    report = audit(compiled, batch, dtype=dtype, trials=1)  # compiles a copy, in inference mode
    assert report.passed, str(report)
    with torch.no_grad():
        _close(compiled(batch)[spec.target], eager(batch)[spec.target], dtype)
    assert compiled.compiled, compiled.fallback_reason


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models(peers=False))
def test_compiled_training_step_matches_eager(name, batches):
    """Forward and backward compiled (one joint graph) against eager, from the same weights."""
    spec, batch = batches["twelve_body"]
    batch = to(batch, dtype=torch.float32)
    eager = _small(name, spec)
    params = {n: p for n, p in eager.named_parameters() if p.requires_grad}
    if not params:
        pytest.skip(f"{name} has no trainable parameters")
    compiled = compile_model(copy.deepcopy(eager), fallback=False)
    outs = {}
    for label, model in (("eager", eager), ("compiled", compiled)):
        out = model(batch)[spec.target]
        out.pow(2).mean().backward()
        outs[label] = out.detach()
    _close(outs["compiled"], outs["eager"], torch.float32)
    compiled_params = dict(compiled.model.named_parameters())
    for n, p in params.items():
        _close(compiled_params[n].grad, p.grad, torch.float32)


class _Unbreakable(IrrepsModel):
    """Reads a value on the host in its forward: a graph break, so fullgraph compilation fails."""

    def __init__(self):
        super().__init__({K.POS: "1o"}, {K.DISPLACEMENT: "1o"}, symmetry="none")
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, data):
        pos = data[K.POS]
        if float(pos.abs().sum()) > 0:  # data-dependent Python branch
            return {K.DISPLACEMENT: self.scale * pos}
        return {K.DISPLACEMENT: pos}


def test_a_model_that_cannot_compile_falls_back_to_eager_with_a_warning():
    model = _Unbreakable()
    data = {K.POS: torch.randn(5, 3)}
    compiled = compile_model(model)
    with pytest.warns(CompilationFallbackWarning, match="runs eagerly"):
        out = compiled(data)
    torch.testing.assert_close(out[K.DISPLACEMENT], model(data)[K.DISPLACEMENT])
    assert not compiled.compiled and compiled.fallback_reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, then quietly eager
        compiled(data)
    # fullgraph compilation raises dynamo's own error types, which vary across torch releases
    with pytest.raises(Exception):  # noqa: B017
        compile_model(_Unbreakable(), fallback=False)(data)


def test_compiled_model_shares_parameters_and_state_dict_of_the_eager_one():
    spec = task_spec("twelve_body", history=2)
    model = build_model("radial-field", spec, hidden=8, layers=1)
    compiled = compile_model(model)
    assert isinstance(compiled, CompiledModel) and compiled.symmetry == model.symmetry
    assert {n: p.data_ptr() for n, p in compiled.model.named_parameters()} == {
        n: p.data_ptr() for n, p in model.named_parameters()
    }
    assert set(compiled.state_dict()) == {f"model.{k}" for k in model.state_dict()}
    with pytest.raises(TypeError, match="compiled already"):
        compile_model(compiled)
    with pytest.raises(TypeError, match="IrrepsModel"):
        compile_model(torch.nn.Linear(3, 3))


def test_many_models_of_one_class_compile_past_dynamo_default_recompile_limit(batches):
    """egnn, egnn-vel and radial-field share CoordinateModel.forward; a suite compiles it per model and size.

    Dynamo's default allows 8 compilations of one code object; fullgraph=True would make the ninth an error.
    """
    spec, batch = batches["twelve_body"]
    batch = to(batch, dtype=torch.float32)
    for name in ("egnn", "egnn-vel", "radial-field"):
        for layers in (1, 2):
            for hidden in (4, 8):
                torch.manual_seed(0)
                compiled = compile_model(build_model(name, spec, hidden=hidden, layers=layers), fallback=False)
                compiled(batch)  # a recompile-limit error would raise here
                assert compiled.compiled
