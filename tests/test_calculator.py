"""The ASE calculator: the model's own numbers, conservative forces, MD, bad elements, checkpoints, no ASE."""

import sys

import numpy as np
import pytest
import torch

from irrepnet import keys as K
from irrepnet.optional import MissingDependencyError
from irrepnet.registry import build_model, module_available
from irrepnet.tasks import task_spec

pytestmark = [
    pytest.mark.skipif(not module_available("ase"), reason="the ASE calculator needs ASE: pip install ase"),
    pytest.mark.usefixtures("one_torch_thread"),
]

SPECIES = ("H", "C", "N", "O")
SMALL = {"hidden": 16, "layers": 2}


@pytest.fixture(scope="module")
def egnn():
    torch.manual_seed(0)
    return build_model("egnn", task_spec("molecules", species=SPECIES), SMALL).double().eval()


def ethane(seed=0):
    from ase.build import molecule

    atoms = molecule("C2H6")
    atoms.rattle(0.05, seed=seed)  # off the G2 geometry: forces are not zero by symmetry
    return atoms


def calculator(model, **kw):
    from irrepnet.calculator import IrrepnetCalculator

    return IrrepnetCalculator(model, SPECIES, **kw)


def test_energy_and_forces_are_the_models_own(egnn):
    atoms = ethane()
    atoms.calc = calculator(egnn)
    onehot = torch.zeros(len(atoms), 4, dtype=torch.float64)
    onehot[torch.arange(len(atoms)), torch.as_tensor([SPECIES.index(s) for s in atoms.get_chemical_symbols()])] = 1
    with torch.no_grad():
        out = egnn({K.POS: torch.as_tensor(atoms.positions), K.SPECIES_ONEHOT: onehot})
    assert atoms.get_potential_energy() == pytest.approx(float(out[K.ENERGY]), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), out[K.FORCES].numpy(), rtol=1e-12, atol=1e-12)
    assert atoms.get_forces().dtype == np.float64 and np.abs(atoms.get_forces()).max() > 1e-3


def test_forces_are_a_finite_difference_of_the_calculators_energy(egnn):
    atoms = ethane(seed=1)
    atoms.calc = calculator(egnn)
    forces = atoms.get_forces()
    h = 1e-5
    for atom, axis in [(0, 0), (2, 1), (5, 2), (7, 0)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.calc = atoms.calc
            moved.positions[atom, axis] += sign * h
            energies.append(moved.get_potential_energy())
        slope = (energies[0] - energies[1]) / (2 * h)
        assert -slope == pytest.approx(forces[atom, axis], rel=1e-6, abs=1e-8), (atom, axis)


def test_float32_gives_the_float64_numbers_to_single_precision(egnn):
    atoms = ethane()
    atoms.calc = calculator(egnn, dtype="float64")
    e64, f64 = atoms.get_potential_energy(), atoms.get_forces()
    model32 = build_model("egnn", task_spec("molecules", species=SPECIES), SMALL)
    model32.load_state_dict(egnn.state_dict())
    calc32 = calculator(model32, dtype="float32")
    assert next(calc32.model.parameters()).dtype == torch.float32
    atoms.calc = calc32
    assert atoms.get_potential_energy() == pytest.approx(e64, rel=1e-5, abs=1e-5)
    np.testing.assert_allclose(atoms.get_forces(), f64, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="'float32' or 'float64'"):
        calculator(egnn, dtype="float16")


def test_velocity_verlet_runs_and_conserves_energy_for_a_few_steps(egnn):
    from ase import units
    from ase.md.verlet import VelocityVerlet

    atoms = ethane()
    atoms.calc = calculator(egnn)
    kt = units.kB * 300  # Maxwell-Boltzmann momenta at 300 K, drawn here (ASE renamed its helper in 3.27)
    atoms.set_momenta(np.sqrt(atoms.get_masses() * kt)[:, None] * np.random.default_rng(0).standard_normal((8, 3)))
    start = atoms.positions.copy()
    e0 = atoms.get_potential_energy() + atoms.get_kinetic_energy()
    totals = []
    dyn = VelocityVerlet(atoms, timestep=0.1 * units.fs)
    dyn.attach(lambda: totals.append(atoms.get_potential_energy() + atoms.get_kinetic_energy()), interval=1)
    dyn.run(10)
    assert len(totals) == 11 and np.isfinite(totals).all()
    assert np.abs(atoms.positions - start).max() > 1e-4  # the atoms moved
    # a smooth potential at a tenth of a femtosecond: the total energy holds to far below kT (0.026 eV)
    assert np.abs(np.asarray(totals) - e0).max() < 1e-3 * max(1.0, abs(e0))


def test_an_element_the_model_was_not_trained_on_is_named_with_the_trained_species(egnn):
    from ase import Atoms

    atoms = Atoms("CH3Cu", positions=[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 2, 2]])
    atoms.calc = calculator(egnn)
    with pytest.raises(ValueError, match=r"element Cu \(atom 4.*\['H', 'C', 'N', 'O'\]") as err:
        atoms.get_potential_energy()
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="4 species but 3 were given"):
        from irrepnet.calculator import IrrepnetCalculator

        IrrepnetCalculator(egnn, ["H", "C", "N"])


def test_stress_is_refused_where_the_model_has_none(egnn):
    from ase.calculators.calculator import PropertyNotImplementedError

    atoms = ethane()
    atoms.calc = calculator(egnn)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


