"""SymmetricContraction (MACE's product basis): basis, equivariance, evaluation, backends.

References that do not share the code under test: the number of paths per order and output
irrep against the multiplicity of that irrep in the symmetric power of the input (characters
of O(3), a quadrature over the rotation angle); the monomial evaluation against a direct
Horner evaluation of the tensors (MACE's order); the own backend against cuEquivariance's
(skipped without cuequivariance_torch), with a meta-test that a wrong weight map fails.
"""

import contextlib
import copy
import sys

import numpy as np
import pytest
import torch
from e3nn import o3

from irrepnet.nn import SymmetricContraction, copy_contraction_weights
from irrepnet.nn.symmetric_basis import symmetric_coupling_basis
from irrepnet.nn.symmetric_contraction import resolve_backend
from irrepnet.optional import MissingDependencyError

TOL = {torch.float32: 1e-5, torch.float64: 1e-11}  # relative to the largest output component


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def inputs(sc, n=7, seed=0, dtype=torch.float32, one_hot=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, sc.irreps_in.dim, generator=g, dtype=dtype)
    if one_hot:
        attrs = torch.nn.functional.one_hot(torch.randint(0, sc.num_elements, (n,), generator=g), sc.num_elements)
        return x, attrs.to(dtype)
    return x, torch.randn(n, sc.num_elements, generator=g, dtype=dtype)


def d_matrices(irreps_in, irreps_out, parity, seed=0):
    # e3nn builds its Wigner D from generators in the default dtype: float64 throughout
    with default_dtype(torch.float64):
        torch.manual_seed(seed)
        rot = o3.rand_matrix() * (-1 if parity else 1)
        return o3.Irreps(irreps_in).D_from_matrix(rot), o3.Irreps(irreps_out).D_from_matrix(rot)


# ---- the basis -----------------------------------------------------------------------------


def _char(irreps, theta, improper):
    """Character of ``irreps`` at the rotation by ``theta`` (times the inversion if ``improper``)."""
    chi = np.zeros_like(theta)
    for _, ir in o3.Irreps(irreps):
        chi_l = 1 + 2 * sum(np.cos(m * theta) for m in range(1, ir.l + 1))
        chi += (ir.p if improper else 1) * chi_l
    return chi


def multiplicity_in_symmetric_power(irreps, ir_out, nu):
    """How often ``ir_out`` occurs in Sym^nu(irreps), from characters (Weyl's integration formula)."""
    theta = np.linspace(0, np.pi, 513)
    ir_out = o3.Irrep(ir_out)
    total = 0.0
    for improper in (False, True):
        c = [None] + [_char(irreps, k * theta, improper and k % 2 == 1) for k in (1, 2, 3)]
        sym = {1: c[1], 2: (c[1] ** 2 + c[2]) / 2, 3: (c[1] ** 3 + 3 * c[1] * c[2] + 2 * c[3]) / 6}[nu]
        chi_out = _char(str(ir_out), theta, improper)
        # Haar measure of SO(3) over the angle: (1 - cos theta) / pi; the trapezoid rule is exact here
        f = sym * chi_out * (1 - np.cos(theta)) / np.pi
        total += (f[:-1] + f[1:]).sum() / 2 * (theta[1] - theta[0])  # trapezoid (np.trapezoid needs numpy 2)
    return total / 2


@pytest.mark.parametrize(
    "irreps, nus", [("0e+1o", (1, 2, 3)), ("0e+1o+2e", (1, 2, 3)), ("0e+1o+2e+3o", (1, 2, 3)), ("0e+1o+1e", (2, 3))]
)
def test_path_counts_equal_the_multiplicity_in_the_symmetric_power(irreps, nus):
    for nu in nus:
        for ir_out in ("0e", "0o", "1o", "1e", "2e"):
            expected = multiplicity_in_symmetric_power(irreps, ir_out, nu)
            assert abs(expected - round(expected)) < 1e-9
            assert len(symmetric_coupling_basis(irreps, ir_out, nu)) == round(expected), (irreps, ir_out, nu)


@pytest.mark.parametrize("nu", [1, 2, 3])
def test_basis_is_equivariant_symmetric_and_orthogonal(nu):
    irreps = "0e+1o+2e+3o"
    for ir_out in ("0e", "1o"):
        u = symmetric_coupling_basis(irreps, ir_out, nu)
        d_in, d_out = d_matrices(irreps, ir_out, parity=True, seed=nu)
        rotated = u
        for _ in range(nu):  # each contraction moves the rotated axis last: nu of them restore the order
            rotated = torch.tensordot(rotated, d_in, dims=([2], [0]))
        assert (rotated - torch.einsum("NM,kM...->kN...", d_out, u)).abs().max() < 1e-12
        if nu > 1:
            assert (u - u.transpose(2, 3)).abs().max() < 1e-14
        gram = torch.einsum("k...,j...->kj", u, u)
        assert torch.allclose(gram, o3.Irrep(ir_out).dim * torch.eye(len(u), dtype=torch.float64), atol=1e-12)


