"""The nbody task on the published EGNN generator's draws (draws="egnn-generator", data = "egnn-generator")."""

import numpy as np
import pytest

from irrepnet.bench.suite import Suite
from irrepnet.data import nbody_sim
from irrepnet.data.nbody_task import NBodyConfig, nbody
from irrepnet.registry import ConfigError
from irrepnet.tasks import load_task


@pytest.fixture(scope="module")
def draws():
    return nbody_sim.egnn_generator_draws()


def test_the_generator_stream_in_its_documented_order(draws):
    """The contract: one legacy RandomState(43), per trajectory charges, positions, velocities, two noise arrays."""
    rs = np.random.RandomState(43)
    expected = []
    for _ in range(2):
        q = rs.choice([-1.0, 0.0, 1.0], size=(5, 1), p=[0.5, 0.0, 0.5])
        x, g = rs.randn(3, 5), rs.randn(3, 5)
        rs.randn(49 * 3 * 5 * 2)  # the zero-weighted observation noise still advances the stream
        expected.append((q, x.T, (0.5 * g / np.linalg.norm(g, axis=0)).T))
    charge, pos, vel = draws["train"]
    for s, (q, x, v) in enumerate(expected):
        np.testing.assert_array_equal(charge[s], q)
        np.testing.assert_array_equal(pos[s], x)
        np.testing.assert_allclose(vel[s], v, rtol=1e-15, atol=0)


def test_draws_are_the_generator_splits_in_order(draws):
    assert {k: len(v[0]) for k, v in draws.items()} == {"train": 10000, "valid": 2000, "test": 2000}
    for charge, pos, vel in draws.values():
        assert set(np.unique(charge)) == {-1.0, 1.0}  # the neutral type has probability 0
        np.testing.assert_allclose(np.linalg.norm(vel, axis=-1), 0.5)
        assert 0.95 < pos.std() < 1.05 and np.abs(pos).max() <= 5.0  # N(0, 1), inside the generator's box
    # the valid split continues the stream where the 10000th training trajectory stopped
    assert not np.array_equal(draws["valid"][1][:50], draws["train"][1][:50])
    assert not np.array_equal(draws["test"][1][:50], draws["valid"][1][:50])


def test_reflection_into_the_box():
    x = np.array([[6.0, -7.0], [0.0, 0.0], [0.0, 0.0]])
    v = np.array([[1.0, -1.0], [0.5, 0.5], [0.0, 0.0]])
    xr, vr = nbody_sim._reflect_into_box(x, v, 5.0)
    np.testing.assert_array_equal(xr[:, 0], [4.0, -3.0])  # 2*5 - 6 and -2*5 + 7
    np.testing.assert_array_equal(vr[:, 0], [-1.0, 1.0])  # pointed back inside
    np.testing.assert_array_equal(vr[:, 1], [0.5, 0.5])


def test_simulating_given_initial_states_equals_simulating_the_drawn_ones():
    drawn = nbody_sim.simulate_charged(4, frames=[1, 3], seed=7)
    initial = nbody_sim.initial_state(4, 5, loc_std=1.0, vel_norm=0.5, charge_prob=0.5, seed=7)
    given = nbody_sim.simulate_charged(4, frames=[1, 3], initial=initial, seed=123)  # the seed is then unused
    for k in ("pos", "vel", "charge", "clipped"):
        np.testing.assert_array_equal(drawn[k], given[k])
    with pytest.raises(ValueError, match=r"initial states must be charge \(3, 5, 1\)"):
        nbody_sim.simulate_charged(3, frames=[1], initial=initial)


def test_task_on_the_generator_draws(tmp_path, draws):
    ds = nbody("valid", draws="egnn-generator", cache_dir=tmp_path)
    assert len(ds) == 2000 and ds.seed == 43 and ds.draws == "egnn-generator"
    assert (ds.config.frame_input, ds.config.frame_target) == (31, 41)  # the generator's frames 30 and 40
    assert "draws=egnn-generator" in repr(ds)
    arrays = ds.arrays()
    ref = nbody_sim.simulate_charged(3, frames=[31, 41], initial=tuple(a[:3] for a in draws["valid"]))
    np.testing.assert_array_equal(np.asarray(arrays["pos"][:3]), ref["pos"][:, 0])
    np.testing.assert_array_equal(np.asarray(arrays["target_pos"][:3]), ref["pos"][:, 1])
    np.testing.assert_array_equal(np.asarray(arrays["charge"][:3]), draws["valid"][0][:3])
    # cached under its own key: irrepnet's own draws of the same split are other trajectories
    own = nbody("valid", cache_dir=tmp_path, config=NBodyConfig(frame_input=31, frame_target=41))
    assert not np.array_equal(np.asarray(own.arrays()["pos"]), np.asarray(arrays["pos"]))


def test_generator_draws_refuse_other_sizes_and_seeds(tmp_path):
    with pytest.raises(ValueError, match="10000/2000/2000 trajectories from seed 43"):
        nbody("test", draws="egnn-generator", n_test=100, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="drop n_pool/n_valid/n_test/seed"):
        nbody("test", draws="egnn-generator", seed=1, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="draws must be one of"):
        nbody("test", draws="paper", cache_dir=tmp_path)


def test_task_and_suite_options():
    with pytest.raises(ValueError, match="--data egnn-generator replays the published EGNN generator"):
        load_task("nbody", data="some.npz")
    with pytest.raises(ConfigError, match="is an nbody option"):
        Suite(name="s", task="twelve_body", data="egnn-generator", models=["egnn"])
    assert Suite(name="s", task="nbody", data="egnn-generator", models=["egnn"]).data == "egnn-generator"
