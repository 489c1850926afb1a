"""The molecules task: EMT dataset, energy models (forces = -grad E), energy-and-force training.

Model tests use random molecule-like graphs (``toy_molecules``) and need no ASE; the
dataset and training tests need ASE (``pip install ase``) and are skipped without it.
"""

import copy
import importlib
import sys

import numpy as np
import pytest
import torch
from toy_modules import toy_molecules

from irrepnet import keys as K
from irrepnet.batch import collate
from irrepnet.equivariance import audit
from irrepnet.registry import ConfigError, build_model, list_models, module_available, unavailable_reason
from irrepnet.tasks import task_spec

# one torch thread per test (tests/conftest.py): steady timings beside other jobs
pytestmark = pytest.mark.usefixtures("one_torch_thread")


needs_ase = pytest.mark.skipif(not module_available("ase"), reason="the EMT dataset needs ASE: pip install ase")

ENERGY_MODELS = ["egnn", "tfn", "segnn", "se3-transformer", "e3nn-reference", "mace"]
SPEC = task_spec("molecules", species=("H", "C", "N", "O"))

_BUILT = {}


def built(name):
    """Each model built once (e3nn generates code at construction), float64, eval mode."""
    if name not in _BUILT:
        torch.manual_seed(0)
        _BUILT[name] = build_model(name, SPEC).double().eval()
    return _BUILT[name]


# --- the task spec and the registry ------------------------------------------------
def test_the_spec_declares_atom_types_and_an_energy_target_with_forces():
    assert str(SPEC.inputs[K.SPECIES_ONEHOT]) == "4x0e" and str(SPEC.inputs[K.POS]) == "1x1o"
    assert SPEC.target == K.ENERGY and SPEC.num_nodes is None and SPEC.extras["forces"] is True
    assert K.field_kind(K.ENERGY) == K.GRAPH and K.field_kind(K.TARGET_ENERGY) == K.GRAPH
    assert K.field_kind(K.FORCES) == K.NODE and K.field_kind(K.TARGET_FORCES) == K.NODE
    with pytest.raises(ValueError, match="only the molecules task has atom types"):
        task_spec("nbody", species=("H",))


@pytest.mark.parametrize("name", [n for n in list_models() if n not in ENERGY_MODELS])
def test_models_without_an_energy_head_are_refused_saying_which_can(name):
    if unavailable_reason(name):  # a peer without its package is refused for that first, with the install command
        with pytest.raises(ConfigError, match=r"not installed: pip install 'irrepnet\[peers\]'"):
            build_model(name, SPEC)
        return
    with pytest.raises(ConfigError, match="predicts no energy.*egnn.*tfn"):
        build_model(name, SPEC)


# --- energy models ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ENERGY_MODELS)
def test_energy_models_return_a_graph_energy_and_node_forces(name):
    model, batch = built(name), toy_molecules()
    assert {str(v) for v in model.irreps_out.values()} == {"1x0e", "1x1o"}
    assert str(model.irreps_out[K.ENERGY]) == "1x0e" and str(model.irreps_out[K.FORCES]) == "1x1o"
    out = model(batch)
    assert out[K.ENERGY].shape == (3, 1) and out[K.FORCES].shape == (16, 3)
    assert torch.isfinite(out[K.ENERGY]).all() and torch.isfinite(out[K.FORCES]).all()
    assert model.symmetry.value == "E(3)"


