"""Bead-spring polymer chain: a simulator for trajectories like the dmol-book file.

The dmol-book 12-body trajectory (applied/e3nn_traj) is a bead-spring polymer with
harmonic bonds and angles and Lennard-Jones between beads. This module generates
such trajectories from a seed, so that the 12-body task runs without the
non-redistributable file and so that chains of any length and dimension exist.

Potential energy of a chain ``x_0 .. x_{N-1}`` (``r_{ij} = |x_i - x_j|``):

.. math::

    U = \\sum_{i} \\tfrac12 k_b (r_{i,i+1} - r_0)^2
      + \\sum_{i} \\tfrac12 k_\\theta (\\cos\\theta_i - \\cos\\theta_0)^2
      + \\sum_{|i-j| > e,\\ r_{ij} < r_c} \\left[ U_{LJ}(r_{ij}) - U_{LJ}(r_c)
        - (r_{ij} - r_c) U_{LJ}'(r_c) \\right],
    \\qquad U_{LJ}(r) = 4\\varepsilon \\left[(\\sigma / r)^{12} - (\\sigma / r)^{6}\\right]

with ``theta_i`` the bond angle at bead ``i`` (between ``x_{i-1} - x_i`` and
``x_{i+1} - x_i``; ``pi`` is a straight chain). The angle term is harmonic in
``cos theta`` (the GROMOS form) rather than in ``theta``: ``(theta - theta0)^2`` has a
cusp at the straight angle, which a 2-D chain crosses all the time, and the force
jump there breaks the energy conservation of velocity Verlet (measured: drift
~2e-3 of the total energy over 400 frames, against ~1e-4 with the cosine form);
near ``theta_0`` the two agree with ``k_theta(cos) = k_theta(theta) / sin^2 theta_0``.
Lennard-Jones acts between
*non-bonded* beads only: pairs with ``|i - j| <= e`` (``lj_exclude``, default 2:
bonded neighbours and the two ends of an angle) are excluded, as usual for
bead-spring models, because their distance is already set by the bond and angle
terms. LJ is cut at ``r_c = lj_cutoff * sigma`` and *force-shifted* (energy and force
both go continuously to zero at ``r_c``; a merely energy-shifted cut leaves a force
jump that makes the energy of a constant-energy run wander by ~1e-3 relative).

Integration: velocity Verlet; with friction ``gamma > 0`` the BAOAB Langevin
splitting (Leimkuhler & Matthews, *Appl. Math. Res. Express* 2013), which is
velocity Verlet with an exact Ornstein-Uhlenbeck velocity update in the middle:

.. math::

    v \\leftarrow v + \\tfrac{\\Delta t}{2m} F;\\quad x \\leftarrow x + \\tfrac{\\Delta t}{2} v;\\quad
    v \\leftarrow c_1 v + \\sqrt{(1 - c_1^2)\\,k_BT/m}\\,\\xi;\\quad
    x \\leftarrow x + \\tfrac{\\Delta t}{2} v;\\quad v \\leftarrow v + \\tfrac{\\Delta t}{2m} F(x)

with ``c_1 = exp(-gamma dt)`` and ``xi ~ N(0, 1)``. A run starts from a zig-zag
chain at bond length ``r_0`` and angle ``theta_0``, Maxwell-Boltzmann velocities at
``kT`` with the centre-of-mass velocity removed, equilibrates for
``n_equilibrate`` steps with friction ``gamma_equilibrate``, removes the
centre-of-mass velocity again, then records ``n_frames`` frames every
``save_every`` steps with friction ``gamma`` (default 0: constant energy, like the
dmol file, whose centre of mass moves at constant velocity).

Defaults (12 beads, 2-D, ``kT = 1``, unit mass, ``dt = 0.001``, a frame every 6
steps) were tuned by hand to resemble the dmol file (:data:`DMOL_STATS`). The run
with ``seed = 0`` is shipped as the 12-body task's default data
(:mod:`irrepnet.data.reference`); it gives, dmol in brackets: mean per-particle
``|dx|`` between frames 0.0074 (0.0076), bond length 0.366 +- 0.097 (0.363 +-
0.103), mean cosine between consecutive bonds 0.45 (0.44), radius of gyration 0.76
(0.78); and on the chronological test split the baselines of
:mod:`irrepnet.data.baselines` give MSE 2.37e-5 / 2.54e-7 / 4.57e-8 (2.43e-5 /
1.65e-7 / 5.60e-9); the constant-acceleration figure is dominated by a few close
encounters (the 5 worst of 410 test frames carry a third of it). The chain is
chaotic: on another CPU the same seed gives another trajectory, with the same
statistics within a few percent but other baselines (e.g. 2.20e-5 / 1.35e-7 /
5.9e-9). Over seeds 1-8, ``|dx|`` is 0.0074 +- 0.0006: a 12-bead chain at constant
energy keeps whatever temperature the equilibration left it with. Not matched: the dmol velocity
autocorrelation falls to ~0 after 20 frames, ours to ~0.2.

Shapes
------
returned trajectory ``(n_frames, n_beads, 3)`` float64, 2-D runs padded with ``z = 0``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PolymerConfig:
    """Parameters of :func:`simulate_polymer` (reduced units: bead mass and ``kT`` of order 1)."""

    n_beads: int = 12
    dim: int = 2  # 2: planar chain (padded with z = 0), 3: chain in space
    n_frames: int = 2048
    save_every: int = 6  # integrator steps between saved frames
    dt: float = 0.001
    mass: float = 1.0
    kT: float = 1.0
    bond_k: float = 100.0
    bond_r0: float = 0.335
    angle_k: float = 5.6
    angle_theta0: float = math.radians(114.0)  # radians; pi is straight
    lj_epsilon: float = 1.0
    lj_sigma: float = 0.27
    lj_cutoff: float = 2.5  # in units of lj_sigma
    lj_exclude: int = 2  # no LJ between beads with |i - j| <= lj_exclude
    gamma: float = 0.0  # friction during recording; 0 = velocity Verlet, constant energy
    gamma_equilibrate: float = 5.0
    n_equilibrate: int = 5000
    seed: int = 0


#: statistics of the dmol file measured with :func:`trajectory_stats` (z padded with 0).
DMOL_STATS = {
    "mean_abs_dx": 0.00759,
    "bond_mean": 0.363,
    "bond_std": 0.103,
    "turn_cos_mean": 0.437,
    "rg": 0.782,
}


def _check_config(cfg: PolymerConfig) -> None:
    if cfg.dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {cfg.dim}")
    if cfg.n_beads < 1:
        raise ValueError(f"n_beads must be >= 1, got {cfg.n_beads}")
    if cfg.n_frames < 1 or cfg.save_every < 1 or cfg.n_equilibrate < 0:
        raise ValueError(
            f"need n_frames >= 1, save_every >= 1, n_equilibrate >= 0; got {cfg.n_frames}, "
            f"{cfg.save_every}, {cfg.n_equilibrate}"
        )
    for name in ("dt", "mass", "lj_sigma", "lj_cutoff"):
        if not getattr(cfg, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)}")
    for name in ("kT", "bond_k", "angle_k", "lj_epsilon", "gamma", "gamma_equilibrate"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)}")


def _lj_mask(n: int, exclude: int) -> np.ndarray:
    i = np.arange(n)
    return np.abs(i[:, None] - i[None, :]) > exclude


def polymer_forces(x: np.ndarray, cfg: PolymerConfig) -> tuple[np.ndarray, float]:
    """Forces and potential energy of one chain.

    Shapes
    ------
    x ``(N, D)`` -> forces ``(N, D)``, energy scalar.
    """
    n = x.shape[0]
    F = np.zeros_like(x)
    U = 0.0
    if n >= 2:  # bonds: force on x_{i+1} is -k (r - r0) d / r with d = x_{i+1} - x_i
        d = x[1:] - x[:-1]
        r = np.sqrt((d * d).sum(-1))
        stretch = r - cfg.bond_r0
        f = (-cfg.bond_k * stretch / np.maximum(r, 1e-12))[:, None] * d
        F[1:] += f
        F[:-1] -= f
        U += 0.5 * cfg.bond_k * float((stretch * stretch).sum())
    if n >= 3 and cfg.angle_k > 0:
        a = x[:-2] - x[1:-1]
        b = x[2:] - x[1:-1]
        la = np.sqrt((a * a).sum(-1))
        lb = np.sqrt((b * b).sum(-1))
        cos = (a * b).sum(-1) / (la * lb)
        dcos = cos - math.cos(cfg.angle_theta0)
        U += 0.5 * cfg.angle_k * float((dcos * dcos).sum())
        # F_a = -dU/da = -k (cos - cos0) d cos/da, d cos/da = b/(|a||b|) - cos a/|a|^2
        pre = -cfg.angle_k * dcos
        fa = pre[:, None] * (b / (la * lb)[:, None] - (cos / (la * la))[:, None] * a)
        fb = pre[:, None] * (a / (la * lb)[:, None] - (cos / (lb * lb))[:, None] * b)
        F[:-2] += fa
        F[2:] += fb
        F[1:-1] -= fa + fb
    if n > cfg.lj_exclude + 1 and cfg.lj_epsilon > 0:
        diff = x[:, None, :] - x[None, :, :]  # (N, N, D): x_i - x_j
        r2 = (diff * diff).sum(-1)
        rc = cfg.lj_cutoff * cfg.lj_sigma
        mask = _lj_mask(n, cfg.lj_exclude) & (r2 < rc * rc)
        r = np.sqrt(np.where(mask, r2, 1.0))
        eps4, s = 4.0 * cfg.lj_epsilon, cfg.lj_sigma
        s6 = np.where(mask, (s / r) ** 6, 0.0)
        sc6 = cfg.lj_cutoff**-6
        frc = 6.0 * eps4 * (2.0 * sc6 * sc6 - sc6) / rc  # radial force at the cutoff
        u = eps4 * (s6 * s6 - s6) - eps4 * (sc6 * sc6 - sc6) + (r - rc) * frc
        # every pair appears twice in the (N, N) matrix: halve the energy
        U += 0.5 * float(np.where(mask, u, 0.0).sum())
        fr = np.where(mask, 6.0 * eps4 * (2.0 * s6 * s6 - s6) / r - frc, 0.0)
        F += ((fr / r)[:, :, None] * diff).sum(1)
    return F, U


def polymer_energy(x: np.ndarray, v: np.ndarray, cfg: PolymerConfig) -> float:
    """Total energy ``sum m v^2 / 2 + U(x)`` of one chain state ``(N, D)``."""
    return 0.5 * cfg.mass * float((v * v).sum()) + polymer_forces(x, cfg)[1]


def initial_chain(cfg: PolymerConfig) -> np.ndarray:
    """Planar zig-zag chain with bonds ``r_0`` and angles ``theta_0``, shape ``(N, D)``.

    A zig-zag has no overlapping non-bonded beads for any ``theta_0 > 0``, so the
    first force evaluation is finite; equilibration then randomises the shape.
    """
    half_turn = 0.5 * (math.pi - cfg.angle_theta0)
    phi = half_turn * np.where(np.arange(cfg.n_beads - 1) % 2 == 0, 1.0, -1.0)
    steps = np.zeros((cfg.n_beads - 1, cfg.dim))
    steps[:, 0] = np.cos(phi) * cfg.bond_r0
    steps[:, 1] = np.sin(phi) * cfg.bond_r0
    x = np.concatenate([np.zeros((1, cfg.dim)), np.cumsum(steps, axis=0)], axis=0)
    return x - x.mean(0)


def _run(x, v, F, n_steps, gamma, cfg, rng, save_every=0, out_x=None, out_v=None):
    """Advance ``(x, v, F)`` in place for ``n_steps`` BAOAB steps, recording every ``save_every``."""
    dt, m = cfg.dt, cfg.mass
    c1 = math.exp(-gamma * dt)
    noise = math.sqrt((1.0 - c1 * c1) * cfg.kT / m)
    k = 1
    for step in range(1, n_steps + 1):
        v += (0.5 * dt / m) * F
        if gamma > 0:
            x += 0.5 * dt * v
            v *= c1
            v += noise * rng.standard_normal(v.shape)
            x += 0.5 * dt * v
        else:
            x += dt * v
        F[:] = polymer_forces(x, cfg)[0]
        v += (0.5 * dt / m) * F
        if save_every and step % save_every == 0:
            out_x[k] = x
            if out_v is not None:
                out_v[k] = v
            k += 1


def simulate_polymer(
    config: PolymerConfig = None, *, return_velocities: bool = False, **overrides
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Simulate one bead-spring chain (see the module docstring for the model).

    Parameters
    ----------
    config : PolymerConfig, optional
        all parameters; defaults resemble the dmol 12-body file.
    return_velocities : bool
        also return the velocities at the saved frames.
    **overrides
        fields of :class:`PolymerConfig` to change, e.g. ``n_beads=20, dim=3``.

    Returns
    -------
    numpy.ndarray
        positions ``(n_frames, n_beads, 3)`` float64 (2-D runs have ``z = 0``
        exactly); with ``return_velocities`` also velocities of the same shape.
        Deterministic for a given config (the seed included).
    """
    cfg = dataclasses.replace(config or PolymerConfig(), **overrides)
    _check_config(cfg)
    rng = np.random.default_rng(cfg.seed)
    x = initial_chain(cfg)
    v = rng.standard_normal(x.shape) * math.sqrt(cfg.kT / cfg.mass)
    v -= v.mean(0)  # no centre-of-mass drift: the chain stays near the origin
    F = polymer_forces(x, cfg)[0]
    _run(x, v, F, cfg.n_equilibrate, cfg.gamma_equilibrate, cfg, rng)
    v -= v.mean(0)
    T = cfg.n_frames
    out_x = np.empty((T,) + x.shape)
    out_v = np.empty((T,) + x.shape) if return_velocities else None
    out_x[0] = x
    if out_v is not None:
        out_v[0] = v
    _run(x, v, F, (T - 1) * cfg.save_every, cfg.gamma, cfg, rng, cfg.save_every, out_x, out_v)

    def pad(a):
        return a if cfg.dim == 3 else np.concatenate([a, np.zeros(a.shape[:2] + (1,))], axis=-1)

    return (pad(out_x), pad(out_v)) if return_velocities else pad(out_x)


def trajectory_stats(x: np.ndarray) -> dict:
    """Statistics used to compare a chain trajectory ``(T, N, 3)`` with the dmol file.

    ``mean_abs_dx``: mean over frames and beads of ``|x(t+1) - x(t)|``;
    ``bond_mean``/``bond_std``: of ``|x_{i+1} - x_i|``; ``turn_cos_mean``: mean cosine
    between consecutive bond vectors; ``rg``: mean radius of gyration.
    """
    x = np.asarray(x, dtype=np.float64)
    dx = np.sqrt(((x[1:] - x[:-1]) ** 2).sum(-1))
    bonds = x[:, 1:] - x[:, :-1]
    blen = np.sqrt((bonds**2).sum(-1))
    cos = (bonds[:, 1:] * bonds[:, :-1]).sum(-1) / (blen[:, 1:] * blen[:, :-1])
    rg = np.sqrt(((x - x.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))
    return {
        "mean_abs_dx": float(dx.mean()),
        "bond_mean": float(blen.mean()),
        "bond_std": float(blen.std()),
        "turn_cos_mean": float(cos.mean()) if cos.size else float("nan"),
        "rg": float(rg.mean()),
    }
