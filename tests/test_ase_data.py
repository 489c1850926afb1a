"""Data in and out through ASE: trajectories from any file ase.io reads, the energy task, extxyz written back.

The references are independent of the code under test: frames are written with ASE's own
``ase.io.write`` (not irrepnet's writer), the baselines of an extxyz file are compared with
those of the same frames saved as ``.npz`` (the path that existed before), energies and
forces with ASE's EMT calculator's, and what irrepnet writes is read back with ``ase.io.read``.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from irrepnet import keys as K
from irrepnet.cli import main
from irrepnet.registry import module_available

pytestmark = [
    pytest.mark.skipif(not module_available("ase"), reason="reading files through ASE needs ase"),
    pytest.mark.usefixtures("one_torch_thread"),
]

TINY = ["--epochs", "1", "--max-steps", "2", "--batch-size", "4", "--set", "progress=false", "--threads", "1"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _emt_frames(n=20, seed=0, names=("CH4", "H2O", "NH3", "C2H6"), periodic_every=0):
    """``n`` displaced molecules (and every ``periodic_every``-th frame a Cu cell) labelled by ASE's EMT."""
    from ase.build import bulk, molecule
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        periodic = periodic_every and i % periodic_every == 0
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True) if periodic else molecule(names[i % len(names)])
        atoms.positions += 0.05 * rng.standard_normal(atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress() if periodic else None
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def mol_file(tmp_path_factory):
    import ase.io

    path = tmp_path_factory.mktemp("mol") / "mol.extxyz"
    ase.io.write(path, _emt_frames())
    return path


# --- 1. trajectories --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference_extxyz(tmp_path_factory):
    """The shipped reference trajectory written by ase.io.write, and the same frames read back as .npz."""
    import ase
    import ase.io

    from irrepnet.data import reference_trajectory, save_trajectory

    folder = tmp_path_factory.mktemp("ref")
    x = reference_trajectory()
    ase.io.write(folder / "run.extxyz", [ase.Atoms(f"X{x.shape[1]}", positions=p) for p in x])
    back = np.stack([a.positions for a in ase.io.read(folder / "run.extxyz", index=":")])  # ASE's own reading
    save_trajectory(folder / "run.npz", back)
    return folder / "run.extxyz", folder / "run.npz", x


def test_an_extxyz_trajectory_gives_the_baselines_of_the_same_frames_as_npz(reference_extxyz, capsys):
    from irrepnet.data import REFERENCE_BASELINES, file_sha256
    from irrepnet.data.baselines import evaluate_baselines
    from irrepnet.tasks import load_task

    xyz, npz, x = reference_extxyz
    a, b = (load_task("twelve_body", data=str(f), history=2) for f in (xyz, npz))
    assert np.array_equal(a.test.arrays()[K.POS].numpy(), b.test.arrays()[K.POS].numpy())
    ours, theirs = evaluate_baselines(a.test), evaluate_baselines(b.test)
    assert ours == theirs  # the same frames, bit for bit
    # extxyz keeps 8 decimals: the baselines of the rounded frames stay those of the shipped file
    for name, mse in ours.items():
        assert mse == pytest.approx(REFERENCE_BASELINES[name], rel=1e-5), name
    assert a.identity["sha256"] == file_sha256(xyz) and a.identity["kind"] == "file"
    # and through the command line: the same table
    tables = []
    for f in (xyz, npz):
        code, out, err = run(capsys, "baselines", "--data", f)
        assert code == 0, err
        tables.append(out.splitlines()[1:])
    assert tables[0] == tables[1] and len(tables[0]) == 3


def test_train_on_an_extxyz_trajectory_equals_train_on_its_npz(reference_extxyz, tmp_path, capsys):
    xyz, npz, _ = reference_extxyz
    metrics = []
    for f in (xyz, npz):
        out = tmp_path / f.suffix[1:]
        argv = ["train", "--model", "radial-field", "--data", f, "--out", out, *TINY, "--model-set", "hidden=8"]
        code, _, err = run(capsys, *argv)
        assert code == 0, err
        metrics.append(json.loads((out / "metrics.json").read_text()))
    for key in ("test_mse", "mse_vs_zero", "r2", "steps"):
        assert metrics[0][key] == metrics[1][key], key


def _write(path, frames, **kw):
    import ase.io

    ase.io.write(path, frames, **kw)
    return path


def _chain(T=6, N=4, seed=0):
    import ase

    x = np.cumsum(np.random.default_rng(seed).standard_normal((T, N, 3)) * 0.1, axis=0)
    return [ase.Atoms(f"C{N}", positions=p) for p in x], x


def test_velocities_from_the_file_or_finite_differences(tmp_path):
    from irrepnet.data.ase_io import load_ase_trajectory

    frames, x = _chain()
    for t, a in enumerate(frames):
        a.info["time"] = 0.5 * t
    no_vel = load_ase_trajectory(_write(tmp_path / "t.extxyz", frames))
    assert no_vel.time_step == 0.5 and no_vel.velocity_source == "finite differences"
    expect = (x[2] - x[0]) / (2 * 0.5)  # central difference at frame 1
    np.testing.assert_allclose(no_vel.velocities[1], expect, atol=1e-7)
    np.testing.assert_allclose(no_vel.velocities[0], (x[1] - x[0]) / 0.5, atol=1e-7)
    v = np.random.default_rng(1).standard_normal(x.shape)
    for a, vt in zip(frames, v):
        a.set_velocities(vt)  # ASE's momenta
    got = load_ase_trajectory(_write(tmp_path / "m.extxyz", frames))
    assert got.velocity_source == "file"
    np.testing.assert_allclose(got.velocities, v, atol=1e-6)
    for a, vt in zip(frames, v):
        del a.arrays["momenta"]
        a.arrays["vel"] = vt * 2
    got = load_ase_trajectory(_write(tmp_path / "v.extxyz", frames), time_step=0.1)
    assert got.velocity_source == "file" and got.time_step == 0.1 and got.time_step_source == "--time-step"
    np.testing.assert_allclose(got.velocities, 2 * v, atol=1e-7)


def test_a_time_step_from_dt_info_and_the_refusal_without_one(tmp_path):
    from irrepnet.data.ase_io import load_ase_trajectory

    frames, _ = _chain()
    path = _write(tmp_path / "plain.extxyz", frames)
    with pytest.raises(ValueError, match="no velocities and no time step.*pass --time-step"):
        load_ase_trajectory(path)
    assert load_ase_trajectory(path, velocities=False).velocities is None  # the displacement task needs none
    for a in frames:
        a.info["dt"] = 2.0
    assert load_ase_trajectory(_write(tmp_path / "dt.extxyz", frames)).time_step == 2.0
    for t, a in enumerate(frames):  # a step counter, as ASE's LAMMPS reader stores it, is no time step
        del a.info["dt"]
        a.info["timestep"] = 10 * t
    with pytest.raises(ValueError, match="no velocities and no time step"):
        load_ase_trajectory(_write(tmp_path / "counter.extxyz", frames))
    for t, a in enumerate(frames):
        a.info["time"] = float(t * t)
    with pytest.raises(ValueError, match="not evenly spaced"):
        load_ase_trajectory(_write(tmp_path / "uneven.extxyz", frames))


def test_wrapped_periodic_coordinates_are_unwrapped(tmp_path):
    import ase

    from irrepnet.data.ase_io import load_ase_trajectory

    rng = np.random.default_rng(2)
    cell = np.array([[5.0, 0.0, 0.0], [1.0, 4.0, 0.0], [0.0, 0.0, 6.0]])  # not orthogonal
    x = 2.5 + np.cumsum(rng.standard_normal((8, 3, 3)) * 0.8, axis=0)  # wanders through several cells
    frames = []
    for t, p in enumerate(x):
        a = ase.Atoms("C3", positions=p, cell=cell, pbc=True, info={"time": float(t)})
        a.wrap()  # as MD codes store them
        frames.append(a)
    path = _write(tmp_path / "wrapped.traj", frames)
    stored = load_ase_trajectory(path, unwrap=False).positions
    assert np.abs(np.diff(stored, axis=0)).max() > 2.0  # jumps by a cell vector
    got = load_ase_trajectory(path)
    np.testing.assert_allclose(got.positions - got.positions[0], x - x[0], atol=1e-10)
    np.testing.assert_allclose(got.velocities[3], (x[4] - x[2]) / 2.0, atol=1e-10)


def test_a_lammps_dump_with_velocities(tmp_path):
    from irrepnet.data.ase_io import load_ase_trajectory

    box = "ITEM: BOX BOUNDS pp pp pp\n0 10\n0 10\n0 10\n"
    text = ""
    for step in range(3):
        atoms = f"1 1 {1.0 + 0.1 * step} 1.0 1.0 0.1 0 0\n2 1 2.0 {2.0 + 0.1 * step} 2.0 0 0.1 0\n"
        text += (
            f"ITEM: TIMESTEP\n{10 * step}\nITEM: NUMBER OF ATOMS\n2\n{box}ITEM: ATOMS id type x y z vx vy vz\n{atoms}"
        )
    (tmp_path / "dump.lammpstrj").write_text(text)
    got = load_ase_trajectory(tmp_path / "dump.lammpstrj")
    np.testing.assert_allclose(got.positions[:, 0], [[1.0, 1.0, 1.0], [1.1, 1.0, 1.0], [1.2, 1.0, 1.0]], atol=1e-12)
    assert got.velocity_source == "file" and got.time_step is None  # "timestep" there counts steps
    # LAMMPS metal units (A/ps) in ASE's time unit: 0.1 A/ps = 0.1 x (ASE's unit in ps) per ASE unit
    from ase.units import fs

    np.testing.assert_allclose(got.velocities[1, 0], [0.1 * 1e-3 / fs, 0.0, 0.0], rtol=1e-6)


def test_a_trajectory_through_the_ase_traj_format(tmp_path):
    from irrepnet.data import load_trajectory

    frames, x = _chain()
    got = load_trajectory(_write(tmp_path / "run.traj", frames))
    np.testing.assert_array_equal(got, x)  # .traj keeps every bit


@pytest.mark.parametrize(
    "change, match",
    [
        ("ragged", r"frame 2 has 3 atoms but frame 0 has 4"),
        ("numbers", r"atomic numbers change at frame 3 \(atom 1: 6 -> 8\)"),
        ("nan", "NaN or Inf"),
        ("one", r"T=1 frame\(s\); at least 2"),
        ("static", "has no motion"),
    ],
)
def test_bad_trajectories_are_refused_in_one_line(tmp_path, change, match):
    from irrepnet.data import load_trajectory

    frames, _ = _chain()
    if change == "ragged":
        del frames[2][3]
    elif change == "numbers":
        frames[3].numbers[1] = 8
    elif change == "nan":
        frames[4].positions[0, 0] = np.nan
    elif change == "one":
        frames = frames[:1]
    elif change == "static":
        frames = [frames[0].copy() for _ in range(5)]
    with pytest.raises(ValueError, match=match) as info:
        load_trajectory(_write(tmp_path / "bad.extxyz", frames))
    assert "\n" not in str(info.value)


def test_unreadable_files_and_a_missing_ase(tmp_path, monkeypatch):
    from irrepnet.data import load_trajectory
    from irrepnet.optional import MissingDependencyError

    (tmp_path / "x.extxyz").write_text("3\nnot a header\nH 0 0\n")
    with pytest.raises(ValueError, match="ase.io cannot read it"):
        load_trajectory(tmp_path / "x.extxyz")
    for name in [m for m in sys.modules if m == "ase" or m.startswith("ase.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ase", None)  # import ase now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'irrepnet\[ase\]'"):
        load_trajectory(tmp_path / "x.extxyz")


# --- 2. the energy task ---------------------------------------------------------------------
def test_energies_and_forces_are_those_of_the_calculator(mol_file):
    import ase.io

    from irrepnet.tasks import load_task

    task = load_task("energy", data=str(mol_file), valid_fraction=0.2, test_fraction=0.2)
    assert task.spec.extras == {"forces": True, "species": ["H", "C", "N", "O"], "periodic": False}
    assert str(task.spec.inputs[K.SPECIES_ONEHOT]) == "4x0e" and task.spec.target == K.ENERGY
    frames = ase.io.read(mol_file, index=":")
    for ds in (task.train, task.valid, task.test):
        for i, f in enumerate(ds.frames):
            sample = ds[i]
            assert float(sample[K.TARGET_ENERGY]) == pytest.approx(frames[f].get_potential_energy(), abs=1e-12)
            np.testing.assert_allclose(sample[K.TARGET_FORCES].numpy(), frames[f].get_forces(), atol=1e-12)
            symbols = np.array(task.spec.extras["species"])[sample[K.SPECIES_ONEHOT].argmax(-1).numpy()]
            assert symbols.tolist() == frames[f].get_chemical_symbols()
            assert sample[K.CELL].shape == (1, 3, 3) and not sample[K.CELL].any()  # non-periodic: zero cell
            assert sample[K.PBC].dtype == torch.bool and sample[K.PBC].shape == (1, 3) and not sample[K.PBC].any()


def test_splits_are_seeded_disjoint_and_cover_the_file(mol_file, tmp_path):
    import ase.io

    from irrepnet.tasks import load_task

    task = load_task("energy", data=str(mol_file), valid_fraction=0.2, test_fraction=0.1, seed=3)
    sizes = [len(task.train), len(task.valid), len(task.test)]
    assert sizes == [14, 4, 2]
    frames = np.concatenate([task.train.frames, task.valid.frames, task.test.frames])
    assert sorted(frames.tolist()) == list(range(20))
    again = load_task("energy", data=str(mol_file), valid_fraction=0.2, test_fraction=0.1, seed=3)
    other = load_task("energy", data=str(mol_file), valid_fraction=0.2, test_fraction=0.1, seed=4)
    assert np.array_equal(again.test.frames, task.test.frames)
    assert not np.array_equal(other.train.frames, task.train.frames)
    # separate files: the validation and test frames are those files', the species their union
    test_file = _write(tmp_path / "test.extxyz", _emt_frames(3, seed=9, names=("CO",)))
    apart = load_task("energy", data=str(mol_file), test_data=str(test_file), valid_fraction=0.25)
    assert [len(apart.train), len(apart.valid), len(apart.test)] == [15, 5, 3]
    assert apart.test.source == str(test_file)
    assert float(apart.test[0][K.TARGET_ENERGY]) == pytest.approx(
        ase.io.read(test_file, index=0).get_potential_energy()
    )
    assert apart.identity["sha256"] != task.identity["sha256"] and set(apart.identity["files"]) == {"data", "test_data"}
    with pytest.raises(ValueError, match="either --test-fraction or --test-data"):
        load_task("energy", data=str(mol_file), test_data=str(test_file), test_fraction=0.1)
    two = _write(tmp_path / "two.extxyz", _emt_frames(2))
    with pytest.raises(ValueError, match="2 frames leave none to train on after 1 test and 1 validation"):
        load_task("energy", data=str(two))


def test_custom_keys_and_the_missing_key_error(tmp_path):
    import ase.io

    from irrepnet.tasks import load_task

    frames = _emt_frames(10)
    for a in frames:
        a.info["REF_energy"] = a.get_potential_energy() + 1.0
        a.arrays["REF_forces"] = a.get_forces() * 2
        a.calc = None  # only the custom keys hold labels
    path = _write(tmp_path / "ref.extxyz", frames)
    task = load_task("energy", data=str(path), energy_key="REF_energy", forces_key="REF_forces")
    f = task.train.frames[0]
    assert float(task.train[0][K.TARGET_ENERGY]) == pytest.approx(frames[f].info["REF_energy"])
    np.testing.assert_allclose(task.train[0][K.TARGET_FORCES].numpy(), frames[f].arrays["REF_forces"], atol=1e-8)
    with pytest.raises(ValueError) as info:
        load_task("energy", data=str(path))
    msg = str(info.value)
    assert "frame 0 has no energy under 'energy'" in msg and "'REF_energy'" in msg and "--energy-key" in msg
    assert "'REF_forces'" in msg and "\n" not in msg
    with pytest.raises(ValueError, match="no forces under 'forces'.*--forces-key"):
        load_task("energy", data=str(path), energy_key="REF_energy")
    assert ase.io.read(path).calc is None


def test_non_finite_labels_name_their_frame(tmp_path):
    from irrepnet.tasks import load_task

    frames = _emt_frames(6)
    for a in frames:
        a.info["E"], a.arrays["F"], a.calc = a.get_potential_energy(), a.get_forces(), None
    frames[4].arrays["F"][1, 2] = np.nan
    frames[2].info["E"] = np.inf
    path = _write(tmp_path / "nan.extxyz", frames)
    with pytest.raises(ValueError, match="frame 4 has NaN or Inf forces"):
        load_task("energy", data=str(path), energy_key="E", forces_key="F")
    frames[4].arrays["F"][1, 2] = 0.0
    with pytest.raises(ValueError, match="frame 2 has NaN or Inf energy"):
        load_task("energy", data=str(_write(tmp_path / "inf.extxyz", frames)), energy_key="E", forces_key="F")


def test_a_periodic_file_carries_cell_pbc_and_stress(tmp_path):
    import ase.io

    from irrepnet.tasks import load_task

    frames = _emt_frames(12, periodic_every=3)
    path = _write(tmp_path / "cu.extxyz", frames)
    task = load_task("energy", data=str(path), stress_key="stress", valid_fraction=0.25, test_fraction=0.25)
    assert task.spec.extras["periodic"] is True and task.spec.extras["species"] == ["H", "C", "N", "O", "Cu"]
    read = ase.io.read(path, index=":")
    seen_periodic = 0
    for ds in (task.train, task.valid, task.test):
        batch = ds.batch(None)
        assert batch[K.CELL].shape == (len(ds), 3, 3) and batch[K.PBC].shape == (len(ds), 3)
        for i, f in enumerate(ds.frames):
            np.testing.assert_allclose(batch[K.CELL][i].numpy(), read[f].cell[:], atol=1e-12)
            assert batch[K.PBC][i].tolist() == read[f].pbc.tolist()
            if read[f].pbc.any():
                seen_periodic += 1
                np.testing.assert_allclose(
                    batch[K.TARGET_STRESS][i].numpy(), read[f].get_stress(voigt=False), atol=1e-10
                )
            else:  # molecules carry a stress of zero: EMT gives none
                assert not batch[K.TARGET_STRESS][i].any()
    assert seen_periodic == 4


def test_train_the_energy_task_from_the_command_line_and_write_predictions(mol_file, tmp_path, capsys):
    import ase.io

    from irrepnet.metrics import predict_energy_forces
    from irrepnet.tasks import load_task
    from irrepnet.train import load_trained
    from irrepnet.train.data_record import task_of_checkpoint

    out, pred = tmp_path / "r", tmp_path / "pred.extxyz"
    code, text, err = run(
        capsys, "train", "--model", "egnn", "--task", "energy", "--data", mol_file, "--out", out, *TINY,
        "--valid-fraction", "0.2", "--test-fraction", "0.2", "--write-extxyz", pred,
    )  # fmt: skip
    assert code == 0, err
    assert "test MAE energy" in text and f"wrote {pred}" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "energy" and metrics["steps"] == 2
    # the checkpoint reloads its file, keys and split, and the written numbers are its predictions
    model, ck = load_trained(out / "best.pt")
    task = task_of_checkpoint(ck, out / "best.pt")
    fresh = load_task("energy", data=str(mol_file), valid_fraction=0.2, test_fraction=0.2)
    assert np.array_equal(task.test.frames, fresh.test.frames) and task.identity["sha256"] == fresh.identity["sha256"]
    p = predict_energy_forces(model, task.test)
    frames = ase.io.read(pred, index=":")
    assert len(frames) == len(task.test) == 4
    counts = np.cumsum(p["num_nodes"])[:-1]
    for a, e, et, fp, ft in zip(
        frames,
        p["energy_pred"],
        p["energy_true"],
        np.split(p["forces_pred"], counts),
        np.split(p["forces_true"], counts),
    ):
        assert a.get_potential_energy() == pytest.approx(e, abs=1e-9)
        assert a.info["ref_energy"] == pytest.approx(et, abs=1e-9)
        np.testing.assert_allclose(a.get_forces(), fp, atol=1e-8)  # extxyz keeps 8 decimals
        np.testing.assert_allclose(a.arrays["ref_forces"], ft, atol=1e-8)
    reference = ase.io.read(mol_file, index=":")
    assert [a.get_chemical_symbols() for a in frames] == [reference[f].get_chemical_symbols() for f in task.test.frames]
    code, text, err = run(capsys, "audit", "--checkpoint", out / "best.pt")
    assert code == 0 and "rotation" in text, err


def test_energy_options_on_other_tasks_are_refused(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--model", "egnn", "--energy-key", "E", "--out", tmp_path / "x")
    assert code == 2 and "energy_key: options of the energy task" in err
    code, _, err = run(capsys, "train", "--model", "egnn", "--task", "energy", "--out", tmp_path / "x")
    assert code == 2 and "give --data FILE" in err


# --- 3. a suite -----------------------------------------------------------------------------
def test_a_suite_of_the_energy_task_names_its_file_and_keys(mol_file, tmp_path, capsys):
    import shutil

    folder = tmp_path / "suite"
    folder.mkdir()
    shutil.copy(mol_file, folder / "frames.extxyz")
    (folder / "mine.toml").write_text(
        '[suite]\nname = "mine"\ntask = "energy"\ndata = "frames.extxyz"\nenergy_key = "energy"\n'
        'forces_key = "forces"\nvalid_fraction = 0.2\ntest_fraction = 0.2\nsplit_seed = 1\n'
        'models = ["egnn", "egnn-small"]\nbootstrap_resamples = 100\n'
        "[train]\nmax_steps = 2\nepochs = 1\nbatch_size = 4\nprogress = false\n"
        '[models.egnn-small]\nmodel = "egnn"\nconfig = { hidden = 8 }\n'  # two fast rows
    )
    from irrepnet.bench import load_suite

    energy_models = ["egnn", "egnn-small"]
    suite = load_suite(str(folder / "mine.toml"))
    assert suite.task_options()["data"] == str(folder / "frames.extxyz")
    out = tmp_path / "b"
    code, _, err = run(capsys, "bench", "--suite", folder / "mine.toml", "--out", out, "--threads", "1")
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    group = results["groups"][0]
    assert [r["name"] for r in group["rows"]] == ["atom energies", *energy_models]
    assert group["data"]["source"] == str(folder / "frames.extxyz")
    # without a suite file: --task energy --models, the keys and split from the command line
    code, _, err = run(
        capsys, "bench", "--task", "energy", "--models", "egnn", "--data", mol_file, "--energy-key", "energy",
        "--test-fraction", "0.2", "--split-seed", "1", "--out", tmp_path / "adhoc", *TINY,
    )  # fmt: skip
    assert code == 0, err
    group = json.loads((tmp_path / "adhoc" / "results.json").read_text())["groups"][0]
    assert group["data"]["source"] == str(mol_file) and group["sizes"]["test"] == 4
    (folder / "bad.toml").write_text('[suite]\nname = "bad"\ntask = "energy"\nmodels = ["egnn"]\n')
    code, _, err = run(capsys, "bench", "--suite", folder / "bad.toml", "--out", tmp_path / "c")
    assert code == 2 and 'data = "path/to/file.extxyz"' in err
    (folder / "bad2.toml").write_text('[suite]\nname = "bad2"\ntask = "molecules"\nenergy_key = "E"\n')
    code, _, err = run(capsys, "bench", "--suite", folder / "bad2.toml", "--out", tmp_path / "c")
    assert code == 2 and "energy_key" in err and "drop them" in err


# --- 4. writing back ------------------------------------------------------------------------
def test_write_extxyz_reads_back_with_the_same_numbers(tmp_path):
    import ase.io

    from irrepnet.data.ase_io import write_extxyz

    rng = np.random.default_rng(0)
    pos = [rng.standard_normal((n, 3)) for n in (3, 5)]
    forces = [rng.standard_normal((n, 3)) for n in (3, 5)]
    vel = [rng.standard_normal((n, 3)) for n in (3, 5)]
    cell = np.stack([np.eye(3) * 4, np.zeros((3, 3))])
    pbc = np.array([[True, True, True], [False, False, False]])
    path = write_extxyz(
        tmp_path / "o.extxyz", pos, numbers=[[1, 1, 8], [6, 1, 1, 1, 1]], energy=[-1.25, 3.5], forces=forces,
        velocities=vel, cell=cell, pbc=pbc, time=[0.0, 0.5], info={"ref_energy": [1.0, 2.0]},
        arrays={"ref_forces": forces},
    )  # fmt: skip
    back = ase.io.read(path, index=":")
    assert [a.get_chemical_formula() for a in back] == ["H2O", "CH4"]
    for t, a in enumerate(back):
        np.testing.assert_allclose(a.positions, pos[t], atol=5e-9)
        np.testing.assert_allclose(a.get_forces(), forces[t], atol=5e-9)
        np.testing.assert_allclose(a.arrays["ref_forces"], forces[t], atol=5e-9)
        np.testing.assert_allclose(a.get_velocities(), vel[t], atol=1e-7)
        np.testing.assert_allclose(a.cell[:], cell[t])
        assert a.pbc.tolist() == pbc[t].tolist() and a.info["time"] == [0.0, 0.5][t]
    assert [a.get_potential_energy() for a in back] == [-1.25, 3.5] and back[1].info["ref_energy"] == 2.0
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_extxyz(path, pos)
    with pytest.raises(ValueError, match="energy has 1 frames, positions have 2"):
        write_extxyz(tmp_path / "p.extxyz", pos, energy=[1.0])


def test_a_rollout_written_from_the_command_line(reference_extxyz, tmp_path, capsys):
    import ase.io

    xyz, _, x = reference_extxyz
    out, roll = tmp_path / "r", tmp_path / "roll.extxyz"
    code, text, err = run(
        capsys, "train", "--model", "radial-field", "--data", xyz, "--out", out, *TINY,
        "--model-set", "hidden=8", "--model-set", "layers=1", "--time-step", "0.25", "--write-extxyz", roll,
    )  # fmt: skip
    assert code == 0, err
    frames = ase.io.read(roll, index=":")
    first = frames[0].info["frame"]
    assert first == 1637 and len(frames) == 2048 - first  # from the first test frame to the last frame
    np.testing.assert_allclose(frames[0].positions, x[first], atol=5e-9)  # the rollout starts on the truth
    np.testing.assert_allclose(frames[-1].arrays["ref_positions"], x[-1], atol=5e-9)
    assert [a.info["time"] for a in frames[:3]] == [first * 0.25, (first + 1) * 0.25, (first + 2) * 0.25]
    assert not np.allclose(frames[5].positions, x[first + 5], atol=1e-9)  # the model's, not the truth
