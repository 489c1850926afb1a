"""MACE (irrepnet.models.mace, irrepnet.nn.mace_blocks): irreps, equivariance, body order, per-element weights.

The body-order test is the falsifiable one: with one interaction and a linear readout, the
energy of MACE with correlation order nu is a polynomial of degree nu in each atom's
neighbour sum A_i, so its cluster expansion stops at (nu + 1)-body terms. The
(nu + 2)-body term of inclusion-exclusion over the subsets of nu + 2 atoms is then 0 to
rounding, and the (nu + 1)-body term is not: each order of correlation adds exactly one body.
"""

import itertools

import pytest
import torch
from e3nn import o3
from test_conformance import make_batches

from irrepnet import keys as K
from irrepnet.batch import collate
from irrepnet.equivariance import audit
from irrepnet.models.mace import MACE, MACEConfig, paper_config
from irrepnet.nn.mace_blocks import ElementLinear, MACEInteraction, NodeEmbedding, hidden_irreps
from irrepnet.registry import ConfigError, build_model
from irrepnet.tasks import task_spec

#: small sizes: the code paths of the defaults, a few seconds per build on one core
SMALL = dict(channels=4, max_ell=2, radial_neurons=8, radial_layers=1, readout_mlp=4)
SPECIES = ("H", "C", "N", "O")


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    return make_batches(tmp_path_factory.mktemp("cache"))


def _mace(task_spec_, **overrides):
    torch.manual_seed(0)
    return build_model("mace", task_spec_, {**SMALL, **overrides})


def _backbone(model) -> MACE:
    return model.backbone if hasattr(model, "backbone") else model


def test_irreps_of_the_layers_and_outputs():
    spec = task_spec("nbody")
    model = _mace(spec, channels=4, max_ell=3, hidden_lmax=2, num_interactions=3)
    assert model.irreps_out == {K.DISPLACEMENT: o3.Irreps("1x1o")}
    layers = [m for m in model.chain.layers if isinstance(m, MACEInteraction)]
    assert len(layers) == 3
    # velocities enter h^(0) as 1o channels; the atomic basis has C channels of each degree of Y
    assert str(layers[0].irreps_in[K.NODE_FEATURES]) == "4x0e+4x1o"
    assert str(layers[0].irreps_a) == "4x0e+4x1o+4x2e+4x3o"
    assert layers[0].irreps_out[K.NODE_FEATURES] == hidden_irreps(4, 2) == o3.Irreps("4x0e+4x1o+4x2e")
    assert str(layers[2].irreps_out[K.NODE_FEATURES]) == "4x0e+4x1o"  # the last keeps what the head reads

    energy = _mace(task_spec("molecules", species=SPECIES))
    assert set(energy.irreps_out) == {K.ENERGY, K.FORCES}
    back = _backbone(energy)
    assert back.irreps_in[K.SPECIES_ONEHOT] == o3.Irreps("4x0e")
    last = [m for m in back.chain.layers if isinstance(m, MACEInteraction)][-1]
    assert str(last.irreps_out[K.NODE_FEATURES]) == "4x0e"  # only scalars reach an energy readout
    assert last.irreps_in[K.NODE_ATTRS] == o3.Irreps("4x0e")  # one weight set per element