@pytest.mark.parametrize("name", ENERGY_MODELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_energy_is_invariant_and_forces_equivariant(name, dtype):
    report = audit(built(name), toy_molecules(), dtype=dtype, trials=1)
    assert report.passed, str(report)
    assert set(report["rotation"].per_field) == {K.ENERGY, K.FORCES}


@pytest.mark.parametrize("name", ["egnn", "tfn"])
def test_forces_are_the_negative_gradient_of_the_energy(name):
    """Central differences of the energy in float64 against the returned forces."""
    model, batch = built(name), toy_molecules(sizes=(4, 6))
    forces = model(batch)[K.FORCES]
    h = 1e-5
    for atom, axis in [(0, 0), (3, 2), (5, 1), (9, 0)]:
        graph = int(batch[K.BATCH][atom])
        plus, minus = dict(batch), dict(batch)
        plus[K.POS], minus[K.POS] = batch[K.POS].clone(), batch[K.POS].clone()
        plus[K.POS][atom, axis] += h
        minus[K.POS][atom, axis] -= h
        slope = (model(plus)[K.ENERGY][graph] - model(minus)[K.ENERGY][graph]) / (2 * h)
        torch.testing.assert_close(-slope, forces[atom, axis : axis + 1], rtol=1e-6, atol=1e-8)


def test_the_energy_model_leaves_the_callers_positions_alone_and_trains_through_the_forces():
    model, batch = copy.deepcopy(built("egnn")).train(), toy_molecules()
    pos = batch[K.POS].clone()
    out = model(batch)
    assert not batch[K.POS].requires_grad and torch.equal(batch[K.POS], pos)
    out[K.FORCES].pow(2).sum().backward()  # create_graph in training mode: the forces carry parameter gradients
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    # the last bias adds a constant to each atom's energy: it moves no force, so it has no gradient
    assert [n for n, p in params.items() if p.grad is None] == ["backbone.chain.layers.6.node_mlp.2.bias"]
    assert sum(float(p.grad.abs().sum()) for p in params.values() if p.grad is not None) > 0


def test_forces_exist_without_gradients_and_come_back_detached():
    model, batch = built("tfn"), toy_molecules()
    with torch.no_grad():
        out = model(batch)
    assert not out[K.ENERGY].requires_grad and not out[K.FORCES].requires_grad
    torch.testing.assert_close(out[K.FORCES], model(batch)[K.FORCES])


# --- the dataset (needs ASE) -----------------------------------------------------------
@needs_ase
def test_dataset_is_deterministic_cached_and_holds_every_molecule(tmp_path, monkeypatch):
    M = importlib.import_module("irrepnet.data.molecules")  # the module; irrepnet.data.molecules is its loader

    a = M.molecules("train", n_train=90, cache_dir=tmp_path)
    b = M.molecules("train", n_train=90, use_cache=False)
    for name in a.fields:
        assert torch.equal(a.arrays()[name], b.arrays()[name])
    assert len(a) == 90 and a.species == ("H", "C", "N", "O")
    assert set(a.molecule.tolist()) == set(range(len(a.names)))  # every G2 molecule of H, C, N, O
    other = M.molecules("test", n_test=90, use_cache=False)
    assert not torch.equal(other.arrays()[K.POS], a.arrays()[K.POS])  # splits differ by geometry
    monkeypatch.setattr(M, "generate_molecules", lambda *a, **k: pytest.fail("the cache was not used"))
    again = M.molecules("train", n_train=90, cache_dir=tmp_path)
    assert torch.equal(again.arrays()[K.TARGET_FORCES], a.arrays()[K.TARGET_FORCES])


@needs_ase
def test_dataset_fields_shapes_and_variable_sizes_in_one_batch(tmp_path):
    from ase.calculators.emt import EMT
    from ase.collections import g2

    from irrepnet.data import molecules

    ds = molecules("valid", n_valid=12, cache_dir=tmp_path)
    sample = ds[3]
    n = sample[K.POS].shape[0]
    assert sample[K.SPECIES_ONEHOT].shape == (n, 4) and sample[K.TARGET_FORCES].shape == (n, 3)
    assert sample[K.TARGET_ENERGY].shape == (1, 1) and torch.all(sample[K.SPECIES_ONEHOT].sum(1) == 1)
    batch = ds.batch([0, 3, 7])
    expected = collate([ds[0], ds[3], ds[7]])
    assert set(batch) == set(expected)
    for key in batch:
        assert torch.equal(batch[key], expected[key]), key
    assert len(set(batch[K.NUM_NODES].tolist())) > 1  # different sizes in one batch
    # the labels are EMT's, at the stored (displaced) geometry
    atoms = g2[ds.names[ds.molecule[3]]].copy()
    assert 0 < float((sample[K.POS].numpy() - atoms.positions).std()) < 0.1
    atoms.positions = sample[K.POS].numpy()
    atoms.calc = EMT()
    np.testing.assert_allclose(atoms.get_potential_energy(), float(sample[K.TARGET_ENERGY]), rtol=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), sample[K.TARGET_FORCES].numpy(), atol=1e-10)
    sub = ds.subset([7, 0])
    assert torch.equal(sub.batch(None)[K.POS], ds.batch([7, 0])[K.POS])


