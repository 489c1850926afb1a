"""Large graphs: edges in chunks give the same numbers, and every model takes graphs of different sizes."""

import pytest
import torch

from irrepnet import keys as K
from irrepnet.batch import collate
from irrepnet.interface import TaskSpec
from irrepnet.registry import ConfigError, build_model, list_models, unavailable_reason
from irrepnet.tasks import task_spec

_SPEC = task_spec("twelve_body", history=2)
VARIABLE = TaskSpec(_SPEC.name, _SPEC.inputs, _SPEC.target, num_nodes=None, extras=_SPEC.extras)  # any size


def _graph(n: int, seed: int, side: float = 4.0):
    g = torch.Generator().manual_seed(seed)
    # vel is the first block of vel_history, as in the trajectory datasets
    hist = 0.01 * torch.randn(n, 6, generator=g, dtype=torch.float64)
    return {
        K.POS: torch.rand(n, 3, generator=g, dtype=torch.float64) * side,
        K.VEL: hist[:, :3].clone(),
        K.VEL_HISTORY: hist,
        K.NODE_INDEX: torch.arange(n),
    }


@pytest.mark.parametrize(
    "name, config",
    [("tfn", {"graph": "radius", "r_max": 2.0}), ("se3-transformer", {"graph": "radius", "radius": 2.0})],
)
def test_edge_chunks_give_the_same_outputs_and_gradients(name, config):
    batch = collate([_graph(24, 0, side=3.0), _graph(15, 1, side=3.0)])
    torch.manual_seed(0)
    whole = build_model(name, VARIABLE, config).double()
    torch.manual_seed(0)
    chunked = build_model(name, VARIABLE, {**config, "edge_chunk": 29}).double()
    out_w, out_c = whole(batch)[K.DISPLACEMENT], chunked(batch)[K.DISPLACEMENT]
    torch.testing.assert_close(out_c, out_w, rtol=1e-10, atol=1e-12)
    out_w.pow(2).sum().backward()
    out_c.pow(2).sum().backward()
    for (pn, pw), (_, pc) in zip(whole.named_parameters(), chunked.named_parameters()):
        if pw.grad is not None:
            torch.testing.assert_close(pc.grad, pw.grad, rtol=1e-9, atol=1e-12, msg=pn)
    with pytest.raises(ConfigError, match="edge_chunk"):
        build_model(name, VARIABLE, {**config, "edge_chunk": 0})


@pytest.mark.parametrize("name", list_models())
def test_graphs_of_different_sizes_in_one_batch(name):
    if unavailable_reason(name):  # a peer without its package
        pytest.skip(unavailable_reason(name))
    try:
        model = build_model(name, VARIABLE).double().eval()
    except ConfigError as exc:  # mlp: a fixed node count
        assert "fixed node count" in str(exc)
        pytest.skip(str(exc))
    graphs = [_graph(n, seed) for seed, n in enumerate((3, 9, 1, 14))]
    whole = model(collate(graphs))[K.DISPLACEMENT]
    assert whole.shape == (27, 3)
    offset = 0
    for g in graphs:
        single = model(collate([g]))[K.DISPLACEMENT]
        torch.testing.assert_close(whole[offset : offset + len(g[K.POS])], single)
        offset += len(g[K.POS])