@pytest.mark.parametrize("task", ["twelve_body", "nbody", "molecules"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_audit_passes_for_e3(batches, task, dtype):
    spec, batch = batches[task]
    model = _mace(spec)
    assert model.symmetry.value == "E(3)"
    report = audit(model, batch, dtype=dtype, trials=1)
    assert report.passed, str(report)
    if task == "molecules":  # energy and forces both audited
        assert {K.ENERGY, K.FORCES} <= set(model.irreps_out)


def _subset_energies(model, pos, kinds, size):
    """Energies of every non-empty subset of the first ``size`` atoms, one graph each: {subset: E}."""
    subsets = [s for k in range(1, size + 1) for s in itertools.combinations(range(size), k)]
    onehot = torch.nn.functional.one_hot(kinds, len(SPECIES)).double()
    samples = [{K.POS: pos[list(s)], K.SPECIES_ONEHOT: onehot[list(s)]} for s in subsets]
    energy = model(collate(samples))[K.ENERGY].detach()[:, 0]
    return dict(zip(subsets, energy.tolist()))


def _cluster_term(energies, size):
    """The ``size``-body term of inclusion-exclusion: sum over subsets S of (-1)^(size - |S|) E(S)."""
    return sum((-1) ** (size - len(s)) * e for s, e in energies.items() if len(s) <= size)


@pytest.mark.parametrize("nu", [1, 2, 3])
def test_correlation_order_nu_gives_exactly_nu_plus_one_body_terms(nu):
    spec = task_spec("molecules", species=SPECIES)
    # avg_num_neighbors=1: neighbour sums of order one, so that the highest power is not tiny
    model = _mace(spec, correlation=nu, num_interactions=1, readout_mlp=0, r_max=5.0, avg_num_neighbors=1.0)
    model = model.double().eval()
    gen = torch.Generator().manual_seed(nu)
    n = nu + 2
    # atoms 1.0-2.2 Å apart, all within the cutoff of each other
    pos = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    pos = pos / pos.norm(dim=1, keepdim=True) * (0.8 + 0.3 * torch.rand(n, 1, generator=gen, dtype=torch.float64))
    kinds = torch.randint(len(SPECIES), (n,), generator=gen)
    energies = _subset_energies(model, pos, kinds, n)
    scale = max(abs(e) for e in energies.values())
    top = _cluster_term(energies, n)  # (nu + 2)-body: absent
    below = _cluster_term({s: e for s, e in energies.items() if max(s) < n - 1}, n - 1)  # (nu + 1)-body
    # measured (float64, this seed): |top| <= 3.2e-16 of the scale; |below| 0.68, 0.016, 2.8e-3 of it for nu = 1, 2, 3
    assert abs(top) < 1e-12 * scale, f"nu={nu}: a {n}-body term of {top:.3e} (energies of order {scale:.2e})"
    assert abs(below) > 1e-5 * scale, f"nu={nu}: no {n - 1}-body term ({below:.3e}); the product basis is missing"


def test_a_nonlinear_readout_breaks_the_body_order_bound():
    """The meta-test of the one above: the MLP readout is not a polynomial, so the 3-body term of nu = 1 appears."""
    spec = task_spec("molecules", species=SPECIES)
    model = _mace(spec, correlation=1, num_interactions=1, readout_mlp=4, r_max=5.0, avg_num_neighbors=1.0)
    model = model.double().eval()
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    energies = _subset_energies(model, pos, torch.tensor([0, 1, 2]), 3)
    assert abs(_cluster_term(energies, 3)) > 1e-5 * max(abs(e) for e in energies.values())


def test_element_linear_applies_the_weights_of_each_node_element():
    torch.manual_seed(0)
    irreps_in, irreps_out = o3.Irreps("3x0e + 2x1o"), o3.Irreps("2x0e + 2x1o")
    layer = ElementLinear(irreps_in, irreps_out, num_elements=3)
    x = irreps_in.randn(6, -1)
    kinds = torch.tensor([0, 1, 2, 2, 1, 0])
    y = layer(x, torch.nn.functional.one_hot(kinds, 3).to(x.dtype))
    for z in range(3):  # independent reference: e3nn's own Linear holding element z's weights
        ref = o3.Linear(irreps_in, irreps_out)
        with torch.no_grad():
            ref.weight.copy_(layer.weight[z])
        rows = kinds == z
        torch.testing.assert_close(y[rows], ref(x[rows]))


def test_linear_parametrization_keeps_the_function(batches):
    spec, batch = batches["molecules"]
    e3nn_weights = _mace(spec).double()
    linear = _mace(spec, parametrization="linear").double()
    linear.load_state_dict(e3nn_weights.state_dict())  # a checkpoint of the e3nn parametrisation loads
    torch.testing.assert_close(linear(batch)[K.ENERGY], e3nn_weights(batch)[K.ENERGY])


def test_paper_preset_and_defaults():
    paper = paper_config()
    assert (paper.channels, paper.max_ell, paper.correlation, paper.num_interactions) == (128, 3, 3, 2)
    assert (paper.num_bessel, paper.r_max, paper.radial_layers, paper.radial_neurons) == (8, 5.0, 3, 64)
    default = MACEConfig()
    assert (default.max_ell, default.correlation, default.num_interactions, default.num_bessel) == (3, 3, 2, 8)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (dict(correlation=0), "correlation=0"),
        (dict(hidden_lmax=0), "no 1o features"),
        (dict(hidden_lmax=4, max_ell=3), "hidden_lmax must be in"),
        (dict(backend="jax"), "backend must be one of"),
        (dict(graph="knn"), "graph must be"),
    ],
)
def test_bad_configs_are_refused_with_the_fix(overrides, match):
    with pytest.raises(ConfigError, match=match):
        build_model("mace", task_spec("nbody"), overrides)


