"""Charged N-body task: simulator physics and convention, splits, and the disk cache."""

import importlib
import time

import numpy as np
import pytest
import torch

from irrepnet import keys as K
from irrepnet.data import (
    NBodyConfig,
    cache_path,
    cache_root,
    coulomb_energy,
    coulomb_forces,
    nbody,
    nbody_sim,
    simulate_charged,
)

# the package re-exports the function nbody() under the module's name: fetch the module
nbody_mod = importlib.import_module("irrepnet.data.nbody_task")

SMALL = dict(n_pool=12, n_valid=6, n_test=8)


def _reference(x0, v0, q, n_steps, save_every, dt=0.001, max_force=100.0):
    """The documented convention, written as plainly as possible for one trajectory."""

    def force(x):
        return np.clip(coulomb_forces(x[None], q[None])[0], -max_force, max_force)

    x, v = x0.copy(), v0.copy()
    frames = [(x.copy(), v.copy())]
    v = v + dt * force(x)
    for step in range(1, n_steps + 1):
        x = x + dt * v
        if step % save_every == 0:
            frames.append((x.copy(), v.copy()))
        v = v + dt * force(x)
    return np.stack([f[0] for f in frames]), np.stack([f[1] for f in frames])


def test_integrator_follows_the_documented_convention():
    r = simulate_charged(3, n_steps=60, save_every=10, seed=4)
    s0 = nbody_sim.initial_state(3, 5, loc_std=1.0, vel_norm=0.5, charge_prob=0.5, seed=4)
    for k in range(3):
        xr, vr = _reference(s0[1][k], s0[2][k], s0[0][k], 50, 10)
        np.testing.assert_allclose(r["pos"][k], xr, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(r["vel"][k], vr, rtol=1e-10, atol=1e-12)
    # frame 0 is the initial state
    np.testing.assert_array_equal(r["pos"][:, 0], s0[1])


def test_initial_state_distribution():
    q, x, v = nbody_sim.initial_state(4000, 5, loc_std=1.0, vel_norm=0.5, charge_prob=0.5, seed=0)
    np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 0.5)
    assert abs(x.std() - 1.0) < 0.02 and abs(x.mean()) < 0.02
    assert set(np.unique(q)) == {-1.0, 1.0}
    assert abs((q > 0).mean() - 0.5) < 0.01  # charges balanced: +1 and -1 with probability 1/2
    dirs = v / 0.5
    assert np.abs(dirs.mean((0, 1))).max() < 0.02  # isotropic directions


def test_forces_repel_like_charges():
    x = np.array([[[0.0, 0, 0], [1.0, 0, 0]]])
    F = coulomb_forces(x, np.array([[[1.0], [1.0]]]))
    np.testing.assert_allclose(F[0], [[-1, 0, 0], [1, 0, 0]])
    F = coulomb_forces(x, np.array([[[1.0], [-1.0]]]))
    np.testing.assert_allclose(F[0], [[1, 0, 0], [-1, 0, 0]])


def test_energy_conserved_without_clipping():
    r = simulate_charged(200, seed=5)  # all 50 frames
    S, nF, n, _ = r["pos"].shape
    q = r["charge"]
    F = coulomb_forces(r["pos"].reshape(S * nF, n, 3), np.repeat(q, nF, axis=0)).reshape(S, nF, n, 3)
    # saved velocities lag the positions by half a step: synchronise them (frame 0 is exact)
    v = r["vel"] + 0.5 * 0.001 * F
    v[:, 0] = r["vel"][:, 0]
    E = coulomb_energy(r["pos"], v, q[:, None])
    scale = np.abs(E[:, :1]) + 0.5 * (r["vel"][:, :1] ** 2).sum((-1, -2))
    drift = (np.abs(E - E[:, :1]) / scale).max(1)
    ok = ~r["clipped"]
    assert ok.sum() > 50 and (~ok).sum() > 10
    assert drift[ok].max() < 5e-3 and np.median(drift[ok]) < 1e-3
    assert np.median(drift[~ok]) > 10 * np.median(drift[ok])  # clipping is what breaks it


def test_no_clipping_without_a_limit():
    r = simulate_charged(50, frames=[10], max_force=np.inf, seed=1)
    assert not r["clipped"].any()


def test_deterministic_prefix_stable_and_chunk_independent(monkeypatch):
    a = simulate_charged(7, frames=[3, 5], seed=9)
    b = simulate_charged(7, frames=[3, 5], seed=9)
    c = simulate_charged(3, frames=[3, 5], seed=9)
    for k in ("pos", "vel", "charge", "clipped"):
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k][:3], c[k])  # a larger pool extends a smaller one
    monkeypatch.setattr(nbody_sim, "_CHUNK", 2)
    d = simulate_charged(7, frames=[3, 5], seed=9)
    for k in ("pos", "vel", "clipped"):
        np.testing.assert_array_equal(a[k], d[k])
    assert not np.allclose(simulate_charged(7, frames=[3], seed=10)["pos"], a["pos"][:, :1])


def test_frames_order_and_repeats():
    r = simulate_charged(2, frames=[5, 0, 5], seed=0)
    np.testing.assert_array_equal(r["pos"][:, 0], r["pos"][:, 2])
    with pytest.raises(ValueError, match=r"frames must lie in \[0, 50\)"):
        simulate_charged(2, frames=[50])
    with pytest.raises(ValueError, match="n_particles >= 2"):
        simulate_charged(2, n_particles=1)


