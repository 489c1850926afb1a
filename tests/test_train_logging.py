"""What training reports while it runs: log lines when not on a terminal, TensorBoard scalars,
and the library's messages through `logging` (irrepnet.train.progress, .tensorboard_log)."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import RF, small

from irrepnet.optional import MissingDependencyError
from irrepnet.registry import ConfigError
from irrepnet.train import TrainingInterrupted, make_trainer, train_config, train_registered
from irrepnet.train import progress as P


@pytest.fixture
def not_a_terminal(monkeypatch):
    monkeypatch.setattr(P, "_is_terminal", lambda stream: False)


def _progress_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "irrepnet.train.progress"]


def test_a_progress_line_per_epoch_when_not_on_a_terminal(tiny_task, caplog, not_a_terminal):
    caplog.set_level(logging.INFO, logger="irrepnet")
    train_registered("radial-field", tiny_task, small(epochs=3, progress=True), RF)
    lines = _progress_lines(caplog)
    assert [line.split()[:4] for line in lines] == [["epoch", f"{e}/3", "step", f"{4 * e}/12"] for e in (1, 2, 3)]
    for line in lines:
        for field in ("train_loss", "valid_loss", "valid_mse", "elapsed", "eta"):
            assert f" {field} " in line, line
    assert lines[-1].endswith("eta 0.0s")


def test_no_lines_without_progress_and_a_bar_on_a_terminal(tiny_task, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="irrepnet")
    train_registered("radial-field", tiny_task, small(epochs=1, progress=False), RF)
    assert _progress_lines(caplog) == []
    state = {"epoch": 0, "step": 0}
    assert isinstance(P.progress_reporter(False, total_epochs=1, total_steps=1, state=state), P.NoProgress)
    monkeypatch.setattr(P, "_is_terminal", lambda stream: True)
    assert isinstance(P.progress_reporter(True, total_epochs=1, total_steps=1, state=state), P.ProgressBar)
    monkeypatch.setattr(P, "_is_terminal", lambda stream: False)
    assert isinstance(P.progress_reporter(True, total_epochs=1, total_steps=1, state=state), P.ProgressLines)


def test_lines_within_a_long_epoch_come_at_the_interval(caplog):
    """Steps of 10 s and an interval of 30 s: a line after every third step, each with an ETA."""
    caplog.set_level(logging.INFO, logger="irrepnet")
    now = [0.0]
    lines = P.ProgressLines(total_steps=100, total_epochs=1, interval_s=30.0, clock=lambda: now[0])
    for step in range(1, 10):
        now[0] += 10.0
        lines.step({"epoch": 0, "step": step, "epoch_loss": 2.0 * step, "epoch_count": step})
    got = _progress_lines(caplog)
    assert len(got) == 3
    assert got[0] == "epoch 1/1 step 3/100 train_loss 2 (epoch so far) elapsed 30.0s eta 16m10s"
    assert got[2].startswith("epoch 1/1 step 9/100") and got[2].endswith("eta 15m10s")


@pytest.mark.parametrize("seconds, text", [(0.04, "0.0s"), (59.9, "59.9s"), (185, "3m05s"), (7620, "2h07m")])
def test_durations(seconds, text):
    from irrepnet.durations import duration

    assert duration(seconds, compact=True) == text


def test_progress_reaches_a_log_file(tmp_path):
    """The real thing: a process whose output goes to a file logs one line per epoch."""
    script = textwrap.dedent(
        """
        import logging
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        from irrepnet import data as D
        from irrepnet.tasks import Task, task_spec
        from irrepnet.train import TrainConfig, train_registered
        traj = D.simulate_polymer(D.PolymerConfig(n_frames=40, n_equilibrate=50))
        train, test = D.split_trajectory(traj, history=2)
        cfg = TrainConfig(epochs=2, batch_size=8, steps_per_epoch=2)
        train_registered("radial-field", Task(task_spec("twelve_body", history=2), train, test), cfg,
                         {"hidden": 8, "layers": 1})
        """
    )
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-c", script], stdout=f, stderr=subprocess.STDOUT, check=True, timeout=120)
    lines = [line for line in log.read_text().splitlines() if line.startswith("irrepnet.train.progress: ")]
    assert [line.split()[1:3] for line in lines] == [["epoch", "1/2"], ["epoch", "2/2"]], log.read_text()


def test_a_stop_request_is_a_logged_warning(tiny_task, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="irrepnet")

    def interrupt(trainer):
        if trainer.state["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted):
        train_registered("radial-field", tiny_task, small(), RF, out_dir=tmp_path, callback=interrupt)
    (record,) = [r for r in caplog.records if r.name == "irrepnet.train.runtime"]
    assert record.levelno == logging.WARNING and "SIGTERM received" in record.getMessage()


def test_tensorboard_scalars(tiny_task, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = tmp_path / "tb"
    train_registered("radial-field", tiny_task, small(epochs=2, tensorboard=str(board)), RF)
    events = EventAccumulator(str(board))
    events.Reload()
    steps = {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    per_step, per_epoch = list(range(1, 9)), [4, 8]
    assert steps == {
        "train/loss": per_step,
        "train/lr": per_step,
        "train/step_time_s": per_step,
        "train/epoch_loss": per_epoch,
        "epoch/time_s": per_epoch,
        "valid/loss": per_epoch,
        "valid/mse": per_epoch,
    }
    lr = [e.value for e in events.Scalars("train/lr")]
    assert lr[:2] == pytest.approx([1.5e-3, 3e-3])  # the warm-up over 2 steps to lr 3e-3
    assert all(e.value > 0 for e in events.Scalars("train/step_time_s"))


def test_tensorboard_without_the_package_is_a_one_line_error(tiny_task, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if absent
    with pytest.raises(MissingDependencyError) as err:
        make_trainer("radial-field", tiny_task, small(tensorboard=str(tmp_path / "tb")), RF)
    message = str(err.value)
    assert "\n" not in message and message.endswith("pip install tensorboard")
    assert not (tmp_path / "tb").exists()


def test_tensorboard_config_key(tmp_path):
    assert train_config({"tensorboard": "runs/a"}).tensorboard == "runs/a"
    assert train_config({"tensorboard": Path("runs/a")}).tensorboard == "runs/a"  # plain, for the checkpoint
    with pytest.raises(ConfigError, match="tensorboard must be a folder name"):
        train_config({"tensorboard": 3})
