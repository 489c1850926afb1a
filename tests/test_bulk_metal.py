"""The bulk_metal task (periodic fcc metal, EMT labels) and the stress of energy models.

The stress tests use a Lennard-Jones pair model written here in torch, summed over
periodic images, as the energy model's backbone: its energy and stress are compared
with ASE's own Lennard-Jones calculator (an independent implementation with ASE's sign)
and with finite differences of its energy under strain. Dataset tests run tiny MD
(one conventional cell, a few frames) and need ASE.
"""

import importlib
import itertools

import numpy as np
import pytest
import torch

from irrepnet import keys as K
from irrepnet.batch import collate
from irrepnet.equivariance import audit
from irrepnet.interface import IrrepsModule
from irrepnet.models.energy import EnergyModel
from irrepnet.registry import build_model, list_models, module_available
from irrepnet.tasks import task_spec

# one torch thread per test (tests/conftest.py): steady timings beside other jobs
pytestmark = pytest.mark.usefixtures("one_torch_thread")

needs_ase = pytest.mark.skipif(not module_available("ase"), reason="the EMT dataset needs ASE: pip install ase")

ENERGY_MODELS = [n for n in ("egnn", "tfn", "segnn", "se3-transformer", "e3nn-reference", "mace") if n in list_models()]
#: the radius graphs a periodic task needs (full graphs know no images); cutoffs in Å
PERIODIC_CONFIGS = {
    "egnn": {"graph": "radius", "radius": 4.0, "hidden": 16, "layers": 2},
    "tfn": {"graph": "radius", "r_max": 4.0, "avg_num_neighbors": 18.0, "layers": 2},
    "segnn": {"graph": "radius", "radius": 4.0, "center_positions": False, "avg_num_neighbors": 18.0, "layers": 2},
    "se3-transformer": {"graph": "radius", "radius": 4.0, "layers": 1},
    "e3nn-reference": {"max_radius": 4.0, "num_neighbors": 18.0, "layers": 1},
    "mace": {"r_max": 4.0, "avg_num_neighbors": 18.0},
}
TINY = dict(size=(1, 1, 1), frames_per_trajectory=2)


class PairLJ(IrrepsModule):
    """Lennard-Jones energy per atom over the periodic images within ``rc`` (shifted to 0 at ``rc``), as ASE's."""

    def __init__(self, sigma=2.3, epsilon=0.4, rc=5.0):
        super().__init__({K.POS: "1o"}, {K.NODE_ENERGY: "0e"})  # the cell is read from the batch
        self.sigma, self.epsilon, self.rc = sigma, epsilon, rc
        self.scale = torch.nn.Parameter(torch.ones(()))

    def phi(self, r):
        return 4 * self.epsilon * ((self.sigma / r) ** 12 - (self.sigma / r) ** 6)

    def forward(self, data):
        pos, cell, batch = data[K.POS], data[K.CELL], data[K.BATCH]
        images = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)), dtype=pos.dtype)  # enough for cells > rc
        node = []
        for i in range(pos.shape[0]):
            same = (batch == batch[i]).nonzero().reshape(-1)
            r = (pos[i] - pos[same][:, None, :] - (images @ cell[batch[i]])[None]).norm(dim=-1)
            inside = (r < self.rc) & (r > 1e-8)
            safe = torch.where(inside, r, torch.full_like(r, self.rc))
            node.append(0.5 * ((self.phi(safe) - self.phi(torch.tensor(self.rc, dtype=r.dtype))) * inside).sum())
        return {**data, K.NODE_ENERGY: self.scale * torch.stack(node)[:, None]}