def test_a_missing_ase_is_a_clear_error(monkeypatch):
    from irrepnet.data import molecules

    for name in [m for m in sys.modules if m == "ase" or m.startswith("ase.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ase", None)  # import ase now raises ImportError
    with pytest.raises(ImportError, match="pip install ase"):
        molecules("valid", n_valid=2, use_cache=False)


@needs_ase
def test_bad_arguments_say_what_to_change():
    from irrepnet.data import molecules
    from irrepnet.tasks import load_task

    with pytest.raises(ValueError, match="EMT has no parameters for"):
        molecules("valid", n_valid=2, species=("H", "C", "Xe"), use_cache=False)
    with pytest.raises(ValueError, match="split must be one of"):
        molecules("dev")
    with pytest.raises(ValueError, match="only the molecules task generates"):
        load_task("nbody", n_valid=5)
    with pytest.raises(ValueError, match="drop --history"):
        load_task("molecules", history=2)


# --- training (needs ASE) ----------------------------------------------------------------
@needs_ase
def test_a_short_training_run_lowers_the_loss_and_reports_maes(tmp_path, monkeypatch):
    from conftest import small

    from irrepnet import metrics as M
    from irrepnet.tasks import load_task
    from irrepnet.train import load_trained, make_trainer

    monkeypatch.setenv("IRREPNET_CACHE", str(tmp_path / "cache"))
    task = load_task("molecules", n_train=64, n_valid=24, n_test=24)
    assert (len(task.train), len(task.valid), len(task.test)) == (64, 24, 24)
    cfg = small(epochs=4, steps_per_epoch=None, batch_size=16, lr=3e-3, energy_weight=1.0, force_weight=1.0)
    trainer = make_trainer("egnn", task, cfg, {"hidden": 16, "layers": 2}, out_dir=tmp_path / "run")
    assert [t.output for t in trainer.terms] == [K.ENERGY, K.FORCES]
    before = trainer.evaluate_loss(task.valid)
    result = trainer.fit()
    assert result.best_valid_loss < 0.8 * before
    record = result.history[-1]
    assert record["valid_forces_mae"] > 0 and record["valid_energy_mae"] > record["valid_energy_per_atom_mae"] > 0
    errors = M.energy_force_errors(result.model, task.test)
    assert set(errors) >= {"energy_mae", "energy_per_atom_mae", "forces_mae", "forces_rmse"}
    # the checkpoint rebuilds the same model in physical units (atom energies included)
    model, ck = load_trained(tmp_path / "run" / "best.pt")
    assert len(ck["scales"]["atom_energies"]) == 4
    batch = task.test.batch([0, 1, 2])
    for field in (K.ENERGY, K.FORCES):
        torch.testing.assert_close(model(batch)[field].double(), result.model(batch)[field].double())


@needs_ase
def test_physical_forces_are_the_gradient_of_the_physical_energy(tmp_path):
    """Normalisation keeps F = -dE/dx: one scale for both, and an atom-energy shift that adds no force."""
    from irrepnet.data import molecules
    from irrepnet.train.normalization import NormalizedModel, fit_scales

    ds = molecules("valid", n_valid=30, cache_dir=tmp_path, dtype=torch.float64)
    model = built("egnn")
    scales = fit_scales(model, ds.arrays(), K.ENERGY, ds.arrays()[K.TARGET_ENERGY])
    assert scales["outputs"][K.ENERGY] == scales["outputs"][K.FORCES] > 0
    wrapped = NormalizedModel(model, scales, output=K.ENERGY).double().eval()
    batch = ds.batch([0, 1])
    out = wrapped(batch)
    h, atom = 1e-5, 1
    plus, minus = dict(batch), dict(batch)
    plus[K.POS], minus[K.POS] = batch[K.POS].clone(), batch[K.POS].clone()
    plus[K.POS][atom, 2] += h
    minus[K.POS][atom, 2] -= h
    slope = (wrapped(plus)[K.ENERGY][0] - wrapped(minus)[K.ENERGY][0]) / (2 * h)
    torch.testing.assert_close(-slope, out[K.FORCES][atom, 2:3], rtol=1e-6, atol=1e-8)


@needs_ase
def test_options_meant_for_displacements_are_refused_on_energies(tmp_path, monkeypatch):
    from conftest import small

    from irrepnet.tasks import load_task
    from irrepnet.train import make_trainer

    monkeypatch.setenv("IRREPNET_CACHE", str(tmp_path))
    task = load_task("molecules", n_train=8, n_valid=4, n_test=4)
    with pytest.raises(ConfigError, match="input_noise"):
        make_trainer("egnn", task, small(input_noise=0.1), {"hidden": 8, "layers": 1})
    with pytest.raises(ConfigError, match="both 0"):
        small(energy_weight=0.0, force_weight=0.0)
