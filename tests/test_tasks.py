import pytest
import torch

from irrepnet import keys as K
from irrepnet.tasks import load_task, task_spec


def test_twelve_body_spec_follows_history():
    assert set(task_spec("twelve_body").inputs) == {K.POS, K.NODE_INDEX}
    spec = task_spec("twelve_body", history=3)
    assert spec.inputs[K.VEL_HISTORY].dim == 9 and spec.inputs[K.VEL].dim == 3 and spec.num_nodes == 12


def test_nbody_spec():
    spec = task_spec("nbody")
    assert str(spec.inputs[K.CHARGE]) == "1x0e" and spec.extras["delta_t"] == 1.0


def test_load_twelve_body_default_data_matches_its_spec():
    task = load_task("twelve_body", history=2)  # no file: the shipped reference trajectory
    assert task.train.source.startswith("irrepnet reference polymer")
    assert (len(task.train), len(task.test)) == (1635, 410)  # T = 2048: train t = 2..1636, test t = 1637..2046
    sample = task.train[0]
    for field, ir in task.spec.inputs.items():
        assert field in sample
        if ir is not None:
            assert sample[field].shape[-1] == ir.dim


def test_unknown_task_and_bad_options():
    with pytest.raises(ValueError, match="unknown task 'threebody'"):
        task_spec("threebody")
    with pytest.raises(ValueError, match="history must be >= 0"):
        task_spec("twelve_body", history=-2)
    with pytest.raises(ValueError, match="takes no --data"):
        load_task("nbody", data="x.npz")


def test_short_trajectory_for_history_is_a_clear_error(tmp_path):
    from irrepnet.data import save_trajectory

    f = tmp_path / "short.npz"
    save_trajectory(f, torch.zeros(4, 3, 3).numpy() + torch.arange(4.0)[:, None, None].numpy())
    with pytest.raises(ValueError, match="history"):
        load_task("twelve_body", data=str(f), history=5)