def lj_cells(n=2, seed=0):
    """``n`` rattled, strained 2x2x2 Cu cells as ASE atoms with ASE's LJ calculator, and their batch."""
    from ase.build import bulk
    from ase.calculators.lj import LennardJones

    rng = np.random.default_rng(seed)
    atoms, samples = [], []
    for _ in range(n):
        a = bulk("Cu", "fcc", cubic=True).repeat((2, 2, 2))
        a.set_cell(a.cell.array @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
        a.rattle(0.1, rng=rng)
        a.calc = LennardJones(sigma=2.3, epsilon=0.4, rc=5.0, smooth=False)
        atoms.append(a)
        samples.append(
            {
                K.POS: torch.tensor(a.positions),
                K.CELL: torch.tensor(a.cell.array)[None],
                K.PBC: torch.ones(1, 3, dtype=torch.bool),
            }
        )
    return atoms, collate(samples)


# --- stress of an energy model -------------------------------------------------------------
@needs_ase
def test_stress_equals_ases_for_the_same_potential():
    atoms, batch = lj_cells()
    out = EnergyModel(PairLJ(), compute_stress=True).double().eval()(batch)
    assert out[K.STRESS].shape == (2, 3, 3)
    for g, a in enumerate(atoms):
        np.testing.assert_allclose(float(out[K.ENERGY][g].detach()), a.get_potential_energy(), rtol=1e-12)
        np.testing.assert_allclose(out[K.STRESS][g].detach().numpy(), a.get_stress(voigt=False), atol=1e-12)
    forces = out[K.FORCES].detach().numpy()
    np.testing.assert_allclose(forces, np.concatenate([a.get_forces() for a in atoms]), atol=1e-11)


@needs_ase
def test_stress_is_the_strain_derivative_of_the_energy_per_volume():
    """Central differences of the model's energy under x -> x (1 + eps), C -> C (1 + eps)."""
    _, batch = lj_cells(n=1, seed=1)
    model = EnergyModel(PairLJ(), compute_stress=True).double().eval()
    stress = model(batch)[K.STRESS][0].detach()
    volume = float(torch.linalg.det(batch[K.CELL][0]).abs())
    h = 1e-6
    for a, b in [(0, 0), (1, 2), (2, 0)]:
        energies = []
        for sign in (1, -1):
            eps = torch.zeros(3, 3, dtype=torch.float64)
            eps[a, b] += sign * h / 2
            eps[b, a] += sign * h / 2
            one = torch.eye(3, dtype=torch.float64) + eps
            strained = {**batch, K.POS: batch[K.POS] @ one, K.CELL: batch[K.CELL] @ one}
            energies.append(float(model(strained)[K.ENERGY].detach().sum()))
        slope = (energies[0] - energies[1]) / (2 * h * volume)
        np.testing.assert_allclose(float(stress[a, b]), slope, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(stress, stress.T)


@needs_ase
def test_stress_rotates_as_a_rank_two_tensor_and_only_periodic_batches_have_it():
    _, batch = lj_cells(n=1, seed=2)
    model = EnergyModel(PairLJ(), compute_stress=True)
    assert model.irreps_out[K.STRESS] is None and K.STRESS in K.CARTESIAN_TENSOR_FIELDS
    report = audit(model, batch, dtype=torch.float64, trials=1, checks=("rotation", "reflection", "translation"))
    assert report.passed, str(report)
    open_batch = {K.POS: batch[K.POS], K.CELL: batch[K.CELL], K.PBC: torch.tensor([[True, True, False]])}
    assert K.STRESS not in model.eval()(open_batch)
    assert K.STRESS not in EnergyModel(PairLJ()).eval()(batch)  # compute_stress off


@needs_ase
def test_a_wrongly_rotated_stress_fails_the_audit():
    """The audit's R sigma R^T is a real check: a stress that does not rotate as a tensor is caught."""
    _, batch = lj_cells(n=1, seed=3)

    class Frozen(EnergyModel):
        def forward(self, data):
            out = super().forward(data)
            # the diagonal alone: a frame-dependent cut, not a tensor
            return {**out, K.STRESS: torch.diag_embed(out[K.STRESS].diagonal(dim1=1, dim2=2))}

    report = audit(Frozen(PairLJ(), compute_stress=True), batch, dtype=torch.float64, trials=1, checks=("rotation",))
    assert not report.passed


# --- the task spec and the registry ---------------------------------------------------------
def test_the_spec_is_periodic_with_stress_and_one_element():
    spec = task_spec("bulk_metal")
    assert str(spec.inputs[K.POS]) == "1x1o" and str(spec.inputs[K.SPECIES_ONEHOT]) == "1x0e"
    assert spec.target == K.ENERGY and spec.num_nodes is None
    assert spec.extras["forces"] and spec.extras["stress"] and spec.extras["periodic"]
    assert spec.extras["species"] == ["Cu"] and spec.extras["element"] == "Cu"
    assert task_spec("bulk_metal", species=("Au",)).extras["element"] == "Au"
    with pytest.raises(ValueError, match="one element"):
        task_spec("bulk_metal", species=("Cu", "Ni"))
    with pytest.raises(ValueError, match="one element"):
        task_spec("bulk_metal", species=("Fe",))


#: building e3nn's tensor products takes seconds per model: the quick run builds egnn and mace only
SLOW_TO_BUILD = ("tfn", "segnn", "se3-transformer", "e3nn-reference")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TO_BUILD else n for n in ENERGY_MODELS]
)
def test_the_registry_builds_every_energy_model_with_a_stress_output(name):
    model = build_model(name, task_spec("bulk_metal"), PERIODIC_CONFIGS[name])
    assert {K.ENERGY, K.FORCES, K.STRESS} <= set(model.irreps_out) and model.compute_stress
    if name == "egnn":  # a task without stress labels gets no stress output
        assert K.STRESS not in build_model(name, task_spec("molecules"), {}).irreps_out


