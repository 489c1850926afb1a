"""The training loop: it learns, resumes exactly, writes checkpoints atomically, refuses bad input."""

import json
import math
import os
import signal

import numpy as np
import pytest
import torch
from conftest import RF, small  # shared with the other training tests

from irrepnet.registry import ConfigError
from irrepnet.train import (
    CheckpointError,
    Trainer,
    TrainingInterrupted,
    load_checkpoint,
    load_trained,
    make_trainer,
    save_atomic,
    train_config,
    train_registered,
)
from irrepnet.train.config import read_run_config


def test_loss_decreases_on_a_tiny_problem(tiny_task):
    # 10 epochs: with positions in units of the fitted length (irrepnet.train.length) the validation
    # loss rises over epochs 2-3 at this lr; 6 epochs ended at 0.180 against epoch 1's 0.174, 10 at 0.094
    res = train_registered("radial-field", tiny_task, small(epochs=10), RF)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.5 * losses[0], losses
    assert res.history[-1]["valid_loss"] < res.history[0]["valid_loss"]
    assert res.stopped == "epochs" and res.steps == 40
    assert res.best_epoch == min(range(1, 11), key=lambda e: res.history[e - 1]["valid_loss"])


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("stop_at", [6, 8])  # mid-epoch and exactly at an epoch boundary
def test_resume_after_sigterm_gives_the_same_weights(tiny_task, tmp_path, stop_at):
    cfg = small(schedule="cosine")
    straight = train_registered("radial-field", tiny_task, cfg, RF, out_dir=tmp_path / "a")

    def interrupt(trainer):
        if trainer.state["step"] == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)  # the real signal path

    with pytest.raises(TrainingInterrupted) as info:
        train_registered("radial-field", tiny_task, cfg, RF, out_dir=tmp_path / "b", callback=interrupt)
    assert info.value.checkpoint == tmp_path / "b" / "last.pt"
    assert load_checkpoint(info.value.checkpoint)["trainer_state"]["step"] == stop_at
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored

    torch.manual_seed(1234)  # a different global RNG state: resume must restore its own
    resumed = train_registered("radial-field", tiny_task, cfg, RF, out_dir=tmp_path / "b", resume=True)
    a, b = _weights(straight.model), _weights(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    la = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["valid_loss"] for r in la] == [r["valid_loss"] for r in lb]
    assert resumed.steps == straight.steps


def test_resume_with_other_options_is_refused(tiny_task, tmp_path):
    train_registered("radial-field", tiny_task, small(epochs=1), RF, out_dir=tmp_path)
    with pytest.raises(ValueError, match="lr"):
        train_registered("radial-field", tiny_task, small(epochs=2, lr=1e-2), RF, out_dir=tmp_path, resume=True)
    # more epochs is a legitimate change: training goes on
    res = train_registered("radial-field", tiny_task, small(epochs=2), RF, out_dir=tmp_path, resume=True)
    assert len(res.history) == 2


def test_a_finished_run_is_not_overwritten(tiny_task, tmp_path):
    train_registered("radial-field", tiny_task, small(epochs=1), RF, out_dir=tmp_path)
    with pytest.raises(FileExistsError, match="resume"):
        train_registered("radial-field", tiny_task, small(epochs=1), RF, out_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_registered("radial-field", tiny_task, small(epochs=1), RF, out_dir=tmp_path / "new", resume=True)


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = save_atomic({"x": torch.ones(3)}, tmp_path / "last.pt")

    def crash(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"x": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(3))  # the old one survives intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_checkpoints_load_without_running_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "evil.pt"
    torch.save({"format": "irrepnet.checkpoint", "version": 1, "x": Evil()}, bad)
    with pytest.raises(CheckpointError, match=r"is refused: it holds Python objects \(posix.system\)") as err:
        load_checkpoint(bad)
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value)  # one line, no unsafe advice
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")


def test_best_checkpoint_rebuilds_the_trained_model(tiny_task, tmp_path):
    res = train_registered("radial-field", tiny_task, small(), RF, out_dir=tmp_path)
    model, ck = load_trained(tmp_path / "best.pt")
    assert ck["meta"]["model"] == "radial-field" and ck["meta"]["model_config"]["hidden"] == 16
    batch = tiny_task.test.batch(range(4))
    torch.testing.assert_close(model(batch)["displacement"].double(), res.model(batch)["displacement"].double())


def test_early_stopping_and_plateau(tiny_task, monkeypatch):
    trainer = make_trainer(
        "radial-field", tiny_task, small(epochs=10, patience=2, schedule="plateau", plateau_patience=1), RF
    )
    losses = iter([1.0, 0.5, 0.6, 0.7, 0.8])
    monkeypatch.setattr(trainer, "evaluate_loss", lambda ds: next(losses))
    res = trainer.fit()
    assert res.stopped == "early_stopping" and len(res.history) == 4 and res.best_epoch == 2
    assert trainer.state["lr_scale"] == 0.25  # halved after each of the two bad epochs


def test_warmup_then_cosine(tiny_task):
    trainer = make_trainer("radial-field", tiny_task, small(epochs=5, warmup_steps=4, lr=1e-2, min_lr=1e-4), RF)
    lrs = [trainer.lr_at(s) for s in range(trainer.total_steps)]
    assert lrs[:4] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert lrs[-1] == pytest.approx(1e-4, rel=0.05)


def test_normalisation_is_undone_for_predictions(tiny_task):
    res = train_registered("radial-field", tiny_task, small(epochs=1), RF)
    scale = res.model.output_scales["displacement"]
    true_rms = float(tiny_task.train.arrays()["target_disp"].pow(2).mean().sqrt())
    assert 0.8 * true_rms < scale < 1.25 * true_rms  # the valid split is held out of the fit
    assert 1e-3 < scale < 1e-1  # twelve_body steps are ~6e-3: the scale is physical, not 1
    out = res.model(tiny_task.test.batch(range(4)))["displacement"]
    assert float(out.abs().mean()) < 20 * scale


def test_float64_training(tiny_task):
    res = train_registered("radial-field", tiny_task, small(epochs=1, dtype="float64"), RF)
    assert next(res.model.parameters()).dtype == torch.float64


def test_parameter_free_models_are_not_trained(tiny_task):
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_trainer("constant-velocity", tiny_task, small())


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epoch": 3}, "did you mean 'epochs'"),
        ({"optimizer": "sgd"}, "optimizer must be one of"),
        ({"lr": -1.0}, "lr > 0"),
        ({"batch_size": 0}, "batch_size must be"),
    ],
)
def test_bad_training_config_is_a_clear_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        train_config(overrides)


def test_run_config_toml(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text("[train]\nepochs = 2\nlr = 1e-3\n[model]\nhidden = 8\n")
    assert read_run_config(f) == ({"epochs": 2, "lr": 1e-3}, {"hidden": 8})
    f.write_text("[trian]\nepochs = 2\n")
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        read_run_config(f)
    f.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_run_config(f)


def test_non_finite_loss_stops_with_advice(tiny_task):
    trainer = make_trainer("radial-field", tiny_task, small(epochs=1), RF)
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(math.inf)
    with pytest.raises(FloatingPointError, match="learning rate"):
        trainer.fit()


def test_validation_split_is_the_end_of_training(tiny_task):
    trainer = Trainer(make_trainer("radial-field", tiny_task, small(), RF).model.model, tiny_task.train, config=small())
    assert np.all(trainer.train_set.frames < trainer.valid_set.frames.min())
    assert len(trainer.valid_set) == round(0.1 * len(tiny_task.train))
