"""Physical baselines: exact on the motions they assume, and the published dmol numbers."""

import numpy as np
import pytest
import torch

from irrepnet import keys as K
from irrepnet.data import (
    TrajectoryDataset,
    applicable_baselines,
    constant_acceleration,
    constant_velocity,
    evaluate_baselines,
    find_dmol_file,
    fit_linear_delta_t,
    linear,
    nbody,
    predict,
    twelve_body,
    zero_displacement,
)
from irrepnet.data.trajectory import DEFAULT_DMOL_LOCATION

DMOL_FILE = find_dmol_file()  # $IRREPNET_DMOL_FILE or ../shared/data/paths.npz


def _polynomial_traj(order, T=12, N=3):
    """x(t) = a + b t (+ c t^2): constant velocity (order 1) or acceleration (order 2)."""
    rng = np.random.default_rng(order)
    a, b, c = rng.standard_normal((3, N, 3))
    t = np.arange(T, dtype=float)[:, None, None]
    return a + b * t + (c * t**2 if order == 2 else 0.0)


def test_constant_velocity_is_exact_on_uniform_motion():
    mse = evaluate_baselines(TrajectoryDataset(_polynomial_traj(1), history=2))
    assert mse["constant_velocity"] < 1e-25 and mse["constant_acceleration"] < 1e-25 and mse["zero"] > 0.1


def test_constant_acceleration_is_exact_on_quadratic_motion():
    ds = TrajectoryDataset(_polynomial_traj(2), history=2)
    mse = evaluate_baselines(ds)
    assert mse["constant_acceleration"] < 1e-20 and mse["constant_velocity"] > 0.1
    # per-coordinate mean: constant velocity misses by exactly the 2c of the second difference
    c = _polynomial_traj(2)[2] - 2 * _polynomial_traj(2)[1] + _polynomial_traj(2)[0]
    assert mse["constant_velocity"] == pytest.approx(float((c**2).mean()))


def test_functions_on_a_batch():
    ds = TrajectoryDataset(_polynomial_traj(2), history=3)
    b = ds.batch([0, 1])
    assert zero_displacement(b).abs().sum() == 0
    torch.testing.assert_close(constant_velocity(b), b[K.VEL])
    torch.testing.assert_close(constant_acceleration(b), 2 * b[K.VEL_HISTORY][:, :3] - b[K.VEL_HISTORY][:, 3:6])
    torch.testing.assert_close(linear(b, 2.0), 2.0 * b[K.VEL])
    # one batch dict gives the same numbers as the dataset
    assert evaluate_baselines(ds.batch()) == pytest.approx(evaluate_baselines(ds, batch_size=3))


def test_applicable_baselines():
    assert applicable_baselines(TrajectoryDataset(_polynomial_traj(1), history=0)) == ["zero"]
    assert applicable_baselines(TrajectoryDataset(_polynomial_traj(1), history=1)) == ["zero", "constant_velocity"]
    assert applicable_baselines(TrajectoryDataset(_polynomial_traj(1), history=4)) == [
        "zero",
        "constant_velocity",
        "constant_acceleration",
    ]


@pytest.mark.parametrize(
    "h, name, match",
    [
        (0, "constant_velocity", r"needs history h >= 1 \(frames t-1\) but the data has h = 0.*history=1"),
        (1, "constant_acceleration", r"needs history h >= 2 \(frames t-1 and t-2\) but the data has h = 1.*history=2"),
        (0, "constant_acceleration", "h = 0"),
    ],
)
def test_not_enough_history(h, name, match):
    ds = TrajectoryDataset(_polynomial_traj(1), history=h)
    with pytest.raises(ValueError, match=match):
        evaluate_baselines(ds, [name])
    with pytest.raises(ValueError, match=match):
        predict(name, ds.batch())


def test_linear_needs_velocity_and_delta_t():
    ds = TrajectoryDataset(_polynomial_traj(1), history=1)
    with pytest.raises(ValueError, match="needs delta_t"):
        evaluate_baselines(ds, ["linear"])
    assert evaluate_baselines(ds, ["linear"], delta_t=1.0)["linear"] < 1e-25
    with pytest.raises(ValueError, match="needs the 'vel' field"):
        evaluate_baselines(TrajectoryDataset(_polynomial_traj(1)), ["linear"], delta_t=1.0)
    with pytest.raises(ValueError, match="unknown baseline 'kalman'"):
        evaluate_baselines(ds, ["kalman"])


def test_nbody_linear_baseline(tmp_path):
    ds = nbody("test", n_test=40, cache_dir=tmp_path)
    assert applicable_baselines(ds) == ["zero", "linear"]
    mse = evaluate_baselines(ds)
    a = {k: v.numpy() for k, v in ds.arrays().items()}
    expect = ((a[K.POS] + a[K.VEL] * 1.0 - a[K.TARGET_POS]) ** 2).mean()  # p(30) + v(30) * 1.0 vs p(40)
    assert mse["linear"] == pytest.approx(expect, rel=1e-12)
    assert mse["zero"] == pytest.approx(((a[K.POS] - a[K.TARGET_POS]) ** 2).mean(), rel=1e-12)
    t = fit_linear_delta_t(ds)
    assert evaluate_baselines(ds, ["linear"], delta_t=t)["linear"] <= mse["linear"]


def test_fit_linear_delta_t_recovers_the_step():
    ds = TrajectoryDataset(_polynomial_traj(1), history=1)
    assert fit_linear_delta_t(ds) == pytest.approx(1.0)


@pytest.mark.real_data
@pytest.mark.skipif(
    DMOL_FILE is None,
    reason=f"dmol-book paths.npz not found at {DEFAULT_DMOL_LOCATION} (CC BY-NC 3.0, never committed; "
    "download data/paths.npz from the dmol-book repository and set IRREPNET_DMOL_FILE)",
)
@pytest.mark.parametrize("history", [2, 3])
def test_dmol_published_baselines(history):
    """README figures: chronological test split = frames t >= 1637, the same for every h."""
    train, test = twelve_body(DMOL_FILE, history=history, expect_dmol=True)
    assert len(test) == 410 and test.frames[0] == 1637 and len(train) == 1637 - history
    mse = evaluate_baselines(test)
    print({k: f"{v:.3g}" for k, v in mse.items()})
    assert f"{mse['zero']:.2e}" == "2.43e-05"
    assert f"{mse['constant_velocity']:.2e}" == "1.65e-07"
    assert f"{mse['constant_acceleration']:.2e}" == "5.60e-09"