# --- the dataset (needs ASE) -----------------------------------------------------------------
@needs_ase
def test_dataset_is_deterministic_cached_and_split_by_trajectory(tmp_path, monkeypatch):
    B = importlib.import_module("irrepnet.data.bulk_metal")

    a = B.bulk_metal("train", n_train=8, cache_dir=tmp_path, **TINY)
    b = B.bulk_metal("train", n_train=8, use_cache=False, **TINY)
    for name in a.fields:
        assert torch.equal(a.arrays()[name], b.arrays()[name]), name
    assert a.trajectory.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert a.temperature.tolist() == [300.0] * 2 + [600.0] * 2 + [1200.0] * 2 + [300.0] * 2
    assert a.molecule.tolist() == [0] * 6 + [1] * 2  # trajectory 3 has a vacancy
    assert a.counts.tolist() == [4] * 6 + [3] * 2
    test = B.bulk_metal("test", n_test=8, use_cache=False, **TINY)
    assert not np.allclose(test.arrays()[K.POS].numpy(), a.arrays()[K.POS].numpy())  # other seeds, other frames
    monkeypatch.setattr(B, "generate_bulk_metal", lambda *a, **k: pytest.fail("the cache was not used"))
    again = B.bulk_metal("train", n_train=8, cache_dir=tmp_path, **TINY)
    assert torch.equal(again.arrays()[K.TARGET_STRESS], a.arrays()[K.TARGET_STRESS])
    assert "vacancy" in repr(again)


