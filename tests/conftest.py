import os
import sys

import pytest

# tests/toy_modules.py is shared by several test files.
sys.path.insert(0, os.path.dirname(__file__))

#: a small radial-field model for the training tests
RF = {"hidden": 16, "layers": 2}


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