def test_samples(tmp_path):
    ds = nbody("test", cache_dir=tmp_path, **SMALL)
    assert len(ds) == 8 and ds.delta_t == pytest.approx(1.0) and ds.num_nodes == 5
    s = ds[0]
    assert set(s) == {K.POS, K.VEL, K.CHARGE, K.TARGET_POS, K.TARGET_DISP, K.NODE_INDEX}
    assert s[K.POS].shape == (5, 3) and s[K.CHARGE].shape == (5, 1) and s[K.POS].dtype == torch.float64
    torch.testing.assert_close(s[K.TARGET_DISP], s[K.TARGET_POS] - s[K.POS])
    r = simulate_charged(8, frames=[30, 40], seed=ds.seed)
    np.testing.assert_array_equal(ds.arrays()[K.POS].numpy(), r["pos"][:, 0])
    np.testing.assert_array_equal(ds.arrays()[K.TARGET_POS].numpy(), r["pos"][:, 1])
    np.testing.assert_array_equal(ds.arrays()[K.VEL].numpy(), r["vel"][:, 0])
    np.testing.assert_array_equal(ds.clipped, r["clipped"])
    assert nbody("test", cache_dir=tmp_path, dtype=torch.float32, **SMALL)[0][K.POS].dtype == torch.float32


def test_splits_differ_and_train_is_a_prefix_of_the_pool(tmp_path):
    tr = nbody("train", n_train=5, cache_dir=tmp_path, **SMALL)
    full = nbody("train", n_train=12, cache_dir=tmp_path, **SMALL)
    torch.testing.assert_close(tr.batch(), full.batch(range(5)))
    assert len(list(tmp_path.glob("*.npz"))) == 1  # n_train slices one cached pool
    va, te = nbody("valid", cache_dir=tmp_path, **SMALL), nbody("test", cache_dir=tmp_path, **SMALL)
    assert len({tr.seed, va.seed, te.seed}) == 3
    starts = [d.arrays()[K.POS][:, 0].numpy().round(12) for d in (full, va, te)]
    flat = [tuple(row) for s in starts for row in s]
    assert len(set(flat)) == len(flat)  # no trajectory shared between splits


def test_cache_hit_is_identical_and_does_not_simulate(tmp_path, monkeypatch):
    t0 = time.perf_counter()
    a = nbody("valid", cache_dir=tmp_path, **SMALL)
    t_miss = time.perf_counter() - t0

    def boom(*args, **kwargs):
        raise AssertionError("cache hit must not simulate")

    monkeypatch.setattr(nbody_mod, "generate_nbody", boom)
    t0 = time.perf_counter()
    b = nbody("valid", cache_dir=tmp_path, **SMALL)
    t_hit = time.perf_counter() - t0
    for k in a.fields:
        assert torch.equal(a.arrays()[k], b.arrays()[k])
    np.testing.assert_array_equal(a.clipped, b.clipped)
    assert t_hit < t_miss
    with pytest.raises(AssertionError, match="must not simulate"):
        nbody("valid", cache_dir=tmp_path, use_cache=False, **SMALL)


def test_different_parameters_different_files(tmp_path):
    nbody("test", cache_dir=tmp_path, **SMALL)
    nbody("test", cache_dir=tmp_path, config=NBodyConfig(vel_norm=0.4), **SMALL)
    nbody("test", cache_dir=tmp_path, config=NBodyConfig(frame_target=39), **SMALL)
    nbody("test", cache_dir=tmp_path, seed=1, **SMALL)
    nbody("test", cache_dir=tmp_path, n_pool=12, n_valid=6, n_test=9)
    nbody("valid", cache_dir=tmp_path, n_pool=12, n_valid=8, n_test=8)  # same size, other split seed
    assert len(list(tmp_path.glob("*.npz"))) == 6
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary files
    # equal values of another type are the same parameters
    a = NBodyConfig(dt=1e-3, max_force=100, n_steps=5000.0)
    assert a == NBodyConfig()
    assert cache_path("x", {"c": a.__dict__}) == cache_path("x", {"c": NBodyConfig().__dict__})


def test_cache_directory_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("IRREPNET_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    nbody("test", **SMALL)
    assert len(list((tmp_path / "env").glob("nbody-charged-*.npz"))) == 1
    monkeypatch.delenv("IRREPNET_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "irrepnet"


def test_corrupt_cache_file_is_regenerated(tmp_path):
    a = nbody("test", cache_dir=tmp_path, **SMALL)
    (f,) = tmp_path.glob("*.npz")
    f.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="unreadable"):
        b = nbody("test", cache_dir=tmp_path, **SMALL)
    torch.testing.assert_close(a.batch(), b.batch())


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        nbody("validation", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"n_train=20 must be in \[1, n_pool=12\]"):
        nbody("train", n_train=20, cache_dir=tmp_path, **SMALL)
    with pytest.raises(ValueError, match="frame_input < frame_target"):
        NBodyConfig(frame_input=40, frame_target=30)
    with pytest.raises(ValueError, match="n_steps // save_every = 50"):
        NBodyConfig(frame_target=50)
    with pytest.raises(ValueError, match="must be an integer"):
        NBodyConfig(save_every=100.5)


@pytest.mark.slow
def test_full_size_generation_under_two_minutes(tmp_path):
    t0 = time.perf_counter()
    sets = {s: nbody(s, cache_dir=tmp_path) for s in ("train", "valid", "test")}
    elapsed = time.perf_counter() - t0
    print(f"generated 10000 + 2000 + 2000 trajectories in {elapsed:.1f} s")
    assert elapsed < 120
    assert [len(sets[s]) for s in ("train", "valid", "test")] == [3000, 2000, 2000]
    assert nbody("train", n_train=10000, cache_dir=tmp_path).num_samples == 10000