# ---- the layer -------------------------------------------------------------------------------


def horner_reference(sc, x, attrs):
    """MACE's evaluation order from the tensors: weighted top tensor, contract, add the next, ..."""
    n, ch = x.shape[0], sc.channels
    xs = torch.cat([x[:, s].reshape(n, ch, ir.dim) for s, (_, ir) in zip(sc.irreps_in.slices(), sc.irreps_in)], -1)
    single = str(o3.Irreps([(1, ir) for _, ir in sc.irreps_in]))
    w = torch.einsum("ne,ekc->nkc", attrs, sc.weight_matrix().to(x.dtype))
    order_start = [sum(sc.num_paths[:i]) for i in range(sc.correlation)]
    outs = []
    for i, (_, ir) in enumerate(sc.irreps_out):

        def weighted(nu, i=i, ir=ir):
            u = symmetric_coupling_basis(single, str(ir), nu).to(x.dtype)
            before = list(sc.irreps_out)[:i]  # paths of the earlier output irreps come first
            start = order_start[nu - 1] + sum(len(symmetric_coupling_basis(single, str(o), nu)) for _, o in before)
            return torch.einsum("kM...,nkc->ncM...", u, w[:, start : start + len(u)])

        acc = weighted(sc.correlation)
        for nu in range(sc.correlation - 1, -1, -1):
            acc = torch.einsum("ncM...z,ncz->ncM...", acc, xs)
            if nu > 0:
                acc = acc + weighted(nu)
        outs.append(acc.reshape(n, ch * ir.dim))
    return torch.cat(outs, -1)


CASES = [
    ("4x0e+4x1o", "4x0e+4x1o", 1),
    ("4x0e+4x1o", "4x0e+4x1o+4x2e", 2),
    ("3x0e+3x1o+3x2e", "3x0e+3x1o", 3),
    ("2x0e+2x1o+2x2e+2x3o", "2x0e+2x1o+2x2e", 3),
]


@pytest.mark.parametrize("irreps_in, irreps_out, correlation", CASES)
def test_equals_a_direct_horner_evaluation(irreps_in, irreps_out, correlation):
    with default_dtype(torch.float64):
        sc = SymmetricContraction(irreps_in, irreps_out, correlation, 3, backend="e3nn")
        x, attrs = inputs(sc, dtype=torch.float64, one_hot=False)
        y = sc(x, attrs)
    assert y.shape == (7, o3.Irreps(irreps_out).dim)
    assert rel_err(y, horner_reference(sc, x, attrs)) < 1e-13


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("parity", [False, True])
@pytest.mark.parametrize("irreps_in, irreps_out, correlation", CASES)
def test_equivariant_under_rotations_and_parity(irreps_in, irreps_out, correlation, dtype, parity):
    with default_dtype(dtype):
        sc = SymmetricContraction(irreps_in, irreps_out, correlation, 3, backend="e3nn")
    x, attrs = inputs(sc, dtype=dtype, seed=1)
    d_in, d_out = (d.to(dtype) for d in d_matrices(irreps_in, irreps_out, parity, seed=2))
    y = sc(x, attrs)
    assert rel_err(sc(x @ d_in.T, attrs), y @ d_out.T) < TOL[dtype]


def test_double_after_a_float32_build_keeps_float64_coupling_tensors():
    sc = SymmetricContraction("3x0e+3x1o+3x2e", "3x0e+3x1o", 3, 2, backend="e3nn").double()
    x, attrs = inputs(sc, dtype=torch.float64)
    d_in, d_out = d_matrices(sc.irreps_in, sc.irreps_out, parity=True)
    assert rel_err(sc(x @ d_in.T, attrs), sc(x, attrs) @ d_out.T) < TOL[torch.float64]
    assert set(sc.state_dict()) == {"weights.0", "weights.1", "weights.2"}  # constants rebuild, not stored


def test_node_permutation_and_linearity_in_node_attrs():
    sc = SymmetricContraction("4x0e+4x1o+4x2e", "4x0e+4x1o", 3, 3, backend="e3nn")
    x, a = inputs(sc, n=9, one_hot=False)
    _, b = inputs(sc, n=9, seed=5, one_hot=False)
    perm = torch.randperm(9)
    y = sc(x, a)
    assert torch.allclose(sc(x[perm], a[perm]), y[perm])
    # weights are mixed linearly by node_attrs, so the output is linear in them
    assert rel_err(sc(x, 2 * a - b), 2 * y - sc(x, b)) < 1e-5


