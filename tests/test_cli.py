"""The CLI's happy paths and its one-line errors (exit status 2, no traceback)."""

import json

import numpy as np
import pytest

from irrepnet.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_the_registry(capsys):
    code, out, _ = run(capsys, "models", "--history", "2")
    assert code == 0
    assert "zero-displacement" in out and "constant-acceleration" in out and "E(3)" in out


def test_models_says_when_a_model_needs_more_inputs(capsys):
    code, out, _ = run(capsys, "models", "--history", "0")
    assert code == 0 and "not available: constant-acceleration needs a velocity history" in out


def test_models_lists_peers_not_installed_with_the_install_command(capsys, monkeypatch):
    from irrepnet import registry

    monkeypatch.setattr(registry, "module_available", lambda m: m not in ("egnn_pytorch", "se3_transformer_pytorch"))
    code, out, _ = run(capsys, "models", "--task", "nbody")
    assert code == 0
    for name in ("egnn-pytorch", "se3-transformer-pytorch"):
        line = next(x for x in out.splitlines() if x.startswith(name + " "))
        assert line.endswith("not installed: pip install 'irrepnet[peers]'")
    assert "peers (other projects' implementations, for comparison): egnn-pytorch, se3-transformer-pytorch" in out


def test_simulate_polymer_then_baselines_on_it(tmp_path, capsys):
    f = tmp_path / "chain.npz"
    code, out, _ = run(capsys, "simulate", "polymer", "--out", str(f), "--frames", "64", "--beads", "6")
    assert code == 0 and f.exists()
    arr = np.load(f)["arr"]
    assert arr.shape == (64, 6, 3) and not arr[..., 2].any()  # a 2-D chain, padded with z = 0
    code, out, err = run(capsys, "simulate", "polymer", "--out", str(f), "--frames", "64")
    assert code == 2 and "exists" in err and "Traceback" not in err
    code, out, _ = run(capsys, "baselines", "--data", str(f), "--history", "2")
    assert code == 0 and "constant_acceleration" in out


def test_audit_passes_for_a_baseline(capsys, tmp_path):
    f = tmp_path / "chain.npz"
    run(capsys, "simulate", "polymer", "--out", str(f), "--frames", "40")
    code, out, _ = run(capsys, "audit", "--model", "constant-acceleration", "--data", str(f), "--history", "2")
    assert code == 0 and "float32" in out and "float64" in out and "FAIL" not in out


def test_demo_never_overwrites_a_previous_run(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    models = "zero-displacement,constant-acceleration,egnn"  # every model is audited in test_conformance
    assert run(capsys, "demo", "--out", str(out_dir), "--models", models)[0] == 0
    assert run(capsys, "demo", "--out", str(out_dir), "--models", models)[0] == 0
    first, second = (
        json.loads((out_dir / "demo.json").read_text()),
        json.loads((tmp_path / "demo-1" / "demo.json").read_text()),
    )
    assert first["baselines"] == second["baselines"]  # deterministic from the seed
    assert "constant-acceleration" in first["audit"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["audit", "--model", "egnnn"], "unknown model 'egnnn'"),
        (["baselines", "--data", "/no/such/file.npz"], "trajectory file not found"),
        (["baselines", "--history", "-1"], "history"),
        (["baselines", "--task", "nbody", "--data", "x.npz"], "takes no --data"),
    ],
)
def test_user_errors_are_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message.lower() in err.lower() and "Traceback" not in err
    assert err.startswith("irrepnet: error:")


def test_npz_without_arr_is_a_clear_error(tmp_path, capsys):
    f = tmp_path / "bad.npz"
    np.savez(f, positions=np.zeros((10, 3, 2)))
    code, _, err = run(capsys, "baselines", "--data", str(f))
    assert code == 2 and "'arr'" in err and "positions" in err


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train-everything"])
    assert e.value.code == 2


def test_history_default_does_not_apply_to_nbody(capsys):
    code, out, _ = run(capsys, "models", "--task", "nbody")
    assert code == 0 and "charge" in out