@pytest.fixture(scope="module")
def cu_model():
    """A small tfn for the bulk_metal task: periodic radius graph, stress from the strain derivative."""
    torch.manual_seed(0)
    config = {"hidden_irreps": "8x0e + 4x1o + 4x1e", "lmax": 1, "layers": 2, "radial_neurons": 16}
    return build_model("tfn", task_spec("bulk_metal"), config).double().eval()


def rattled_cu(seed=0):
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_periodic_forces_and_stress_are_finite_differences_of_the_energy(cu_model):
    from irrepnet.calculator import IrrepnetCalculator

    atoms = rattled_cu()
    calc = IrrepnetCalculator(cu_model, ["Cu"])
    assert calc.has_stress
    atoms.calc = calc
    forces, stress = atoms.get_forces(), atoms.get_stress()  # Voigt: xx yy zz yz xz xy, eV/A^3
    assert stress.shape == (6,) and np.abs(forces).max() > 1e-3
    h = 1e-5

    def energy_of(moved):
        moved.calc = calc
        return moved.get_potential_energy()

    for atom, axis in [(0, 0), (13, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        assert -(energy_of(plus) - energy_of(minus)) / (2 * h) == pytest.approx(forces[atom, axis], rel=1e-6, abs=1e-8)
    volume = atoms.get_volume()
    for voigt, (i, j) in [(0, (0, 0)), (3, (1, 2))]:  # a normal and a shear component
        slopes = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[i, j] = eps[j, i] = sign * h / (1 if i == j else 2)  # symmetric strain, d E / d eps_ij (i != j) / 2
            strained = atoms.copy()
            strained.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
            slopes.append(energy_of(strained))
        numeric = (slopes[0] - slopes[1]) / (2 * h) / volume
        assert numeric == pytest.approx(stress[voigt], rel=1e-5, abs=1e-9), voigt


def test_periodic_energy_does_not_depend_on_which_image_holds_an_atom(cu_model):
    from irrepnet.calculator import IrrepnetCalculator

    atoms = rattled_cu(seed=1)
    atoms.calc = IrrepnetCalculator(cu_model, ["Cu"])
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    moved = atoms.copy()
    moved.positions[[0, 5]] += atoms.cell[0] - 2 * atoms.cell[2]  # two atoms into other images
    moved.calc = atoms.calc
    assert moved.get_potential_energy() == pytest.approx(e, rel=1e-10)
    np.testing.assert_allclose(moved.get_forces(), f, atol=1e-9)
    slab = atoms.copy()
    slab.pbc = [True, True, False]  # not periodic in all three directions: no stress
    slab.calc = atoms.calc
    from ase.calculators.calculator import PropertyNotImplementedError

    assert np.isfinite(slab.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError, match="not periodic"):
        slab.get_stress()


def test_a_model_without_an_energy_is_refused():
    model = build_model("egnn", task_spec("nbody"), SMALL)
    with pytest.raises(ValueError, match="needs an energy model"):
        calculator(model)


def test_from_checkpoint_round_trip(tmp_path, monkeypatch):
    from conftest import small

    from irrepnet.calculator import IrrepnetCalculator
    from irrepnet.tasks import load_task
    from irrepnet.train import load_trained, train_registered

    monkeypatch.setenv("IRREPNET_CACHE", str(tmp_path / "cache"))
    task = load_task("molecules", n_train=8, n_valid=4, n_test=4)
    train_registered("egnn", task, small(epochs=1, steps_per_epoch=2), SMALL, out_dir=tmp_path / "run")
    path = tmp_path / "run" / "best.pt"
    calc = IrrepnetCalculator.from_checkpoint(path)  # trained in float32, run in float64
    assert calc.species == list(task.spec.extras["species"]) and next(calc.model.parameters()).dtype == torch.float64
    model, _ = load_trained(path)
    batch = task.test.batch([0])
    atoms = _atoms_of(batch, calc.species)
    atoms.calc = calc
    with torch.no_grad():
        out = model.double()(batch)  # the same weights, in physical units (atom energies added)
    assert atoms.get_potential_energy() == pytest.approx(float(out[K.ENERGY]), rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), out[K.FORCES].numpy(), rtol=1e-9, atol=1e-10)
    calc32 = IrrepnetCalculator.from_checkpoint(path, dtype="float32")
    atoms.calc = calc32
    assert atoms.get_potential_energy() == pytest.approx(float(out[K.ENERGY]), rel=1e-5)


def _atoms_of(batch, species):
    from ase import Atoms

    kinds = batch[K.SPECIES_ONEHOT].argmax(1).tolist()
    return Atoms([species[k] for k in kinds], positions=batch[K.POS].double().numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_gives_the_cpu_numbers(egnn):
    atoms = ethane()
    atoms.calc = calculator(egnn)
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    model = build_model("egnn", task_spec("molecules", species=SPECIES), SMALL).double()
    model.load_state_dict(egnn.state_dict())
    atoms.calc = calculator(model, device="cuda")
    assert atoms.get_potential_energy() == pytest.approx(e, rel=1e-9)
    np.testing.assert_allclose(atoms.get_forces(), f, rtol=1e-8, atol=1e-10)


def test_without_ase_the_class_is_a_missing_dependency_with_the_install_command(monkeypatch):
    import irrepnet.calculator as C

    for name in [m for m in list(sys.modules) if m == "ase" or m.startswith("ase.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(C.__dict__, "IrrepnetCalculator", raising=False)  # made again on this access
    with pytest.raises(MissingDependencyError, match=r"pip install 'irrepnet\[ase\]'$") as err:
        C.IrrepnetCalculator  # noqa: B018
    assert err.value.package == "ase" and "\n" not in str(err.value)
