"""Bead-spring polymer simulator: forces, energy conservation, determinism, geometry."""

import dataclasses
import math

import numpy as np
import pytest

from irrepnet.data import (
    DMOL_STATS,
    PolymerConfig,
    load_trajectory,
    polymer_energy,
    polymer_forces,
    save_trajectory,
    simulate_polymer,
    trajectory_stats,
)
from irrepnet.data.polymer import initial_chain

SHORT = dict(n_frames=150, n_equilibrate=300)


def _perturbed(cfg, seed=0, scale=0.05):
    return initial_chain(cfg) + scale * np.random.default_rng(seed).standard_normal((cfg.n_beads, cfg.dim))


@pytest.mark.parametrize("dim", [2, 3])
def test_forces_are_minus_gradient(dim):
    cfg = PolymerConfig(dim=dim, n_beads=9, lj_exclude=1, lj_cutoff=10.0)
    x = _perturbed(cfg)
    x[8] = x[2] + np.r_[0.3, 0.05, 0.0][:dim]  # a close non-bonded pair: LJ is active
    F, _ = polymer_forces(x, cfg)
    num = np.zeros_like(x)
    eps = 1e-6
    for i in range(cfg.n_beads):
        for d in range(dim):
            e = np.zeros_like(x)
            e[i, d] = eps
            num[i, d] = -(polymer_forces(x + e, cfg)[1] - polymer_forces(x - e, cfg)[1]) / (2 * eps)
    np.testing.assert_allclose(F, num, atol=1e-5 * np.abs(F).max())
    np.testing.assert_allclose(F.sum(0), 0.0, atol=1e-12 * np.abs(F).max())  # no net force: momentum is conserved


def test_lj_cutoff_is_continuous():
    """Force-shifted LJ: energy and force go to zero at r_c (no jump that breaks NVE)."""
    cfg = PolymerConfig(n_beads=4, bond_k=0.0, angle_k=0.0)  # only the (0, 3) pair has LJ
    rc = cfg.lj_cutoff * cfg.lj_sigma

    def pair(r):
        x = np.array([[0.0, 0.0], [0.0, 5.0], [0.0, 10.0], [r, 0.0]])
        F, U = polymer_forces(x, cfg)
        return np.abs(F[3]).max(), U

    f_out, u_out = pair(rc * (1 + 1e-9))
    assert f_out == 0.0 and u_out == 0.0
    for delta in (1e-3, 1e-5):
        f_in, u_in = pair(rc * (1 - delta))
        assert f_in < 10 * delta and abs(u_in) < 10 * delta**2  # linear and quadratic vanishing
    assert pair(rc * 0.5)[0] > 0.1  # but the interaction is real inside


def test_exclusions():
    """Beads with |i-j| <= lj_exclude do not feel LJ: with bonds and angles off, no force."""
    cfg = PolymerConfig(n_beads=3, bond_k=0.0, angle_k=0.0)
    x = np.array([[0.0, 0.0], [0.05, 0.0], [0.1, 0.0]])  # far inside sigma
    F, U = polymer_forces(x, cfg)
    assert U == 0.0 and (F == 0).all()
    F, U = polymer_forces(x, dataclasses.replace(cfg, lj_exclude=1))
    assert U > 0 and np.abs(F).max() > 0


@pytest.mark.parametrize("dim", [2, 3])
def test_energy_conserved_without_thermostat(dim):
    cfg = PolymerConfig(dim=dim, gamma=0.0, **SHORT)
    x, v = simulate_polymer(cfg, return_velocities=True)
    E = np.array([polymer_energy(x[k, :, :dim], v[k, :, :dim], cfg) for k in range(len(x))])
    kinetic = 0.5 * cfg.mass * (v**2).sum((1, 2)).mean()
    assert np.abs(E - E[0]).max() < 2e-3 * kinetic, np.abs(E - E[0]).max()
    # and no drift of the momentum (the centre-of-mass velocity was removed)
    np.testing.assert_allclose(v.sum(1), 0.0, atol=1e-9)


def test_langevin_thermostat_reaches_temperature():
    cfg = PolymerConfig(kT=2.0, gamma=5.0, n_frames=400, n_equilibrate=2000, save_every=10, seed=3)
    x, v = simulate_polymer(cfg, return_velocities=True)
    kT = cfg.mass * (v[:, :, :2] ** 2).mean()  # equipartition, per degree of freedom
    assert abs(kT - 2.0) < 0.3, kT


def test_deterministic_and_seeded():
    a = simulate_polymer(seed=7, **SHORT)
    b = simulate_polymer(seed=7, **SHORT)
    c = simulate_polymer(seed=8, **SHORT)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # also with the stochastic thermostat on during recording
    d1 = simulate_polymer(seed=7, gamma=1.0, **SHORT)
    d2 = simulate_polymer(seed=7, gamma=1.0, **SHORT)
    np.testing.assert_array_equal(d1, d2)


def test_2d_stays_in_plane_and_3d_leaves_it():
    x2 = simulate_polymer(dim=2, **SHORT)
    x3 = simulate_polymer(dim=3, **SHORT)
    assert x2.shape == x3.shape == (150, 12, 3)
    assert (x2[..., 2] == 0.0).all()
    assert np.abs(x3[..., 2]).max() > 1e-2


@pytest.mark.parametrize("n_beads", [1, 2, 3, 30])
def test_any_number_of_beads(n_beads):
    x = simulate_polymer(n_beads=n_beads, n_frames=20, n_equilibrate=50)
    assert x.shape == (20, n_beads, 3) and np.isfinite(x).all()


def test_save_and_load_in_dmol_format(tmp_path):
    x = simulate_polymer(**SHORT)
    p = save_trajectory(tmp_path / "chain.npz", x[..., :2])
    np.testing.assert_array_equal(load_trajectory(p), x)


def test_invalid_config():
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        simulate_polymer(dim=4)
    with pytest.raises(ValueError, match="dt must be > 0"):
        simulate_polymer(dt=0.0)
    with pytest.raises(ValueError, match="kT must be >= 0"):
        simulate_polymer(kT=-1.0)
    with pytest.raises(TypeError):
        simulate_polymer(not_a_field=1)


def test_defaults_resemble_the_dmol_file():
    """Full default run (2048 frames, ~2 s): the statistics the README gives for the dmol file."""
    s = trajectory_stats(simulate_polymer())
    assert s["mean_abs_dx"] == pytest.approx(DMOL_STATS["mean_abs_dx"], rel=0.15)
    assert s["bond_mean"] == pytest.approx(DMOL_STATS["bond_mean"], rel=0.05)
    assert s["bond_std"] == pytest.approx(DMOL_STATS["bond_std"], rel=0.15)
    assert s["turn_cos_mean"] == pytest.approx(DMOL_STATS["turn_cos_mean"], abs=0.1)
    assert math.isfinite(s["rg"])
