import os
import sys
from pathlib import Path

import pytest
import torch

# tests/toy_modules.py is shared by several test files.
sys.path.insert(0, os.path.dirname(__file__))

#: what an unpacked sdist lacks: the repository's benchmark scripts and committed results
REPO_BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``repo`` need the repository's benchmarks/: skipped where it is absent (an sdist)."""
    if REPO_BENCHMARKS.is_dir():
        return
    skip = pytest.mark.skip(reason="needs the repository's benchmarks/ (scripts, committed results), not in the sdist")
    for item in items:
        if "repo" in item.keywords:
            item.add_marker(skip)


#: a small radial-field model for the training tests
RF = {"hidden": 16, "layers": 2}


def straight_and_resumed(task, cfg, folder, stop_at: int = 6):
    """Train ``cfg`` once straight through (``folder/a``) and once interrupted by SIGTERM after
    ``stop_at`` steps, then resumed from a different global RNG state (``folder/b``)."""
    import signal

    import torch

    from irrepnet.train import TrainingInterrupted, train_registered

    straight = train_registered("radial-field", task, cfg, RF, out_dir=folder / "a")

    def interrupt(trainer):
        if trainer.state["step"] == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted):
        train_registered("radial-field", task, cfg, RF, out_dir=folder / "b", callback=interrupt)
    torch.manual_seed(99)  # resume must restore its own random state
    resumed = train_registered("radial-field", task, cfg, RF, out_dir=folder / "b", resume=True)
    return straight, resumed


def small(**kw):
    """A :class:`TrainConfig` of a few steps, for the training tests."""
    from irrepnet.train import TrainConfig

    base = dict(epochs=3, batch_size=8, steps_per_epoch=4, lr=3e-3, warmup_steps=2, progress=False)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="session")
def tiny_task():
    """A 12-bead polymer, 80 frames, history 2: 60 training samples."""
    from irrepnet import data as D
    from irrepnet.tasks import Task, task_spec

    traj = D.simulate_polymer(D.PolymerConfig(n_frames=80, n_equilibrate=200))
    train, test = D.split_trajectory(traj, history=2)
    return Task(task_spec("twelve_body", history=2), train, test)


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread, then restore the count (``pytest.mark.usefixtures("one_torch_thread")``)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
