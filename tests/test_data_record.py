"""Checkpoints that know their data (issue 25, item 2): recorded, checked on --resume, reused by audit."""

import hashlib
import logging

import pytest

from irrepnet.cli import main
from irrepnet.data import PolymerConfig, save_trajectory, simulate_polymer
from irrepnet.data.identity import describe, file_identity, generated_identity, same_data, split_generator
from irrepnet.train import load_checkpoint, save_atomic
from irrepnet.train.data_record import (
    DataMismatchError,
    check_resumed_data,
    recorded_length_scale,
    task_of_checkpoint,
)

TINY = ["--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--set", "progress=false", "--threads", "1"]
SMALL_RF = ["--model", "radial-field", "--model-set", "hidden=8", "--model-set", "layers=1"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def chains(tmp_path_factory):
    """A 20-bead and a 12-bead trajectory file, small (60 frames)."""
    d = tmp_path_factory.mktemp("chains")
    paths = {}
    for beads, seed in ((20, 0), (12, 1)):
        paths[beads] = d / f"chain{beads}.npz"
        save_trajectory(paths[beads], simulate_polymer(PolymerConfig(n_beads=beads, n_frames=60, seed=seed)))
    return paths


@pytest.fixture(scope="module")
def trained(chains, tmp_path_factory):
    """A run trained (two steps) on the 20-bead file: its folder."""
    out = tmp_path_factory.mktemp("runs") / "rf20"
    code = main(["train", *SMALL_RF, "--data", str(chains[20]), "--out", str(out), *TINY])
    assert code == 0
    return out


def test_checkpoints_record_the_file_and_its_sizes(trained, chains):
    for name in ("best.pt", "last.pt"):
        ck = load_checkpoint(trained / name)
        rec = ck["meta"]["data"]
        assert rec["kind"] == "file" and rec["path"] == str(chains[20])
        assert rec["size"] == chains[20].stat().st_size
        assert rec["sha256"] == hashlib.sha256(chains[20].read_bytes()).hexdigest()
        assert rec["sizes"]["train"] > 0 and rec["sizes"]["valid"] > 0 and rec["sizes"]["test"] > 0
        assert rec["length_scale"] == ck["scales"].get("length")  # the normaliser's, when it fits one


def test_resume_on_other_data_is_refused_in_one_line(trained, chains, capsys):
    code, _, err = run(capsys, "train", *SMALL_RF, "--data", str(chains[12]), "--out", str(trained), *TINY, "--resume")
    assert code == 2
    line = err.strip().splitlines()[0]
    assert len(err.strip().splitlines()) == 1, err
    assert line.startswith("irrepnet: error: cannot resume")
    assert str(chains[20]) in line and str(chains[12]) in line  # both data named
    assert f"--data {chains[20]}" in line and "--out" in line and "--overwrite" in line  # and the fixes


def test_resume_on_the_same_data_works_even_from_a_copy(trained, chains, tmp_path, capsys):
    copy = tmp_path / "copy.npz"
    copy.write_bytes(chains[20].read_bytes())  # the same bytes elsewhere are the same data
    argv = ["train", *SMALL_RF, "--out", str(trained), *TINY, "--resume", "--epochs", "2", "--max-steps", "3"]
    code, text, err = run(capsys, *argv[:-4], "--data", str(copy), *argv[-4:])
    assert code == 0, err
    assert "done: 3 steps" in text


def test_resume_refuses_a_file_rewritten_in_place(chains, tmp_path, capsys):
    data = tmp_path / "chain.npz"
    data.write_bytes(chains[20].read_bytes())
    out = tmp_path / "run"
    assert main(["train", *SMALL_RF, "--data", str(data), "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    save_trajectory(data, simulate_polymer(PolymerConfig(n_beads=20, n_frames=60, seed=5)), overwrite=True)
    code, _, err = run(capsys, "train", *SMALL_RF, "--data", str(data), "--out", str(out), *TINY, "--resume")
    assert code == 2, err
    assert err.startswith(f"irrepnet: error: cannot resume {out / 'last.pt'}: {data} has changed"), err
    assert "restore the original file" in err and "--out" in err


def test_audit_uses_the_recorded_file_without_data(trained, chains, capsys):
    code, text, err = run(capsys, "audit", "--checkpoint", str(trained / "best.pt"), "--trials", "1")
    assert code == 0, err
    assert "rotation" in text
    said = [line for line in err.splitlines() if "using the data recorded in" in line]
    assert len(said) == 1 and chains[20].name in said[0], err
    # and the task it loads is the 20-bead chain, not the default 12-bead reference
    task = task_of_checkpoint(load_checkpoint(trained / "best.pt"), trained / "best.pt")
    assert task.train[0]["pos"].shape[0] == 20
    assert same_data(task.identity, load_checkpoint(trained / "best.pt")["meta"]["data"])


def test_audit_with_other_data_warns_that_it_is_not_the_training_data(trained, chains, capsys):
    code, _, err = run(
        capsys, "audit", "--checkpoint", str(trained / "best.pt"), "--trials", "1", "--data", str(chains[12])
    )
    assert code == 0, err
    assert "warning: using the data of --data" in err and str(chains[20]) in err and str(chains[12]) in err


def test_audit_when_the_recorded_file_is_rewritten_or_gone(trained, chains, tmp_path, capsys):
    data = tmp_path / "gone.npz"
    data.write_bytes(chains[20].read_bytes())
    out = tmp_path / "run"
    assert main(["train", *SMALL_RF, "--data", str(data), "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    save_trajectory(data, simulate_polymer(PolymerConfig(n_beads=20, n_frames=60, seed=5)), overwrite=True)
    code, _, err = run(capsys, "audit", "--checkpoint", str(out / "best.pt"), "--trials", "1")
    assert code == 2 and f"but {data} has changed since" in err and "--data" in err, err  # rewritten: refused
    data.unlink()
    code, _, err = run(capsys, "audit", "--checkpoint", str(out / "best.pt"), "--trials", "1")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(data) in lines[0] and "--data" in lines[0], err
    # --data with the same bytes elsewhere is the way out
    code, _, err = run(
        capsys, "audit", "--checkpoint", str(out / "best.pt"), "--trials", "1", "--data", str(chains[20])
    )
    assert code == 0, err


def test_old_checkpoints_without_a_record_still_load(trained, chains, tmp_path, capsys):
    ck = load_checkpoint(trained / "best.pt")
    del ck["meta"]["data"], ck["format"], ck["version"]
    old = tmp_path / "old" / "best.pt"
    save_atomic(ck, old)
    code, text, err = run(capsys, "audit", "--checkpoint", str(old), "--trials", "1", "--data", str(chains[20]))
    assert code == 0, err
    assert "records no data" in err and "cannot be checked" in err


def test_check_resumed_data_rules(chains, caplog):
    a, b = file_identity(chains[20]), file_identity(chains[12])
    a["sizes"] = b["sizes"] = {"test": 10}
    check_resumed_data(a, dict(a, path="elsewhere.npz"), "last.pt")  # same bytes: accepted
    check_resumed_data(a, None, "last.pt")  # datasets built by hand: nothing to compare
    with pytest.raises(DataMismatchError, match="cannot resume last.pt"):
        check_resumed_data(a, b, "last.pt")
    with caplog.at_level(logging.WARNING, logger="irrepnet"):
        check_resumed_data(None, a, "last.pt")
    assert "cannot check" in caplog.text


def test_a_generator_config_is_its_identity():
    class Split:
        def __init__(self, n, seed):
            self.n, self.seed = n, seed

        def __len__(self):
            return self.n

    def ident(n_train, seed=1, dt=0.001):
        gen = split_generator("nbody", {"train": Split(n_train, seed)}, config={"dt": dt})
        return generated_identity(gen, load={"data": None, "n_train": n_train})

    assert same_data(ident(100), ident(100))
    assert not same_data(ident(100), ident(200))  # another size
    assert not same_data(ident(100), ident(100, seed=2))  # another seed
    assert not same_data(ident(100), ident(100, dt=0.002))  # another config
    assert "nbody" in describe(ident(100))


def test_length_scale_is_read_from_what_the_normaliser_stores():
    assert recorded_length_scale({"inputs": {}, "outputs": {}}) is None
    assert recorded_length_scale({"inputs": {}, "outputs": {}, "length_scale": 0.37}) == 0.37
    assert recorded_length_scale({"inputs": {}, "outputs": {}, "length": 0.25}) == 0.25  # irrepnet.train.length


def test_bench_groups_keep_the_identity_of_their_data(tmp_path):
    from irrepnet.bench import load_suite
    from irrepnet.bench.groups import prepare_group

    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(
        '[suite]\nname = "tiny"\ntask = "twelve_body"\nmodels = ["radial-field"]\n'
        '[train]\nepochs = 1\n[[variant]]\nid = "h2"\nhistory = 2\n'
    )
    suite = load_suite(str(suite_file))
    group = prepare_group(suite, suite.variants[0], None, 0.1)  # the held-out validation split is cut here
    assert group.task.identity is not None and group.task.identity["kind"] == "reference"


BENCH_SUITE = """
[suite]
name = "tiny-data"
task = "twelve_body"
models = ["radial-field"]
rollout_horizons = [1]
rollout_starts = 1
audit_trials = 1

[train]
epochs = 1
steps_per_epoch = 1
batch_size = 8
progress = false

[[variant]]
id = "h2"
history = 2

[models.radial-field]
config = { hidden = 8, layers = 1 }
"""


def test_bench_resume_on_other_data_is_refused(chains, tmp_path, capsys):
    suite = tmp_path / "tiny.toml"
    suite.write_text(BENCH_SUITE)
    out = tmp_path / "bench"
    argv = ["bench", "--suite", str(suite), "--out", str(out), "--threads", "1"]
    code, _, err = run(capsys, *argv, "--data", str(chains[20]))
    assert code == 0, err
    code, _, err = run(capsys, *argv, "--data", str(chains[12]), "--resume")
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("irrepnet: error: cannot resume") and str(chains[20]) in line and str(chains[12]) in line
    code, _, err = run(capsys, *argv, "--data", str(chains[20]), "--resume")  # the same data resumes
    assert code == 0, err