@pytest.mark.parametrize("correlation, paths", [(1, [2]), (2, [2, 7]), (3, [2, 7, 20])])
def test_output_irreps_shape_and_paths(correlation, paths):
    sc = SymmetricContraction("5x0e+5x1o+5x2e+5x3o", "5x0e+5x1o", correlation, 4, backend="e3nn")
    assert sc.irreps_out == o3.Irreps("5x0e+5x1o") and sc.irreps_in == o3.Irreps("5x0e+5x1o+5x2e+5x3o")
    assert sc.num_paths == paths  # 29 in all at correlation 3: the count MACE and cuEquivariance have
    assert [tuple(w.shape) for w in sc.weights] == [(4, k, 5) for k in paths]
    x, attrs = inputs(sc, n=6)
    assert sc(x, attrs).shape == (6, sc.irreps_out.dim)


def test_reset_parameters_draws_new_weights():
    sc = SymmetricContraction("8x0e+8x1o", "8x0e+8x1o", 3, 4, backend="e3nn")
    before = sc.weight_matrix().detach().clone()
    sc.reset_parameters()
    after = sc.weight_matrix().detach()
    assert not torch.equal(before, after) and after.shape == before.shape


def test_traces_in_one_graph():
    # dynamo alone (backend="eager"): fullgraph=True fails on any graph break
    sc = SymmetricContraction("2x0e+2x1o", "2x0e+2x1o", 2, 2, backend="e3nn")
    x, attrs = inputs(sc, n=5)
    compiled = torch.compile(sc, fullgraph=True, backend="eager")
    assert torch.allclose(compiled(x, attrs), sc(x, attrs), atol=1e-6)


def test_exports_with_a_dynamic_node_count():
    # models leave as torch.export packages: the layer must export with n symbolic
    sc = SymmetricContraction("2x0e+2x1o+2x2e", "2x0e+2x1o", 3, 3, backend="e3nn")
    n = torch.export.Dim("n", min=2)
    program = torch.export.export(sc, inputs(sc, n=5), dynamic_shapes=({0: n}, {0: n}))
    x, attrs = inputs(sc, n=9, seed=4)
    assert torch.allclose(program.module()(x, attrs), sc(x, attrs), atol=1e-6)


@pytest.mark.slow
def test_compiles_with_inductor():  # 16-35 s on the 2-core test machine
    sc = SymmetricContraction("2x0e+2x1o+2x2e", "2x0e+2x1o", 3, 2, backend="e3nn")
    x, attrs = inputs(sc, n=5)
    compiled = torch.compile(sc, fullgraph=True)
    assert torch.allclose(compiled(x, attrs), sc(x, attrs), atol=1e-5)


@pytest.mark.parametrize(
    "irreps_in, irreps_out, correlation, match",
    [
        ("4x0e+2x1o", "4x0e", 2, "same multiplicity"),
        ("4x0e+4x1o", "2x0e", 2, "same multiplicity"),
        ("4x0e", "4x0e+4x1o", 3, "1o cannot be reached"),
        ("4x0e+4x1o", "4x0o", 3, "0o cannot be reached"),
        ("4x0e+4x1o", "4x0e", 0, "correlation must be"),
        ("", "4x0e", 2, "non-empty"),
    ],
)
def test_bad_irreps_say_what_is_wrong(irreps_in, irreps_out, correlation, match):
    with pytest.raises(ValueError, match=match):
        SymmetricContraction(irreps_in, irreps_out, correlation, 2, backend="e3nn")


def test_bad_backend_and_shapes():
    with pytest.raises(ValueError, match="unknown symmetric contraction backend"):
        SymmetricContraction("2x0e", "2x0e", 2, 2, backend="mace")
    sc = SymmetricContraction("2x0e+2x1o", "2x0e", 2, 3, backend="e3nn")
    with pytest.raises(ValueError, match=r"node_attrs \(n, 3\)"):
        sc(torch.zeros(4, 8), torch.zeros(4, 2))


