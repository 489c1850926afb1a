import pytest
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from e3nn.util.test import equivariance_error
from toy_modules import BrokenPermutation, BrokenReflection, BrokenRotation, BrokenTranslation, PairForce, random_batch

from irrepnet import keys as K
from irrepnet.equivariance import CHECKS, TensorModule, audit, audit_all
from irrepnet.interface import Symmetry

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_equivariant_module_passes_every_check(dtype):
    torch.manual_seed(0)
    report = audit(PairForce(), random_batch(), dtype=dtype)
    assert report.passed, str(report)
    assert [c.check for c in report.checks] == list(CHECKS)
    assert all(c.claimed and c.passed for c in report.checks)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "module, broken",
    [
        (BrokenRotation, {"rotation", "reflection"}),
        (BrokenReflection, {"reflection"}),
        (BrokenTranslation, {"translation"}),
        (BrokenPermutation, {"permutation"}),
    ],
)
def test_broken_module_fails_exactly_what_it_breaks(module, broken, dtype):
    torch.manual_seed(0)
    report = audit(module(), random_batch(), dtype=dtype)
    assert not report.passed
    for c in report.checks:
        assert c.passed is (c.check not in broken), str(report)
        if c.check in broken:
            assert c.rel_error > 1e3 * c.tolerance  # a real break is far above the noise


def test_unclaimed_symmetry_is_reported_not_judged():
    m = BrokenRotation()
    m.symmetry = Symmetry.NONE
    report = audit(m, random_batch())
    assert report.passed
    assert report["rotation"].passed is None and report["rotation"].rel_error > 1e-3
    assert report["permutation"].passed is True  # still claimed: permutation_equivariant defaults to True


def test_audit_does_not_modify_the_module():
    m = PairForce()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    audit(m, random_batch(dtype=torch.float32), dtype=torch.float64)
    assert all(v.dtype == torch.float32 and torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_permutation_keeps_nodes_in_their_graph():
    from irrepnet.equivariance import _permutation

    data = random_batch(sizes=(3, 0, 4, 2))
    perm = _permutation(data, torch.Generator().manual_seed(0))
    assert torch.equal(data[K.BATCH][perm], data[K.BATCH])
    assert sorted(perm.tolist()) == list(range(9))


def test_edge_index_is_relabelled_under_permutation():
    # A module reading a precomputed graph: edges must follow their nodes.
    class EdgeSum(PairForce):
        def __init__(self):
            super().__init__()
            self.irreps_in = {K.POS: o3.Irreps("1o"), K.EDGE_INDEX: None}
            self.irreps_out = {K.DISPLACEMENT: o3.Irreps("1o")}

        def forward(self, data):
            j, i = data[K.EDGE_INDEX]
            rel = data[K.POS][i] - data[K.POS][j]
            return {K.DISPLACEMENT: torch.zeros_like(data[K.POS]).index_add_(0, i, rel * rel.norm(dim=1, keepdim=True))}

    data = random_batch(sizes=(5,))
    data[K.EDGE_INDEX] = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])
    assert audit(EdgeSum(), data).passed


@pytest.mark.parametrize("dtype", DTYPES)
def test_e3nn_modules_pass_through_the_adapter(dtype):
    gate = e3nn_nn.Gate("4x0e", [torch.tanh], "2x0e", [torch.sigmoid], "1x1o + 1x2e")
    seq = torch.nn.Sequential(o3.Linear("3x0e + 2x1o + 1x2e", gate.irreps_in), gate)
    m = TensorModule(seq, irreps_in="3x0e + 2x1o + 1x2e", irreps_out=gate.irreps_out)
    x = m.irreps_in["x"].randn(20, -1)
    for report in audit_all(m, {"x": x}):
        assert report.passed, str(report)


def _e3nn_comparison(func_module, irreps_in, irreps_out, seed):
    """e3nn's error and ours for the same two matrices (e3nn draws R, then a fresh R times -1)."""
    x = irreps_in.randn(16, -1, dtype=torch.float64)
    torch.manual_seed(seed)
    theirs = equivariance_error(
        func_module, [x], [irreps_in], [irreps_out], ntrials=1, do_parity=True, do_translation=False
    )
    torch.manual_seed(seed)
    R0 = o3.rand_matrix(dtype=torch.float64)
    R1 = -o3.rand_matrix(dtype=torch.float64)
    m = TensorModule(func_module, irreps_in, irreps_out)
    ours_rot = audit(m, {"x": x}, checks=["rotation"], rotations=[R0], trials=1)["rotation"].abs_error
    ours_ref = audit(m, {"x": x}, checks=["reflection"], rotations=[R1], trials=1)["reflection"].abs_error
    return float(theirs[(0, False)].max()), float(theirs[(1, False)].max()), ours_rot, ours_ref


def test_agrees_with_e3nn_equivariance_error():
    irreps_in, irreps_out = o3.Irreps("2x0e + 2x1o + 1x2e"), o3.Irreps("3x0e + 2x1o + 1x2e")
    # Equivariant: both tools see only round-off (e3nn's own D is accurate to ~1e-6).
    lin = o3.Linear(irreps_in, irreps_out).double()
    t_rot, t_ref, o_rot, o_ref = _e3nn_comparison(lin, irreps_in, irreps_out, seed=5)
    assert max(t_rot, t_ref) < 1e-4 and max(o_rot, o_ref) < 1e-12

    # Broken (declares a pseudovector 1e output as 1o): both tools see the same error.
    class Pseudo(torch.nn.Module):
        def forward(self, x):
            return torch.cat(
                [x[:, :2], x[:, 2:3] * 0 + 1, torch.cross(x[:, 2:5], x[:, 5:8], dim=1), x[:, 5:8], x[:, 8:13]], dim=1
            )

    t_rot, t_ref, o_rot, o_ref = _e3nn_comparison(Pseudo(), irreps_in, irreps_out, seed=7)
    assert t_rot < 1e-4 and o_rot < 1e-12  # rotation is fine
    assert t_ref > 0.1 and o_ref == pytest.approx(t_ref, rel=1e-4)


def test_bad_audit_input_gives_clear_errors():
    with pytest.raises(ValueError, match="unknown audit checks"):
        audit(PairForce(), random_batch(), checks=["rotaton"])
    with pytest.raises(TypeError, match="no irreps_in dict"):
        audit(torch.nn.Linear(3, 3), random_batch())
    data = random_batch()
    del data[K.VEL]
    with pytest.raises(KeyError, match="lacks fields \\['vel'\\]"):
        audit(PairForce(), data)
    with pytest.raises(ValueError, match="no tolerance"):
        audit(PairForce(), random_batch(), dtype=torch.float16)
