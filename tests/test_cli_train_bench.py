"""``irrepnet train``, ``bench`` and ``audit --checkpoint``: happy paths and one-line errors."""

import json

import pytest

from irrepnet.cli import main

TINY = ["--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--set", "progress=false", "--threads", "1"]
SMALL_RF = ["--model-set", "hidden=8", "--model-set", "layers=1"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_audit_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "rf"
    code, text, err = run(capsys, "train", "--model", "radial-field", "--out", str(out), *TINY, *SMALL_RF)
    assert code == 0, err
    assert "test MSE" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["test_mse"] > 0
    assert (out / "best.pt").exists() and (out / "log.jsonl").exists()
    code, text, err = run(capsys, "audit", "--checkpoint", str(out / "best.pt"))
    assert code == 0, err
    assert "audit of radial-field" in text and "rotation" in text

    # a second run into the same folder is refused; --overwrite replaces it; --resume continues it
    code, _, err = run(capsys, "train", "--model", "radial-field", "--out", str(out), *TINY, *SMALL_RF)
    assert code == 2 and "--resume" in err and "--overwrite" in err
    code, _, err = run(
        capsys,
        "train",
        "--model",
        "radial-field",
        "--out",
        str(out),
        *TINY,
        *SMALL_RF,
        "--resume",
        "--max-steps",
        "3",
        "--epochs",
        "2",
    )
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["steps"] == 3


def test_train_reads_a_toml_config(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        "[train]\nepochs = 1\nmax_steps = 2\nbatch_size = 8\nprogress = false\n[model]\nhidden = 8\nlayers = 1\n"
    )
    code, _, err = run(capsys, "train", "--model", "radial-field", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 0, err
    log = [json.loads(x) for x in (tmp_path / "o" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["step"] == 2


def test_train_with_residual_noise_and_gate_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "r"
    code, text, err = run(
        capsys,
        "train",
        "--model",
        "radial-field",
        "--out",
        str(out),
        *TINY,
        *SMALL_RF,
        "--residual",
        "constant_acceleration",
        "--start-at-baseline",
        "--input-noise",
        "0.05",
        "--unroll-steps",
        "2",
    )
    assert code == 0, err
    from irrepnet.train import load_checkpoint

    cfg = load_checkpoint(out / "last.pt")["train_config"]
    assert cfg["residual"] == "constant_acceleration" and cfg["start_at_baseline"] and cfg["input_noise"] == 0.05
    assert cfg["unroll_steps"] == 2
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["epoch"] == 0  # the baseline, scored before the first step
    code, text, err = run(capsys, "audit", "--checkpoint", str(out / "best.pt"))
    assert code == 0, err


def test_bench_with_seeds(tmp_path, capsys):
    out = tmp_path / "s"
    code, _, err = run(
        capsys, "bench", "--task", "twelve_body", "--models", "mlp", "--seeds", "3,4", "--out", str(out), *TINY
    )
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    mlp = results["groups"][0]["rows"][-1]
    assert [s["seed"] for s in mlp["seeds"]] == [3, 4] and "seeds [3, 4]" in results["suite"]["description"]


def test_train_and_bench_with_bonds_and_a_learned_force(tmp_path, capsys):
    out = tmp_path / "f"
    code, _, err = run(
        capsys,
        "train",
        "--model",
        "radial-field",
        "--bonds",
        "--residual",
        "force_difference",
        "--out",
        str(out),
        *TINY,
        *SMALL_RF,
    )
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["bonds"] is True
    code, text, err = run(capsys, "audit", "--checkpoint", str(out / "best.pt"))  # rebuilt with bonds, positions only
    assert code == 0, err
    assert "bonds" in text
    code, _, err = run(
        capsys,
        "bench",
        "--task",
        "twelve_body",
        "--models",
        "radial-field",
        "--bonds",
        "--out",
        str(tmp_path / "b"),
        *TINY,
    )
    assert code == 0, err
    group = json.loads((tmp_path / "b" / "results.json").read_text())["groups"][0]
    assert group["bonds"] is True and group["id"] == "history-2-bonds"
    assert "bonds given" in (tmp_path / "b" / "report.md").read_text()


def test_bench_adhoc_models(tmp_path, capsys):
    out = tmp_path / "b"
    code, text, err = run(capsys, "bench", "--task", "twelve_body", "--models", "mlp", "--out", str(out), *TINY)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in results["groups"][0]["rows"]][-1] == "mlp"
    assert (out / "report.md").exists() and (out / "results.csv").exists()
    code, _, err = run(capsys, "bench", "--task", "twelve_body", "--models", "mlp", "--out", str(out), *TINY)
    assert code == 2 and "already holds a benchmark" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "egnnn", "--out", "{tmp}/x"], "unknown model 'egnnn'"),
        (["train", "--model", "mlp", "--out", "{tmp}/x", "--set", "epoch=2"], "did you mean 'epochs'"),
        (["train", "--model", "mlp", "--out", "{tmp}/x", "--model-set", "hiden=2"], "no config option"),
        (["train", "--model", "mlp", "--out", "{tmp}/x", "--config", "{tmp}/none.toml"], "not found"),
        (["train", "--model", "mlp", "--out", "{tmp}/x", "--data", "{tmp}/none.npz"], "not found"),
        (["train", "--model", "mlp", "--out", "{tmp}/x", "--resume"], "nothing to resume"),
        (["train", "--model", "mlp", "--out", "{tmp}/x", "--device", "cuda:7"], "not available"),
        (["train", "--model", "mlp", "--out", "{tmp}/x", "--threads", "0"], "--threads"),
        (["bench", "--suite", "dmol", "--out", "{tmp}/b"], "--data"),
        (["bench", "--suite", "quik", "--out", "{tmp}/b"], "known suites"),
        (["bench", "--out", "{tmp}/b"], "--suite"),
        (["bench", "--task", "twelve_body", "--models", "egn", "--out", "{tmp}/b"], "Did you mean 'egnn'"),
        (["bench", "--suite", "quick", "--task", "nbody", "--out", "{tmp}/b"], "not both"),
        (
            ["train", "--model", "mlp", "--out", "{tmp}/x", "--history", "1", "--residual", "constant_acceleration"],
            "needs a velocity history of at least 2",
        ),
        (["train", "--model", "mlp", "--out", "{tmp}/x", "--input-noise", "-1"], "input_noise must be"),
        (["bench", "--task", "twelve_body", "--models", "mlp", "--seeds", "0,0", "--out", "{tmp}/b"], "distinct"),
        (["bench", "--task", "twelve_body", "--models", "mlp", "--seeds", "a", "--out", "{tmp}/b"], "integers"),
        (
            ["bench", "--task", "twelve_body", "--models", "mlp", "--seeds", "0,1", "--seed", "2", "--out", "{tmp}/b"],
            "not both",
        ),
        (["audit", "--checkpoint", "{tmp}/none.pt"], "not found"),
        (["audit"], "--checkpoint"),
        (["train", "--model", "egnn", "--task", "nbody", "--bonds", "--out", "{tmp}/x"], "only the twelve_body task"),
        (["bench", "--suite", "quick", "--bonds", "--out", "{tmp}/b"], "bonds = true"),
        (["train", "--model", "egnn-vel", "--out", "{tmp}/x", "--residual", "force_difference"], "force field"),
    ],
)
def test_user_errors_are_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    code, _, err = run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 2, err
    assert message.lower() in err.lower() and "Traceback" not in err
    assert err.startswith("irrepnet: error:")


