"""Windows over a trajectory (next-frame samples) and frame-index splits."""

import numpy as np
import pytest
import torch
from e3nn import o3

from irrepnet import keys as K
from irrepnet.batch import check_batch, collate
from irrepnet.data import PolymerConfig, TrajectoryDataset, split_frames, split_trajectory, twelve_body


def _traj(T=20, N=4, seed=0):
    return np.random.default_rng(seed).standard_normal((T, N, 3))


def test_sample_fields_and_values():
    x = _traj()
    ds = TrajectoryDataset(x, history=3)
    assert len(ds) == 20 - 1 - 3 and ds.frames[0] == 3 and ds.frames[-1] == 18
    s = ds[0]  # frame t = 3
    t = 3
    assert set(s) == {K.POS, K.VEL, K.VEL_HISTORY, K.TARGET_DISP, K.TARGET_POS, K.NODE_INDEX}
    np.testing.assert_array_equal(s[K.POS].numpy(), x[t])
    np.testing.assert_array_equal(s[K.TARGET_POS].numpy(), x[t + 1])
    np.testing.assert_allclose(s[K.TARGET_DISP].numpy(), x[t + 1] - x[t])
    vh = s[K.VEL_HISTORY].reshape(4, 3, 3).numpy()  # (N, h, 3), newest first
    for k in range(3):
        np.testing.assert_allclose(vh[:, k], x[t - k] - x[t - k - 1])
    np.testing.assert_allclose(s[K.VEL].numpy(), x[t] - x[t - 1])
    assert s[K.NODE_INDEX].dtype == torch.long and s[K.NODE_INDEX].tolist() == [0, 1, 2, 3]
    assert s[K.POS].dtype == torch.float64


def test_history_zero_has_no_velocity_fields():
    ds = TrajectoryDataset(_traj(), history=0)
    assert len(ds) == 19 and K.VEL not in ds[0] and K.VEL_HISTORY not in ds[0]


def test_vel_history_is_e3nn_h_x_1o():
    """Rotating the trajectory rotates vel_history with the block-diagonal D of 'h x 1o'."""
    torch.manual_seed(0)
    x = torch.from_numpy(_traj())
    R = o3.rand_matrix(dtype=torch.float64) * -1.0  # with parity
    h = 3
    a = TrajectoryDataset(x, history=h)[5][K.VEL_HISTORY]
    b = TrajectoryDataset(x @ R.T, history=h)[5][K.VEL_HISTORY]
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds D in the default dtype
    try:
        D = o3.Irreps(f"{h}x1o").D_from_matrix(R)
    finally:
        torch.set_default_dtype(old)
    torch.testing.assert_close(b, a @ D.T, atol=1e-12, rtol=1e-10)


def test_dtype_and_precision():
    x = _traj() + 1e4  # large offsets: the displacement must be taken in float64
    ds = TrajectoryDataset(x, history=1, dtype=torch.float32)
    s = ds[0]
    assert s[K.POS].dtype == torch.float32 and s[K.NODE_INDEX].dtype == torch.long
    np.testing.assert_allclose(s[K.TARGET_DISP].numpy(), (x[2] - x[1]).astype(np.float32), rtol=1e-6)
    with pytest.raises(ValueError, match="floating dtype"):
        TrajectoryDataset(x, dtype=torch.int64)


def test_batch_equals_collate_and_is_well_formed():
    ds = TrajectoryDataset(_traj(), history=2)
    idx = [4, 0, 7]
    a, b = ds.batch(idx), collate([ds[i] for i in idx])
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    check_batch(a)
    assert len(ds.batch()[K.NUM_NODES]) == len(ds)


def test_samples_are_copies():
    ds = TrajectoryDataset(_traj())
    ds[0][K.POS].zero_()
    assert ds[0][K.POS].abs().sum() > 0


