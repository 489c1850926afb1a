"""Tensor-product family models: tfn config, the e3nn reference wrapper, the polynomial model."""

import copy
import importlib
import sys

import pytest
import torch
from toy_modules import random_batch

from irrepnet import keys as K
from irrepnet.equivariance import audit
from irrepnet.models import e3nn_models
from irrepnet.models.tfn import TensorFieldNetwork, reference_config
from irrepnet.nn import TensorProductConv
from irrepnet.registry import ConfigError, build_model
from irrepnet.tasks import task_spec

TWELVE = task_spec("twelve_body", history=2)
# building gate_points_2101 at full size takes seconds (e3nn generates code per tensor
# product); tests that do not check the configuration itself use this small one
SMALL_REFERENCE = dict(irreps_hidden="4x0e + 4x0o + 2x1e + 2x1o", layers=2, lmax=2, radial_neurons=16)


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return build_model("e3nn-reference", TWELVE)


def polymer_batch(dtype=torch.float64, frames=3, history=2):
    """Frames of a small compact chain: 12 beads a unit apart, with velocity history."""
    gen = torch.Generator().manual_seed(0)
    steps = torch.randn(frames, 12, 3, generator=gen, dtype=dtype)
    steps[..., 2] = 0  # the polymer is planar, as in the task
    pos = torch.cumsum(steps / steps.norm(dim=-1, keepdim=True), dim=1).reshape(-1, 3) * 0.8
    vel_history = 0.01 * torch.randn(frames * 12, 3 * history, generator=gen, dtype=dtype)
    return {
        K.POS: pos,
        K.VEL: vel_history[:, :3],
        K.VEL_HISTORY: vel_history,
        K.NODE_INDEX: torch.arange(12).repeat(frames),
        K.BATCH: torch.arange(frames).repeat_interleave(12),
        K.NUM_NODES: torch.full((frames,), 12),
    }


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hidden_irreps": "16x0e + 8x1e + 4x2e"}, "no 1o channel"),
        ({"hidden_irreps": "8x0e + 8xx1o"}, "invalid hidden_irreps"),
        ({"lmax": 0}, "lmax"),
        ({"layers": 0}, "layers"),
        ({"graph": "knn"}, "graph"),
        ({"basis": "chebyshev"}, "basis"),
        ({"normalization": "max"}, "normalization"),
        ({"skip": "dense"}, "skip"),
        ({"r_max": -1.0}, "r_max"),
        ({"head": "mlp"}, "head"),
    ],
)
def test_tfn_config_errors_are_clear(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_model("tfn", TWELVE, **overrides)


def test_tfn_structure_and_task_defaults():
    model = build_model("tfn", TWELVE, reference_config())
    assert isinstance(model, TensorFieldNetwork)
    convs = [m for m in model.modules() if isinstance(m, TensorProductConv)]
    assert len(convs) == 3 and all(c.avg_num_neighbors == 11.0 for c in convs)  # measured on the task
    assert model.r_max == 3.5
    assert set(model.irreps_in) == {K.POS, K.VEL_HISTORY}
    nbody = build_model("tfn", task_spec("nbody"))
    # 2.5 fitted lengths (irrepnet.train.length): 10.4 in nbody's unit, the 10 of before
    assert nbody.r_max == 2.5 and nbody.avg_num_neighbors == 3.99
    assert set(nbody.irreps_in) == {K.POS, K.VEL, K.CHARGE}
    mean = build_model("tfn", TWELVE, normalization="mean", layers=1)
    assert mean.avg_num_neighbors == 11.0 and mean(polymer_batch())[K.DISPLACEMENT].shape == (36, 3)
    conv_head = build_model("tfn", TWELVE, layers=1, head="conv")
    last = [m for m in conv_head.modules() if isinstance(m, TensorProductConv)][-1]
    assert str(last.irreps_out[K.NODE_FEATURES]) == "1x1o"


def test_tfn_takes_float64_batches_in_a_float32_model():
    model = build_model("tfn", TWELVE, layers=1)
    out = model(polymer_batch(torch.float64))[K.DISPLACEMENT]
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def lattice_batch(frames=3):
    """Chains on a half-integer lattice: every squared distance is exact, so e3nn's cdist graph is too."""
    gen = torch.Generator().manual_seed(0)
    batch = polymer_batch(frames=frames)
    steps = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]], dtype=torch.float64)
    choice = torch.randint(0, 2, (frames, 12), generator=gen)  # monotone walks never revisit a site
    batch[K.POS] = torch.cumsum(steps[choice], dim=1).reshape(-1, 3)
    return batch


def test_reference_wrapper_equals_calling_the_network_directly():
    torch.manual_seed(0)
    model = build_model("e3nn-reference", TWELVE, **SMALL_REFERENCE).double()
    batch = lattice_batch()
    naive = e3nn_models.load_gate_points().radius_graph(batch[K.POS], 3.5, batch[K.BATCH])
    assert bool((naive[0] != naive[1]).all())  # the lattice leaves no spurious self-loops
    inp = model.network_input(batch)
    assert set(inp) == {"pos", "x", "batch"} and inp["x"].shape == (36, 1 + 6)  # 1x0e + 2x1o
    direct = model.network(inp)  # gate_points_2101.Network.forward, its own radius graph
    torch.testing.assert_close(model(batch)[K.DISPLACEMENT], direct, rtol=1e-10, atol=1e-12)
    own_graph = build_model("e3nn-reference", TWELVE, graph="e3nn", **SMALL_REFERENCE).double()
    own_graph.load_state_dict(model.state_dict())
    assert torch.equal(own_graph(batch)[K.DISPLACEMENT], direct)