@needs_ase
def test_fields_shapes_and_labels_are_emts_at_the_stored_frame(tmp_path):
    from ase import Atoms
    from ase.calculators.emt import EMT

    from irrepnet.data.bulk_metal import bulk_metal

    ds = bulk_metal("valid", n_valid=8, cache_dir=tmp_path, **TINY)
    sample = ds[7]  # the vacancy trajectory: 3 atoms
    assert sample[K.POS].shape == (3, 3) and sample[K.SPECIES_ONEHOT].shape == (3, 1)
    assert sample[K.TARGET_ENERGY].shape == (1, 1) and sample[K.TARGET_FORCES].shape == (3, 3)
    assert sample[K.CELL].shape == (1, 3, 3) and sample[K.TARGET_STRESS].shape == (1, 3, 3)
    assert sample[K.PBC].dtype == torch.bool and sample[K.PBC].tolist() == [[True, True, True]]
    batch = ds.batch([0, 7, 3])
    expected = collate([ds[0], ds[7], ds[3]])
    assert set(batch) == set(expected)
    for key in batch:
        assert torch.equal(batch[key], expected[key]), key
    sub = ds.subset([7, 0])
    assert sub.trajectory.tolist() == [3, 0] and torch.equal(sub.batch(None)[K.CELL], ds.batch([7, 0])[K.CELL])
    for i in (0, 7):
        s = ds[i]
        cell = s[K.CELL][0].numpy()
        frac = np.linalg.solve(cell.T, s[K.POS].numpy().T).T
        assert (frac >= -1e-9).all() and (frac < 1 + 1e-9).all()  # wrapped into the cell
        strain = cell / 3.61 - np.eye(3)  # ASE's Cu lattice constant, strained by at most 2% per entry
        assert 0 < np.abs(strain).max() <= 0.02 + 1e-12
        atoms = Atoms(f"Cu{len(s[K.POS])}", positions=s[K.POS].numpy(), cell=cell, pbc=True)
        atoms.calc = EMT()
        np.testing.assert_allclose(atoms.get_potential_energy(), float(s[K.TARGET_ENERGY]), rtol=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), s[K.TARGET_FORCES].numpy(), atol=1e-10)
        np.testing.assert_allclose(atoms.get_stress(voigt=False), s[K.TARGET_STRESS][0].numpy(), atol=1e-12)


@needs_ase
def test_the_stress_labels_are_the_strain_derivative_of_emts_energy(tmp_path):
    """The label's sign and units (ASE's get_stress) are those of (1/V) dE/d(eps), which EnergyModel computes."""
    from ase import Atoms
    from ase.calculators.emt import EMT

    from irrepnet.data.bulk_metal import bulk_metal

    s = bulk_metal("valid", n_valid=2, cache_dir=tmp_path, **TINY)[1]
    pos, cell = s[K.POS].numpy(), s[K.CELL][0].numpy()
    h, volume = 1e-6, abs(np.linalg.det(cell))
    for a, b in [(0, 0), (0, 1)]:
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[a, b] += sign * h / 2
            eps[b, a] += sign * h / 2
            atoms = Atoms(f"Cu{len(pos)}", positions=pos @ (np.eye(3) + eps), cell=cell @ (np.eye(3) + eps), pbc=True)
            atoms.calc = EMT()
            energies.append(atoms.get_potential_energy())
        slope = (energies[0] - energies[1]) / (2 * h * volume)
        np.testing.assert_allclose(float(s[K.TARGET_STRESS][0, a, b]), slope, rtol=1e-5, atol=1e-8)


@needs_ase
def test_bad_arguments_say_what_to_change():
    from irrepnet.data.bulk_metal import bulk_metal
    from irrepnet.tasks import load_task

    with pytest.raises(ValueError, match="fcc metals EMT was fitted to"):
        bulk_metal("valid", element="Fe", use_cache=False)
    with pytest.raises(ValueError, match="three positive integers"):
        bulk_metal("valid", size=(2, 2), use_cache=False)
    with pytest.raises(ValueError, match="split must be one of"):
        bulk_metal("dev")
    with pytest.raises(ValueError, match="takes no --data"):
        load_task("bulk_metal", data="x.xyz")
    with pytest.raises(ValueError, match="drop --history"):
        load_task("bulk_metal", history=1)


@needs_ase
def test_load_task_records_the_generator_identity(tmp_path, monkeypatch):
    from irrepnet.tasks import load_task

    monkeypatch.setenv("IRREPNET_CACHE", str(tmp_path))
    B = importlib.import_module("irrepnet.data.bulk_metal")
    task = load_task("bulk_metal", n_train=2, n_valid=2, n_test=2)
    assert task.identity["kind"] == "generated" and task.identity["load"] == {
        "data": None,
        "n_train": 2,
        "n_valid": 2,
        "n_test": 2,
    }
    generator = task.identity["generator"]
    assert generator["config"]["element"] == "Cu" and generator["splits"]["test"]["seed"] == B.SPLIT_SEEDS["test"]
    assert task.spec.extras["temperatures"] == [300.0, 600.0, 1200.0]


