"""The catalogue of bad inputs (issue 25, items 4-6): each case's exit status and first line of stderr.

Every case was once a traceback, a misleading one-liner or a silent change. Each is run
through the CLI's ``main()`` (the same code path as the ``irrepnet`` command, faster than a
subprocess) and pinned here by its exit status (2: the user's input) and the first line it
writes to stderr, so that it stays mended. The folder lock's cases (item 3) are in
``test_runlock.py``; this file holds one of them too, so that the catalogue is complete.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest

import irrepnet.data.reference as reference
from irrepnet.cli import main
from irrepnet.runlock import LOCK_NAME

REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv: str) -> tuple[int, str, list[str]]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def refused(capsys, *argv: str) -> str:
    """The first line of stderr of a command that must end with exit status 2."""
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert err, "no message"
    return err[0]


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """300 frames of the shipped reference trajectory: small enough to train in seconds."""
    with np.load(Path(reference.__file__).with_name("polymer12.npz")) as f:
        return f["arr"][:300]


def _npz(folder: Path, name: str, arr: np.ndarray) -> Path:
    path = folder / name
    np.savez(path, arr=arr)
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, frames):
    """A finished one-epoch training run of radial-field on 300 frames: ``(folder, data file)``."""
    folder = tmp_path_factory.mktemp("run")
    data = _npz(folder, "small.npz", frames)
    assert (
        main(["train", "--model", "radial-field", "--data", str(data), "--epochs", "1", "--out", str(folder / "r")])
        == 0
    )
    return folder / "r", data


# --- 4. tracebacks ----------------------------------------------------------------------------


def test_static_trajectory(tmp_path, capsys, frames):
    data = _npz(tmp_path, "static.npz", np.repeat(frames[:1], 50, axis=0))
    first = refused(capsys, "train", "--model", "egnn", "--data", data, "--max-steps", "1", "--out", tmp_path / "r")
    assert first == (
        f"irrepnet: error: {data} has no motion: all 50 frames hold the same positions, so there is no "
        "displacement to learn or score; give a trajectory whose frames differ"
    )
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.parametrize("command", [["train", "--model", "egnn", "--max-steps", "1"], ["baselines"]])
def test_coordinates_times_1e30(tmp_path, capsys, frames, command):
    data = _npz(tmp_path, "huge.npz", frames[:20] * 1e30)
    argv = [*command, "--data", data] + (["--out", tmp_path / "r"] if command[0] == "train" else [])
    first = refused(capsys, *argv)
    assert first.startswith(f"irrepnet: error: {data} has coordinates up to 1.")
    assert "squared distances overflow float32" in first and "below 1e+15" in first


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_learning_rate(tmp_path, capsys, value):
    first = refused(capsys, "train", "--model", "egnn", f"--lr={value}", "--out", tmp_path / "r")
    assert first == f"irrepnet: error: training config: lr must be a finite number, got {float(value)!r}"


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--model", "egnn", "--max-steps", "1"],
        ["bench", "--task", "twelve_body", "--models", "egnn", "--max-steps", "1"],
    ],
    ids=["train", "bench"],
)
def test_out_names_an_existing_file(tmp_path, capsys, argv):
    path = tmp_path / "results.txt"
    path.write_text("keep me")
    first = refused(capsys, *argv, "--out", path)
    assert first == f"irrepnet: error: --out {path} is a file, not a folder; give a folder path for --out"
    assert path.read_text() == "keep me"


def test_training_that_diverges_ends_in_one_line(tmp_path, capsys, frames):
    data = _npz(tmp_path, "small.npz", frames[:120])
    argv = ["train", "--model", "radial-field", "--data", data, "--lr", "1e30", "--set", "clip_grad_norm=1e30"]
    first = refused(capsys, *argv, "--max-steps", "4", "--out", tmp_path / "r")
    assert re.fullmatch(r"irrepnet: error: training loss is (nan|inf) at step [1-3]; lower the learning rate.*", first)


# --- 5. misleading one-liners ------------------------------------------------------------------


def test_force_difference_with_a_velocity_model(tmp_path, capsys):
    first = refused(
        capsys, "train", "--model", "egnn-vel", "--residual", "force_difference", "--max-steps", "1", "--out", tmp_path
    )
    assert first == (
        "irrepnet: error: residual 'force_difference' builds the model as a force field of the positions alone "
        "(no velocities, whatever the history), and 'egnn-vel' cannot be one (egnn-vel needs a velocity input): "
        "use residual 'constant_velocity' or 'constant_acceleration' with it, or a model of positions alone such "
        "as egnn"
    )
    assert "history >=" not in first  # the old hint asked for history it already had


def test_learning_rate_that_is_not_a_number(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('[train]\nlr = "fast"\n')
    first = refused(capsys, "train", "--model", "egnn", "--config", config, "--out", tmp_path / "r")
    assert first == "irrepnet: error: training config: lr must be a finite number, got 'fast'"


def test_binary_gdb9_sdf_is_named(tmp_path, capsys):
    folder = tmp_path / "qm9"
    folder.mkdir()
    (folder / "gdb9.sdf").write_bytes(bytes(range(256)) * 8)
    (folder / "gdb9.sdf.csv").write_text("mol_id,A\n")
    (folder / "uncharacterized.txt").write_text("\n")
    first = refused(capsys, "train", "--model", "egnn", "--task", "qm9", "--data", folder, "--out", tmp_path / "r")
    assert first.startswith(f"irrepnet: error: {folder / 'gdb9.sdf'} is not a text file (byte ")
    assert "replace it with the raw QM9 file" in first


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))  # what a malicious pickle would run


def test_malicious_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    evil, marker = tmp_path / "evil.pt", tmp_path / "ran"
    evil.write_bytes(pickle.dumps({"model_state": _Payload(marker)}, protocol=2))  # torch.load reads plain pickles too
    code, _, err = run(capsys, "audit", "--checkpoint", evil)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"irrepnet: error: {evil} is refused: it holds Python objects (")
    assert "weights_only=False" not in err[0]
    assert not marker.exists()  # nothing it carries ran


def test_checkpoint_that_is_a_folder(capsys, finished_run):
    folder, _ = finished_run
    first = refused(capsys, "audit", "--checkpoint", folder)
    assert first == (
        f"irrepnet: error: checkpoint {folder} is a folder; pass a checkpoint file in it: "
        f"{folder / 'best.pt'} or {folder / 'last.pt'}"
    )


def test_truncated_last_pt_on_resume_offers_overwrite(tmp_path, capsys, finished_run):
    folder, data = finished_run
    copy = tmp_path / "r"
    copy.mkdir()
    for item in folder.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    last = copy / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    first = refused(
        capsys, "train", "--model", "radial-field", "--data", data, "--epochs", "2", "--resume", "--out", copy
    )
    assert first.startswith(f"irrepnet: error: cannot resume: {last} is not a readable irrepnet checkpoint")
    assert first.endswith("start the run over with --overwrite, or put back a copy of last.pt")


def test_simulate_says_the_option(tmp_path, capsys):
    out = tmp_path / "traj.npz"
    out.write_bytes(b"x")
    first = refused(capsys, "simulate", "polymer", "--out", out, "--frames", "8")
    assert first == f"irrepnet: error: {out} exists; pass --overwrite to replace it"
    assert out.read_bytes() == b"x"


# --- 6. options changed without notice ----------------------------------------------------------


def test_steps_per_epoch_beyond_one_pass_is_announced_and_recorded(tmp_path, capsys, frames):
    data = _npz(tmp_path, "small.npz", frames[:120])
    config = tmp_path / "run.toml"
    config.write_text("[train]\nsteps_per_epoch = 100\nepochs = 1\nbatch_size = 32\n")
    argv = ["train", "--model", "radial-field", "--data", data, "--config", config, "--out", tmp_path / "r"]
    code, _, err = run(capsys, *argv)
    assert code == 0
    announced = [line for line in err if "steps_per_epoch" in line]
    assert len(announced) == 1  # once
    assert re.fullmatch(
        r"irrepnet: warning: steps_per_epoch = 100 is more than one pass over the \d+ training samples "
        r"in batches of 32: an epoch runs 3 steps",
        announced[0],
    )
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["notices"] == [announced[0].removeprefix("irrepnet: warning: ")] and metrics["steps"] == 3


def test_resume_with_more_epochs_says_how_many_it_adds(tmp_path, capsys, finished_run):
    folder, data = finished_run
    copy = tmp_path / "r"
    copy.mkdir()
    for item in folder.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    code, _, err = run(
        capsys, "train", "--model", "radial-field", "--data", data, "--epochs", "3", "--resume", "--out", copy
    )
    assert code == 0
    assert [line for line in err if "resuming" in line] == [
        f"irrepnet: warning: resuming {copy / 'last.pt'} with epochs = 3 instead of 1 (1 done): it adds 2 epochs"
    ]
    assert json.loads((copy / "metrics.json").read_text())["epochs"] == 3


def test_default_data_is_called_what_it_is(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: the shipped reference trajectory" in help_text
    assert "built-in polymer simulator" not in help_text


@pytest.mark.repo
def test_makefile_calls_the_default_data_what_it_is():
    text = (REPO / "Makefile").read_text()
    assert "of the shipped reference trajectory" in text and "built-in simulator" not in text


# --- files read through ASE (irrepnet.data.ase_io, irrepnet.data.energy_files) ----------------------


def _extxyz(path: Path, frames) -> Path:
    ase_io = pytest.importorskip("ase.io")
    ase_io.write(path, frames)
    return path


def test_trajectory_whose_atom_count_changes(tmp_path, capsys, frames):
    ase = pytest.importorskip("ase")
    atoms = [ase.Atoms("X12", positions=np.pad(p, ((0, 0), (0, 1)))) for p in frames[:20]]  # 2-D frames, z = 0
    del atoms[7][11]
    data = _extxyz(tmp_path / "ragged.extxyz", atoms)
    first = refused(capsys, "train", "--model", "egnn", "--data", data, "--max-steps", "1", "--out", tmp_path / "r")
    assert first == (
        f"irrepnet: error: {data}: frame 7 has 11 atoms but frame 0 has 12; a trajectory keeps the same atoms in "
        "every frame (split the file where the count changes, or train the energy task on it)"
    )
    assert not (tmp_path / "r").exists()


def test_energy_file_without_the_energy_key_lists_the_keys(tmp_path, capsys):
    ase = pytest.importorskip("ase")
    atoms = ase.Atoms("H2O", positions=np.eye(3))
    atoms.info["REF_energy"] = -1.0
    atoms.arrays["REF_forces"] = np.zeros((3, 3))
    data = _extxyz(tmp_path / "labels.extxyz", [atoms] * 5)
    first = refused(capsys, "train", "--model", "egnn", "--task", "energy", "--data", data, "--out", tmp_path / "r")
    assert first == (
        f"irrepnet: error: {data}: frame 0 has no energy under 'energy'; its info keys are ['REF_energy'], its "
        "per-atom arrays ['REF_forces', 'numbers', 'positions'], its calculator results []; pass --energy-key with "
        "the key that holds the energy"
    )


def test_energy_task_without_data(tmp_path, capsys):
    first = refused(capsys, "train", "--model", "egnn", "--task", "energy", "--out", tmp_path / "r")
    assert first == (
        "irrepnet: error: the energy task reads your frames: give --data FILE, any file ase.io reads with an "
        "energy and forces per frame (.extxyz, .traj...)"
    )


def test_write_extxyz_on_a_task_it_cannot_write_is_refused_before_training(tmp_path, capsys):
    first = refused(
        capsys, "train", "--model", "egnn", "--task", "nbody", "--max-steps", "1",
        "--out", tmp_path / "r", "--write-extxyz", tmp_path / "p.extxyz",
    )  # fmt: skip
    assert first == (
        "irrepnet: error: --write-extxyz writes energies and forces or trajectory rollouts; task 'nbody' predicts "
        "'displacement' without one trajectory to roll out: drop --write-extxyz"
    )
    assert not (tmp_path / "r").exists()


# --- 3. a folder in use (the full cases, with two processes, are in test_runlock.py) ----------------


def test_folder_in_use_names_its_holder(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "started": since}  # a live process, older
    (out / LOCK_NAME).write_text(json.dumps(holder))
    first = refused(capsys, "train", "--model", "egnn", "--max-steps", "1", "--out", out)
    assert first == (
        f"irrepnet: error: --out {out} is in use by another run (pid {os.getppid()} on {socket.gethostname()}, "
        f"since {since}); wait for it to finish or choose another --out"
    )