def test_e3nn_cdist_graph_has_spurious_self_loops():
    # why the wrapper passes irrepnet's graph: cdist's matmul formula leaves nodes at a
    # distance ~1e-7 from themselves even in float64, which passes its `r > 0` test
    batch = polymer_batch()
    naive = e3nn_models.load_gate_points().radius_graph(batch[K.POS], 3.5, batch[K.BATCH])
    exact = e3nn_models.radius_graph(batch[K.POS], 3.5, batch[K.BATCH])
    assert int((naive[0] == naive[1]).sum()) > 0 and int((exact[0] == exact[1]).sum()) == 0


def test_reference_config_follows_the_write_up(reference):
    net = reference.network
    assert (net.max_radius, net.number_of_basis, net.num_neighbors, net.num_nodes) == (3.5, 10, 11.0, 12.0)
    assert str(net.irreps_hidden) == "8x0e+8x0o+16x1e+16x1o+8x2e+8x2o" and str(net.irreps_out) == "1x1o"
    assert str(net.irreps_edge_attr) == "1x0e+1x1o+1x2e+1x3o" and len(net.layers) == 4  # 3 gated + output
    assert net.reduce_output is False and str(net.irreps_in) == "1x0e+2x1o"
    no_history = build_model("e3nn-reference", task_spec("twelve_body"), **SMALL_REFERENCE)
    assert str(no_history.network.irreps_in) == "1x0e"


def test_reference_works_without_torch_cluster(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_cluster", None)  # `import torch_cluster` now raises ImportError
    monkeypatch.delitem(sys.modules, e3nn_models._GATE_POINTS, raising=False)
    module = e3nn_models.load_gate_points()
    assert module is importlib.import_module(e3nn_models._GATE_POINTS)
    out = build_model("e3nn-reference", TWELVE, **SMALL_REFERENCE)(polymer_batch(torch.float32))[K.DISPLACEMENT]
    assert out.shape == (36, 3) and torch.isfinite(out).all()
    assert sys.modules["torch_cluster"] is None  # nothing was left behind


def test_stand_ins_for_old_e3nn_match_irrepnet():
    stand_ins = e3nn_models._stand_ins()
    data = random_batch(sizes=(4, 5), dtype=torch.float64)
    edges = stand_ins["torch_cluster"].radius_graph(data[K.POS], 1.5, data[K.BATCH])
    assert edges.shape[0] == 2 and bool((edges[0] != edges[1]).all())
    src = torch.randn(edges.shape[1], 2, dtype=torch.float64)
    summed = stand_ins["torch_scatter"].scatter(src, edges[1], dim=0, dim_size=9)
    torch.testing.assert_close(summed, torch.zeros(9, 2, dtype=torch.float64).index_add_(0, edges[1], src))


@pytest.mark.parametrize("name", ["e3nn-reference", "e3nn-polynomial"])
def test_deep_copies_keep_exact_coupling_constants(name, reference):
    # the audit deep-copies a float32 model and casts it to float64; at full size e3nn's
    # pickled code folds float32-rounded Wigner-3j constants into anonymous tensors
    # (rotation error ~4e-8 without the rebuild in _ExactConstants.__deepcopy__)
    torch.manual_seed(0)
    model = reference if name == "e3nn-reference" else build_model(name, TWELVE)
    clone = copy.deepcopy(model)
    batch = polymer_batch(torch.float32)
    torch.testing.assert_close(clone(batch)[K.DISPLACEMENT], model(batch)[K.DISPLACEMENT])
    report = audit(model, polymer_batch(), dtype=torch.float64, checks=("rotation",), trials=1)
    assert report.passed, str(report)


def test_polynomial_model_has_no_radial_part():
    model = build_model("e3nn-polynomial", TWELVE)
    assert not any("radial" in name or "fc" in name for name, _ in model.named_modules())
    # without positions' scale entering any learned function, doubling every relative
    # position with zero velocities changes the output by a polynomial factor, not a cutoff
    batch = polymer_batch()
    batch[K.VEL_HISTORY] = torch.zeros_like(batch[K.VEL_HISTORY])
    far = dict(batch, **{K.POS: 10.0 * batch[K.POS]})
    assert model(far)[K.DISPLACEMENT].abs().max() > model(batch)[K.DISPLACEMENT].abs().max()
    with pytest.raises(ConfigError, match="lmax"):
        build_model("e3nn-polynomial", TWELVE, lmax=0)


@pytest.mark.parametrize("name", ["tfn", "se3-transformer"])
def test_auto_graph_is_the_full_graph_and_computes_what_the_radius_graph_does(name):
    """Messages vanish at the cutoff, so the full graph of a small system gives the radius graph's numbers."""
    from irrepnet.graph import build_graph
    from irrepnet.nn.graph_layer import GraphConstruction
    from irrepnet.registry import build_model

    models = {}
    for graph in ("auto", "radius"):
        torch.manual_seed(0)
        models[graph] = build_model(name, TWELVE, graph=graph).double()
    kinds = {
        g: next(m for m in model.modules() if isinstance(m, GraphConstruction)).kind for g, model in models.items()
    }
    assert kinds == {"auto": "full", "radius": "radius"}
    batch = polymer_batch()
    batch[K.POS] = batch[K.POS] * 1.6  # spread the chains so that some pairs are beyond the cutoff
    assert build_graph(batch, "radius", r=3.5)[K.EDGE_INDEX].shape[1] < 3 * 12 * 11
    torch.testing.assert_close(
        models["auto"](batch)[K.DISPLACEMENT], models["radius"](batch)[K.DISPLACEMENT], rtol=1e-9, atol=1e-12
    )