# --- training (needs ASE and the periodic graph) ----------------------------------------------
@needs_ase
def test_training_on_energy_forces_and_stress_through_irrepnet_train(tmp_path):
    from conftest import small

    from irrepnet.data.bulk_metal import bulk_metal
    from irrepnet.tasks import Task
    from irrepnet.train import load_trained, make_trainer

    splits = {s: bulk_metal(s, cache_dir=tmp_path, **{f"n_{s}": 8}, **TINY) for s in ("train", "valid", "test")}
    task = Task(task_spec("bulk_metal"), splits["train"], splits["test"], splits["valid"])
    cfg = small(epochs=3, steps_per_epoch=None, batch_size=4, lr=3e-3, stress_weight=1.0)
    trainer = make_trainer("egnn", task, cfg, PERIODIC_CONFIGS["egnn"], out_dir=tmp_path / "run")
    assert [t.output for t in trainer.terms] == [K.ENERGY, K.FORCES, K.STRESS]
    before = trainer.evaluate_loss(task.valid)
    result = trainer.fit()
    assert np.isfinite(result.best_valid_loss) and result.best_valid_loss < before
    model, ck = load_trained(tmp_path / "run" / "best.pt")
    assert ck["scales"]["outputs"][K.STRESS] == ck["scales"]["outputs"][K.FORCES]
    batch = task.test.batch([0, 7])
    out = model(batch)
    assert out[K.STRESS].shape == (2, 3, 3)
    torch.testing.assert_close(out[K.STRESS].double(), result.model(batch)[K.STRESS].double())


# --- the benchmark suite ----------------------------------------------------------------------
TINY_SUITE = """
[suite]
name = "tiny-bulk"
task = "bulk_metal"
models = ["egnn"]
seeds = [0]
audit_trials = 1
speed_graphs = 2
bootstrap_resamples = 100
n_train = 4
n_valid = 2
n_test = 3

[train]
epochs = 1
batch_size = 2
progress = false

[models.egnn]
config = { graph = "radius", radius = 4.0, hidden = 8, layers = 1 }
"""


@needs_ase
@pytest.mark.slow
def test_the_shipped_suite_gives_every_energy_model_a_periodic_graph_and_the_same_budget():
    from irrepnet.bench import load_suite

    suite = load_suite("bulk-metal")
    assert suite.task == "bulk_metal" and suite.energy and suite.seeds == [0, 1, 2]
    assert set(suite.model_names()) == set(ENERGY_MODELS)
    assert not any(over.get("train") for over in suite.model_overrides.values())  # equal budgets
    spec = task_spec("bulk_metal")
    for name in suite.model_names():
        cfg = suite.model_config_for(name)
        cutoff = [cfg[k] for k in ("radius", "r_max", "max_radius") if k in cfg]
        assert cutoff == [4.0], name  # in Å: energy tasks read positions in the data's unit
        assert K.STRESS in build_model(name, spec, cfg).irreps_out


@needs_ase
@pytest.mark.slow
def test_a_tiny_suite_runs_with_the_atom_energy_reference_and_a_periodic_audit(tmp_path, monkeypatch):
    from irrepnet.bench import load_suite, run_suite, validate

    monkeypatch.setenv("IRREPNET_CACHE", str(tmp_path / "cache"))
    (tmp_path / "tiny.toml").write_text(TINY_SUITE)
    results = run_suite(load_suite(str(tmp_path / "tiny.toml")), tmp_path / "out", log=lambda _: None)
    validate(results)
    rows = {r["name"]: r for r in results["groups"][0]["rows"]}
    assert set(rows) == {"atom energies", "egnn"}
    assert rows["atom energies"]["metrics"]["forces_mae"] > 0.1  # EMT forces at 300-1200 K, predicted as zero
    egnn = rows["egnn"]["seeds"][0]
    assert np.isfinite(egnn["metrics"]["forces_mae"]) and egnn["equivariance"]["float64"]["passed"]