def test_a_foreign_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    code, _, err = run(capsys, "audit", "--checkpoint", str(tmp_path / "junk.pt"))
    assert code == 2 and "not a readable irrepnet checkpoint" in err


def test_models_registered_in_user_code_are_usable_with_import(tmp_path, capsys):
    plugin = tmp_path / "my_models.py"
    plugin.write_text(
        "from dataclasses import dataclass\n"
        "from irrepnet import register_model\n"
        "from irrepnet.models.egnn import build_radial_field, RadialFieldConfig\n"
        "@register_model('my-rf', config=RadialFieldConfig)\n"
        "def build(config, task):\n"
        "    return build_radial_field(config, task)\n"
    )
    from irrepnet.registry import unregister_model

    try:
        code, out, err = run(capsys, "models", "--import", str(plugin))
        assert code == 0 and "my-rf" in out
        code, _, err = run(
            capsys,
            "train",
            "--import",
            str(plugin),
            "--model",
            "my-rf",
            "--out",
            str(tmp_path / "o"),
            *TINY,
            "--model-set",
            "hidden=8",
            "--model-set",
            "layers=1",
        )
        assert code == 0, err
        code, out, err = run(capsys, "audit", "--import", str(plugin), "--checkpoint", str(tmp_path / "o" / "best.pt"))
        assert code == 0 and "audit of my-rf" in out
    finally:
        unregister_model("my-rf")
    code, _, err = run(capsys, "models", "--import", str(tmp_path / "missing.py"))
    assert code == 2 and "not found" in err


def test_train_tensorboard_and_the_log_level(tmp_path, capsys):
    """--tensorboard reaches the training config; the library's INFO lines reach stderr unless -q."""
    pytest.importorskip("tensorboard")
    tb = tmp_path / "tb"
    argv = ["train", "--model", "mlp", "--out", str(tmp_path / "o"), "--tensorboard", str(tb), *TINY]
    code, text, err = run(capsys, *argv)
    assert code == 0, err
    assert list(tb.glob("events.out.tfevents.*")), list(tmp_path.rglob("*"))
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["steps"] == 2
    assert f"TensorBoard scalars in {tb}" in err  # logged at INFO by irrepnet.train.tensorboard_log
    assert "done:" in text
    code, text, err = run(capsys, "-q", *argv[:4], str(tmp_path / "q"), *argv[5:])
    assert code == 0, err
    assert "TensorBoard scalars" not in err and "done:" in text  # -q: the progress goes, the result stays