def test_node_embedding_bounds_each_irrep_block_and_is_near_identity_for_small_inputs():
    irreps = o3.Irreps("1x0e + 2x1o")
    torch.manual_seed(0)
    layer = NodeEmbedding(irreps, irreps)
    x = torch.tensor([[2.0, 3.0, 4.0, 0.0, 1e-4, 0.0, 0.0]])
    out = layer({K.NODE_FEATURES: x})[K.NODE_FEATURES]
    bounded = torch.cat([x[:, :1] / 5**0.5, x[:, 1:4] / 26**0.5, x[:, 4:] / (1 + 1e-8) ** 0.5], dim=1)
    torch.testing.assert_close(out, layer.linear(bounded))
    # huge inputs: the linear map sees blocks of norm < 1, so the output is bounded by the map's norm
    layer.bounded = False
    unit = irreps.randn(50, -1)
    unit = unit / unit.norm(dim=1, keepdim=True)
    bound = 3**0.5 * layer({K.NODE_FEATURES: unit})[K.NODE_FEATURES].norm(dim=1).max() * 10
    layer.bounded = True
    big = layer({K.NODE_FEATURES: 1e6 * irreps.randn(50, -1)})[K.NODE_FEATURES]
    assert torch.isfinite(big).all() and big.norm(dim=1).max() < bound


def test_default_cutoffs():
    assert _mace(task_spec("nbody")).r_max == 5.0  # DEFAULT_R_MAX_MACE: the Bessel basis near r = 0
    assert _mace(task_spec("twelve_body", history=2)).r_max == 3.5  # tfn's
    assert _backbone(_mace(task_spec("molecules", species=SPECIES))).r_max == 3.5


def test_the_cueq_backend_computes_the_same_energy_and_forces(batches):
    """The product basis by cuEquivariance (irrepnet[cueq]) against the own one, the same weights copied over."""
    pytest.importorskip("cuequivariance_torch", reason="the cueq extra is not installed")
    from irrepnet.nn.symmetric_contraction import SymmetricContraction, copy_contraction_weights

    spec, batch = batches["molecules"]
    own, cueq = _mace(spec, backend="e3nn").double(), _mace(spec, backend="cueq").double()
    cueq.load_state_dict({k: v for k, v in own.state_dict().items() if ".product." not in k}, strict=False)
    pairs = zip(*[[m for m in model.modules() if isinstance(m, SymmetricContraction)] for model in (own, cueq)])
    for src, dst in pairs:
        copy_contraction_weights(src, dst)
    want, got = own(batch), cueq(batch)
    for field in (K.ENERGY, K.FORCES):  # measured: 6e-17 apart (float64)
        torch.testing.assert_close(got[field], want[field], rtol=1e-10, atol=1e-12)
