"""benchmarks/md_stability.py: its measurements against independent ones, and a few-step run end to end."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from irrepnet.registry import build_model, module_available
from irrepnet.tasks import task_spec

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.repo,  # the script under test is benchmarks/md_stability.py
    pytest.mark.skipif(not module_available("ase"), reason="MD runs through ASE: pip install ase"),
]


@pytest.fixture(scope="module")
def md():
    spec = importlib.util.spec_from_file_location("md_stability_under_test", ROOT / "benchmarks" / "md_stability.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_minimum_image_distances_are_ases(md):
    atoms = md.cu_supercell()
    atoms.rattle(0.2, seed=3)
    i, j = np.triu_indices(len(atoms), 1)
    np.testing.assert_allclose(md.pair_distances(atoms), atoms.get_all_distances(mic=True)[i, j], atol=1e-10)
    mol = md.g2_molecule("CH4")
    np.testing.assert_allclose(md.pair_distances(mol), mol.get_all_distances()[np.triu_indices(5, 1)])


def test_drift_is_the_slope_per_atom_in_ev_per_ns(md):
    run = md.Run("m", "cu", 0, n_atoms=4, timestep_fs=1.0)
    t = np.linspace(0, 2, 21)  # ps
    run.time_ps, run.e_kin = list(t), list(np.zeros_like(t))
    run.e_pot = list(-10 + 0.008 * t + 1e-4 * np.sin(40 * t))  # 8 meV/ps over 4 atoms = 2 eV/atom/ns
    assert md.drift_per_atom_per_ns(run) == pytest.approx(2.0, rel=2e-2)


def test_rdf_of_the_perfect_lattice_peaks_at_the_nearest_neighbour_distance(md):
    system = md.make_system("cu", equilibrate_fs=10)
    assert system.nn_distance == pytest.approx(3.61 / np.sqrt(2), rel=1e-3)  # ASE's a0 of Cu, fcc
    run = md.Run("m", "cu", 0, n_atoms=32, timestep_fs=5.0)
    bins = np.arange(0.0, system.r_max + md.RDF_BIN, md.RDF_BIN)
    run.rdf_counts = np.histogram(md.pair_distances(md.cu_supercell()), bins=bins)[0].astype(float)
    run.rdf_frames = 1
    r, g = md.rdf(run, system)
    position, height = md.first_peak(r, g, system.first_shell)
    assert abs(position - system.nn_distance) <= md.RDF_BIN
    # 12 neighbours per atom in one bin: g = V / (N (N-1)/2) * (N*12/2) / (4 pi r^2 dr)
    volume = md.cu_supercell().get_volume()
    assert height == pytest.approx(volume * 16 * 12 / 496 / (4 * np.pi * position**2 * md.RDF_BIN), rel=1e-9)


def test_bad_checkpoint_arguments_are_one_line_errors(md):
    assert md.parse_checkpoints(["egnn=a/b.pt"]) == [("egnn", Path("a/b.pt"))]
    with pytest.raises(ValueError, match="NAME=PATH"):
        md.parse_checkpoints(["a/b.pt"])
    with pytest.raises(ValueError, match="not a G2 molecule"):
        md.g2_molecule("C60H60")


def test_a_few_steps_of_every_piece_on_a_tiny_model(md, tmp_path):
    from irrepnet.calculator import IrrepnetCalculator

    torch.manual_seed(0)
    species = ("H", "C", "N", "O")
    model = build_model("egnn", task_spec("molecules", species=species), {"hidden": 8, "layers": 1})
    calc = IrrepnetCalculator(model, species)
    systems = {k: md.make_system(k, equilibrate_fs=20) for k in ("cu", "molecule")}
    assert md.covered_systems(species, systems) == ["molecule"] and md.covered_systems(["Cu"], systems) == ["cu"]
    runs = md.benchmark([("tiny", calc, ["molecule"])], systems, steps=20, runs=2, interval=5, log=lambda s: None)
    assert [(r.system, r.model, r.run) for r in runs] == [
        ("cu", "EMT", 0), ("cu", "EMT", 1), ("molecule", "EMT", 0), ("molecule", "EMT", 1),
        ("molecule", "tiny", 0), ("molecule", "tiny", 1),
    ]  # fmt: skip
    emt = [r for r in runs if r.model == "EMT"]
    assert all(r.physical and r.steps == 20 and len(r.time_ps) == 5 for r in emt)
    for r in emt:  # EMT at its own time step conserves energy to far below kT per atom (0.026 eV)
        e = np.asarray(r.e_pot) + np.asarray(r.e_kin)
        assert np.ptp(e) / r.n_atoms < 1e-3
    # both models start from the same equilibrated state
    tiny0, emt0 = runs[4], runs[2]
    assert tiny0.e_kin[0] == pytest.approx(emt0.e_kin[0], rel=1e-12)
    rows = md.summarise(runs, systems)
    assert {(row["system"], row["model"]) for row in rows} == {("cu", "EMT"), ("molecule", "EMT"), ("molecule", "tiny")}
    emt_row = next(row for row in rows if row["model"] == "EMT" and row["system"] == "cu")
    assert emt_row["first_peak_position_rel_diff"] == 0 and emt_row["physical"] == 2
    meta = {"command": "x", "steps": 20, "runs": 2, "dtype": "float64", "interval": 5}
    meta.update(min_distance_factor=0.5, max_temperature_factor=5.0)
    text = md.results_markdown(meta, systems, rows, [])
    assert "| EMT | 2/2 |" in text and "| tiny |" in text
    md.plot_energy(runs, systems, tmp_path / "energy.png")
    assert 0 < (tmp_path / "energy.png").stat().st_size < 150_000
    json.dumps(md.run_to_json(runs[-1]))


def test_a_model_that_blows_up_is_stopped_and_reported(md):
    from ase.calculators.calculator import Calculator, all_changes

    class Repulsive(Calculator):  # pushes every atom outward harder and harder: the run must heat up
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            x = self.atoms.positions - self.atoms.positions.mean(0)
            self.results = {"energy": -50.0 * float((x**2).sum()), "forces": 100.0 * x}

    system = md.make_system("molecule", equilibrate_fs=20)
    start = md.equilibrated_state(system, 0)
    run = md.run_nve(start, Repulsive(), system, steps=2000, interval=5, model="bad")
    assert not run.physical and run.steps < 2000 and "temperature" in run.stopped


def test_the_script_end_to_end_on_a_tiny_checkpoint(md, tmp_path, monkeypatch):
    from conftest import small

    from irrepnet.tasks import load_task
    from irrepnet.train import train_registered

    monkeypatch.setenv("IRREPNET_CACHE", str(tmp_path / "cache"))
    task = load_task("molecules", n_train=8, n_valid=4, n_test=4)
    train_registered("egnn", task, small(epochs=1, steps_per_epoch=2), {"hidden": 8, "layers": 1}, out_dir=tmp_path)
    out = tmp_path / "md"
    argv = ["--checkpoint", f"egnn={tmp_path / 'best.pt'}", "--systems", "molecule", "--steps", "20", "--runs", "1"]
    assert md.main([*argv, "--interval", "5", "--equilibrate-ps", "0.01", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["system"]) for r in res["rows"]] == [("EMT", "molecule"), ("egnn", "molecule")]
    assert res["meta"]["commit"] and res["meta"]["steps"] == 20 and len(res["runs"]) == 2
    assert "egnn" in (out / "results.md").read_text() and (out / "energy.png").exists()


def test_train_makes_one_checkpoint_per_model_and_task(md, tmp_path, monkeypatch):
    import irrepnet.tasks
    from irrepnet.calculator import IrrepnetCalculator

    monkeypatch.setenv("IRREPNET_CACHE", str(tmp_path / "cache"))
    real = irrepnet.tasks.load_task
    monkeypatch.setattr(irrepnet.tasks, "load_task", lambda name: real(name, n_train=8, n_valid=4, n_test=4))
    pairs = md.train_checkpoints(["egnn"], ["molecules"], tmp_path, steps=2)
    assert pairs == [("egnn", tmp_path / "checkpoints" / "egnn-molecules" / "best.pt")]
    assert IrrepnetCalculator.from_checkpoint(pairs[0][1]).species == ["H", "C", "N", "O"]
