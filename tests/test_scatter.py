import pytest
import torch

from irrepnet import scatter
from irrepnet.scatter import segment_max, segment_mean, segment_softmax, segment_sum

BACKENDS = ["torch", "torch_scatter"]


def needs(backend):
    if backend == "torch_scatter":
        pytest.importorskip("torch_scatter", reason="torch-scatter not installed (pip install torch-scatter)")


def reference(src, index, dim_size, reduce):
    """One segment at a time, with torch's own reductions."""
    out = src.new_zeros((dim_size,) + src.shape[1:])
    for s in range(dim_size):
        rows = src[index == s]
        if rows.shape[0]:
            out[s] = {"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.max(0).values}[reduce]
    return out


def case(trailing=(), dim_size=6, e=20, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(0, dim_size, (e,), generator=g)
    index[index == 2] = 3  # segment 2 stays empty, so does the last one
    index[index == dim_size - 1] = 0
    src = torch.randn((e,) + trailing, generator=g, dtype=dtype)
    return src, index, dim_size


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("trailing", [(), (4,), (2, 3)])
@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_segment_reductions_match_reference(backend, trailing, reduce):
    needs(backend)
    src, index, dim_size = case(trailing)
    fn = {"sum": segment_sum, "mean": segment_mean, "max": segment_max}[reduce]
    out = fn(src, index, dim_size, backend=backend)
    assert out.shape == (dim_size,) + trailing
    torch.testing.assert_close(out, reference(src, index, dim_size, reduce))
    assert torch.all(out[2] == 0) and torch.all(out[-1] == 0)  # empty segments: 0, not NaN


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_rows_at_all(backend):
    needs(backend)
    src, index = torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)
    for fn in (segment_sum, segment_mean, segment_max):
        assert torch.equal(fn(src, index, 4, backend=backend), torch.zeros(4, 3))
    assert segment_softmax(src, index, 4, backend=backend).shape == (0, 3)


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "softmax"])
def test_backends_agree_in_value_and_gradient(reduce):
    pytest.importorskip("torch_scatter", reason="torch-scatter not installed")
    fn = {"sum": segment_sum, "mean": segment_mean, "max": segment_max, "softmax": segment_softmax}[reduce]
    results = []
    for backend in BACKENDS:
        src, index, dim_size = case((3,), e=50)  # continuous values: no ties for max
        src.requires_grad_(True)
        out = fn(src, index, dim_size, backend=backend)
        (grad,) = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), src)
        results.append((out.detach(), grad))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


@pytest.mark.parametrize("reduce", [segment_sum, segment_mean, segment_max, segment_softmax])
def test_gradcheck_torch_backend(reduce):
    src, index, dim_size = case((2,), e=12)
    src.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: reduce(s, index, dim_size, backend="torch"), (src,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_is_a_stable_segment_softmax(backend):
    needs(backend)
    src, index, dim_size = case((2,), e=30)
    logits = src * 1000 + 5000  # exp would overflow without the max shift
    out = segment_softmax(logits, index, dim_size, backend=backend)
    assert torch.isfinite(out).all()
    for s in range(dim_size):
        rows = index == s
        if rows.any():
            torch.testing.assert_close(out[rows], torch.softmax(logits[rows], dim=0))
    sums = segment_sum(out, index, dim_size, backend="torch")
    nonempty = torch.bincount(index, minlength=dim_size) > 0
    torch.testing.assert_close(sums[nonempty], torch.ones_like(sums[nonempty]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_of_fully_masked_segment_is_zero(backend):
    needs(backend)
    logits = torch.tensor([0.5, float("-inf"), float("-inf"), 1.0], requires_grad=True)
    index = torch.tensor([0, 1, 1, 0])
    out = segment_softmax(logits, index, 3, backend=backend)
    assert out[1:3].tolist() == [0.0, 0.0]
    torch.testing.assert_close(out[[0, 3]].sum(), torch.tensor(1.0))
    out.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_bad_inputs_give_clear_errors():
    src = torch.randn(5, 2)
    with pytest.raises(ValueError, match="1-D long tensor"):
        segment_sum(src, torch.zeros(5, dtype=torch.int32), 3)
    with pytest.raises(ValueError, match="must match along dim 0"):
        segment_sum(src, torch.zeros(4, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        segment_sum(src, torch.tensor([0, 1, 2, 3, 0]), 3)
    with pytest.raises(ValueError, match="unknown scatter backend 'cuda_magic'"):
        segment_sum(src, torch.zeros(5, dtype=torch.long), 3, backend="cuda_magic")


def test_auto_uses_torch_on_cpu_and_torch_scatter_on_accelerators(monkeypatch):
    monkeypatch.setattr(scatter, "_torch_scatter", lambda: object())
    assert scatter.resolve_backend("auto", torch.device("cpu")) == "torch"
    assert scatter.resolve_backend("auto", torch.device("cuda")) == "torch_scatter"
    monkeypatch.setattr(scatter, "_torch_scatter", lambda: None)
    assert scatter.resolve_backend("auto", torch.device("cuda")) == "torch"


def test_missing_torch_scatter_says_how_to_install(monkeypatch):
    monkeypatch.setattr(scatter, "_torch_scatter", lambda: None)
    with pytest.raises(ImportError, match="pip install --no-build-isolation torch-scatter"):
        segment_sum(torch.ones(2), torch.zeros(2, dtype=torch.long), 1, backend="torch_scatter")
    assert scatter.resolve_backend("auto") == "torch"
    assert scatter.available_backends() == ("torch",)


def test_default_backend_from_setter_and_environment(monkeypatch):
    monkeypatch.delenv(scatter.ENV_VAR, raising=False)
    monkeypatch.setattr(scatter, "_default_backend", None)
    assert scatter.get_default_backend() == "auto"
    monkeypatch.setenv(scatter.ENV_VAR, "torch")
    assert scatter.resolve_backend() == "torch"
    monkeypatch.setenv(scatter.ENV_VAR, "nope")
    with pytest.raises(ValueError, match=r"from \$IRREPNET_SCATTER_BACKEND"):
        scatter.resolve_backend()
    scatter.set_default_backend("torch")  # the setter wins over the environment
    assert scatter.resolve_backend() == "torch"
    scatter.set_default_backend(None)
    with pytest.raises(ValueError, match="unknown scatter backend"):
        scatter.set_default_backend("fast")