def test_cueq_backend_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cuequivariance", None)
    monkeypatch.setitem(sys.modules, "cuequivariance_torch", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'irrepnet\[cueq\]'"):
        SymmetricContraction("2x0e", "2x0e", 2, 2, backend="cueq")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_backend("auto") == "e3nn"  # CUDA but no cueq: the own backend


def test_auto_needs_cueqs_cuda_kernels_on_cuda(monkeypatch):
    pytest.importorskip("cuequivariance_torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "cuequivariance_ops_torch", None)
    assert resolve_backend("auto") == "e3nn"  # its CPU fallback on a GPU: not chosen


def test_auto_is_the_own_backend_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_backend("auto") == "e3nn"
    assert SymmetricContraction("2x0e", "2x0e", 2, 2).backend == "e3nn"


# ---- the two backends --------------------------------------------------------------------------

BACKEND_CASES = [
    ("4x0e+4x1o", "4x0e+4x1o", 1),  # lmax 1
    ("4x0e+4x1o", "4x0e+4x1o", 3),
    ("3x0e+3x1o+3x2e", "3x0e+3x1o+3x2e", 2),  # lmax 2
    ("2x0e+2x1o+2x2e+2x3o", "2x0e+2x1o", 1),  # lmax 3
    ("2x0e+2x1o+2x2e+2x3o", "2x0e+2x1o", 2),
    pytest.param("2x0e+2x1o+2x2e+2x3o", "2x0e+2x1o", 3, marks=pytest.mark.slow),  # cueq builds 80-130 s
]


@pytest.fixture(scope="module")
def pairs():
    pytest.importorskip("cuequivariance_torch")
    cache = {}

    def get(irreps_in, irreps_out, correlation):
        key = (irreps_in, irreps_out, correlation)
        if key not in cache:
            torch.manual_seed(0)
            own = SymmetricContraction(irreps_in, irreps_out, correlation, 3, backend="e3nn")
            cache[key] = own, SymmetricContraction(irreps_in, irreps_out, correlation, 3, backend="cueq")
        return cache[key]

    return get


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("irreps_in, irreps_out, correlation", BACKEND_CASES)
def test_backends_agree_on_the_same_weights(pairs, irreps_in, irreps_out, correlation, dtype):
    own, cueq = (copy.deepcopy(m).to(dtype) for m in pairs(irreps_in, irreps_out, correlation))
    copy_contraction_weights(own, cueq)  # in the test's dtype: a float32 copy would limit float64 to 1e-8
    assert cueq.weight_matrix().shape[1] == sum(own.num_paths)  # same number of weights per channel
    for one_hot in (True, False):
        x, attrs = inputs(own, n=11, dtype=dtype, seed=3, one_hot=one_hot)
        assert rel_err(cueq(x, attrs), own(x, attrs)) < {torch.float32: 1e-5, torch.float64: 1e-10}[dtype]
    # and back: cueq -> a fresh own module computes the same function again
    back = SymmetricContraction(irreps_in, irreps_out, correlation, 3, backend="e3nn").to(dtype)
    copy_contraction_weights(cueq, back)
    assert rel_err(back(x, attrs), own(x, attrs)) < {torch.float32: 1e-5, torch.float64: 1e-10}[dtype]


def test_meta_a_wrongly_mapped_weight_makes_the_backends_disagree(pairs):
    own, cueq = (copy.deepcopy(m).double() for m in pairs("3x0e+3x1o+3x2e", "3x0e+3x1o+3x2e", 2))
    copy_contraction_weights(own, cueq)
    x, attrs = inputs(own, dtype=torch.float64)
    assert rel_err(cueq(x, attrs), own(x, attrs)) < 1e-10
    w = cueq.weight_matrix().detach().clone()
    k = own.num_paths[0]  # swap two paths of order 2, as a map that mixed up the path order would
    w[:, [k, k + 1]] = w[:, [k + 1, k]]
    cueq.set_weight_matrix(w)
    assert rel_err(cueq(x, attrs), own(x, attrs)) > 1e-2


def test_cueq_wrapper_equals_cuequivariance_own_layer(pairs):
    cue = pytest.importorskip("cuequivariance")
    cuet = pytest.importorskip("cuequivariance_torch")
    own, ours = pairs("4x0e+4x1o", "4x0e+4x1o", 3)
    copy_contraction_weights(own, ours)
    theirs = cuet.SymmetricContraction(
        cue.Irreps("O3", "4x0e+4x1o"),
        cue.Irreps("O3", "4x0e+4x1o"),
        3,
        3,
        layout_in=cue.mul_ir,
        layout_out=cue.mul_ir,
        method="naive",
    )
    with torch.no_grad():
        theirs.weight.copy_(ours.weight_matrix())
    x, attrs = inputs(ours, n=9)
    assert rel_err(ours(x, attrs), theirs(x, attrs.argmax(dim=1).to(torch.int32))) < 1e-6


def test_copying_between_different_layers_is_refused(pairs):
    own, _ = pairs("4x0e+4x1o", "4x0e+4x1o", 1)
    other = SymmetricContraction("4x0e+4x1o", "4x0e+4x1o", 2, 3, backend="e3nn")
    with pytest.raises(ValueError, match="equal correlation"):
        copy_contraction_weights(own, other)