def test_index_errors():
    ds = TrajectoryDataset(_traj(T=5))
    with pytest.raises(IndexError, match="out of range"):
        ds[4]
    with pytest.raises(TypeError, match="one integer"):
        ds[0:2]
    with pytest.raises(IndexError, match="out of range"):
        ds.batch([0, 10])
    with pytest.raises(ValueError, match="zero samples"):
        ds.batch([])


def test_too_short_for_history():
    with pytest.raises(ValueError, match=r"T=4 frames, but history h=3 needs at least T=h\+2=5"):
        TrajectoryDataset(_traj(T=4), history=3)
    assert len(TrajectoryDataset(_traj(T=5), history=3)) == 1
    with pytest.raises(ValueError, match=r"T=2 frame\(s\); at least 2|T=h\+3"):
        split_trajectory(_traj(T=3), history=1)
    with pytest.raises(ValueError, match="integer >= 0"):
        TrajectoryDataset(_traj(), history=-1)


def test_frames_argument():
    ds = TrajectoryDataset(_traj(), history=2, frames=[0, 1, 2, 5])
    assert ds.frames.tolist() == [2, 5]  # frames without history are dropped, as documented
    with pytest.raises(ValueError, match=r"out of range.*t in \[0, 18\]"):
        TrajectoryDataset(_traj(), frames=[19])
    with pytest.raises(ValueError, match="every requested frame has t < history"):
        TrajectoryDataset(_traj(), history=3, frames=[0, 1])


def test_chronological_split_of_2048_frames():
    train, test = split_frames(2048)
    assert len(train) == 1637 and len(test) == 410
    assert train[0] == 0 and train[-1] == 1636 and test[0] == 1637 and test[-1] == 2046


@pytest.mark.parametrize("h", [0, 1, 2, 5])
def test_split_does_not_depend_on_history(h):
    x = _traj(T=2048, N=2)
    tr, te = split_trajectory(x, history=h)
    assert len(te) == 410 and te.frames[0] == 1637
    assert len(tr) == 1637 - h and tr.frames[0] == h and tr.frames[-1] == 1636


def test_shuffled_split():
    a_tr, a_te = split_frames(100, split="shuffled", seed=3)
    b_tr, b_te = split_frames(100, split="shuffled", seed=3)
    c_tr, _ = split_frames(100, split="shuffled", seed=4)
    np.testing.assert_array_equal(a_tr, b_tr)
    assert not np.array_equal(a_tr, c_tr)
    assert len(a_tr) == 79 and len(a_te) == 20
    assert sorted(np.concatenate([a_tr, a_te]).tolist()) == list(range(99))
    tr, te = split_trajectory(_traj(T=100), history=2, split="shuffled", seed=3)
    assert set(tr.frames) == set(a_tr[a_tr >= 2]) and set(te.frames) == set(a_te[a_te >= 2])


def test_split_errors():
    with pytest.raises(ValueError, match="split must be one of"):
        split_frames(10, split="random")
    with pytest.raises(ValueError, match=r"train_fraction must be in \(0, 1\)"):
        split_frames(10, train_fraction=1.0)
    with pytest.raises(ValueError, match="train split has no frame t >= history"):
        split_trajectory(_traj(T=10), history=7)


def test_twelve_body_from_simulator_and_file(tmp_path):
    cfg = PolymerConfig(n_frames=60, n_equilibrate=200, seed=1)
    tr, te = twelve_body(history=1, simulation=cfg)
    assert len(tr) + len(te) == 59 - 1 and tr.num_nodes == 12 and "simulate_polymer" in tr.source
    from irrepnet.data import save_trajectory, simulate_polymer

    p = save_trajectory(tmp_path / "sim.npz", simulate_polymer(cfg))
    tr2, te2 = twelve_body(p, history=1)
    torch.testing.assert_close(te2.batch(), te.batch())
    assert "not the dmol-book file" in tr2.source
    with pytest.raises(ValueError, match="sha256"):
        twelve_body(p, expect_dmol=True)
