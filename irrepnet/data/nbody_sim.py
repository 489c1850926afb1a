"""Charged particles in 3-D: the N-body system of the EGNN paper, simulated in batch.

Satorras, Hoogeboom & Welling, "E(n) Equivariant Graph Neural Networks", ICML 2021
(https://arxiv.org/abs/2102.09844), section 5.1, after the charged-particle system
of Kipf et al., "Neural Relational Inference", ICML 2018 (NRI), without its box.
This is an independent, vectorised implementation of the physics they describe.

Each trajectory: ``n`` particles with charges ``q_i = +1`` or ``-1`` (probability
1/2 each), Coulomb-like pair forces, clipped per component,

.. math::

    F_i = \\mathrm{clip}\\Big( s \\sum_{j \\ne i} q_i q_j
          \\frac{x_i - x_j}{\\lVert x_i - x_j \\rVert^3},\\ -F_{max},\\ F_{max} \\Big),
    \\qquad U = s \\sum_{i<j} \\frac{q_i q_j}{\\lVert x_i - x_j \\rVert}

(like charges repel), unit masses, ``x(0) ~ N(0, loc_std^2)`` per coordinate and
``v(0) = vel_norm * g / |g|`` with ``g ~ N(0, I_3)`` (a random direction).

Integration follows the NRI/EGNN leapfrog convention, step ``dt``:

1. record frame 0 = ``(x(0), v(0))``;
2. kick once before the first drift: ``v <- v + dt F(x)``;
3. for steps ``k = 1, 2, ...``: drift ``x <- x + dt v``; if ``k`` is a multiple of
   ``save_every``, record ``(x, v)`` as frame ``k / save_every``; kick
   ``v <- v + dt F(x)``.

So saved frame ``f`` is the state after ``f * save_every`` drifts, and its velocity
is the one that made the last drift (a leapfrog half-step velocity, offset by
``dt/2`` from the positions). Note: the published EGNN generator stores the initial
state and then starts its frame counter at 0 again, so its frame ``f`` is the state
after ``(f + 1) * save_every`` steps (its frames 30 and 40 are steps 3100 and 4100,
ours 3000 and 4000); the task is statistically almost the same, not identical. The physical time between saved frames ``f`` and
``g`` is ``(g - f) * save_every * dt``. Only the steps up to the last requested
frame are simulated.

All trajectories advance together: each step is a loop over the ``n(n-1)/2``
pairs whose body works on arrays of ``(3, S)`` (Newton's third law: one pair
force, added to one particle and subtracted from the other); there is no Python
loop over trajectories. 14000 trajectories x 4000 steps take about 10 s on one
core (see ``_CHUNK``).

Shapes
------
``pos, vel`` ``(S, F, n, 3)`` for ``F`` requested frames; ``charge`` ``(S, n, 1)``;
``clipped`` ``(S,)`` bool, ``True`` where some force component hit ``F_max``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def initial_state(n_traj: int, n_particles: int, *, loc_std: float, vel_norm: float, charge_prob: float, seed: int):
    """Charges ``(S, n, 1)``, positions and velocities ``(S, n, 3)``.

    Each quantity has its own random stream (``SeedSequence(seed).spawn(3)``) and is
    drawn in trajectory order, so the first ``k`` trajectories are the same for
    every ``n_traj >= k``: a larger pool extends a smaller one.
    """
    s_charge, s_pos, s_vel = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    charge = np.where(s_charge.random((n_traj, n_particles, 1)) < charge_prob, 1.0, -1.0)
    pos = s_pos.standard_normal((n_traj, n_particles, 3)) * loc_std
    g = s_vel.standard_normal((n_traj, n_particles, 3))
    vel = vel_norm * g / np.linalg.norm(g, axis=-1, keepdims=True)
    return charge, pos, vel


#: the published generator (EGNN's ``n_body_system/dataset/generate_dataset.py``, which the
#: SEGNN code reuses for its ``nbody_small`` data): its seed and split sizes, in its order
EGNN_GENERATOR_SEED = 43
EGNN_GENERATOR_SPLITS = (("train", 10000), ("valid", 2000), ("test", 2000))


def egnn_generator_draws(
    *,
    n_particles: int = 5,
    loc_std: float = 1.0,
    vel_norm: float = 0.5,
    n_steps: int = 5000,
    save_every: int = 100,
    box_size: float = 5.0,
    seed: int = EGNN_GENERATOR_SEED,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The initial states that the published N-body generator draws, split by split.

    That generator seeds NumPy's legacy global ``RandomState`` once (``--seed 43`` for
    the ``nbody_small`` files) and simulates 10000 training, then 2000 validation, then
    2000 test trajectories, one after the other. Each trajectory takes from the one
    stream, in this order: the charges (``choice([-1, 0, 1], size=(n, 1), p=[1/2, 0, 1/2])``),
    the positions (``randn(3, n)`` times ``loc_std (n/5)^(1/3)``), the velocity directions
    (``randn(3, n)``, scaled to ``vel_norm`` per particle), and, after its simulation, two
    arrays of observation noise of shape ``(n_steps / save_every - 1, 3, n)`` that are
    multiplied by a noise level of 0 but still advance the stream. The initial state is
    also reflected into the box ``[-box_size, box_size]`` (it only matters for a
    coordinate beyond 5 standard deviations). The simulation itself draws nothing, so
    replaying these calls reproduces every trajectory's initial state exactly; this is an
    independent implementation of that order, not the generator's code.

    Returns
    -------
    dict
        ``{"train" | "valid" | "test": (charge (S, n, 1), pos (S, n, 3), vel (S, n, 3))}``.
    """
    rs = np.random.RandomState(seed)
    types, probs = np.array([-1.0, 0.0, 1.0]), [0.5, 0.0, 0.5]
    noise_shape = (n_steps // save_every - 1, 3, n_particles)
    spread = loc_std * (n_particles / 5.0) ** (1.0 / 3.0)
    out = {}
    for split, count in EGNN_GENERATOR_SPLITS:
        charge = np.empty((count, n_particles, 1))
        pos = np.empty((count, n_particles, 3))
        vel = np.empty((count, n_particles, 3))
        for s in range(count):
            charge[s] = rs.choice(types, size=(n_particles, 1), p=probs)
            x = rs.randn(3, n_particles) * spread
            g = rs.randn(3, n_particles)
            v = g * vel_norm / np.sqrt((g**2).sum(axis=0, keepdims=True))
            pos[s], vel[s] = _reflect_into_box(x, v, box_size)
            rs.randn(*noise_shape)  # position noise x 0
            rs.randn(*noise_shape)  # velocity noise x 0
        out[split] = (charge, pos, vel)
    return out


def _reflect_into_box(x: np.ndarray, v: np.ndarray, box: float) -> tuple[np.ndarray, np.ndarray]:
    """``(3, n)`` positions beyond ``+-box`` mirrored back inside, their velocities pointed inwards; as ``(n, 3)``."""
    x, v = x.copy(), v.copy()
    over, under = x > box, x < -box
    x[over], v[over] = 2 * box - x[over], -np.abs(v[over])
    x[under], v[under] = -2 * box - x[under], np.abs(v[under])
    return x.T, v.T


def coulomb_forces(pos: np.ndarray, charge: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Unclipped forces ``(S, n, 3)`` of positions ``(S, n, 3)`` and charges ``(S, n, 1)``.

    A plain all-pairs reference, used by the tests to check the batched integrator.
    """
    d = pos[:, :, None, :] - pos[:, None, :, :]  # (S, n, n, 3): x_i - x_j
    r2 = (d * d).sum(-1)
    n = pos.shape[1]
    r2[:, np.arange(n), np.arange(n)] = np.inf  # no self force
    qq = strength * charge[:, :, None, 0] * charge[:, None, :, 0]
    return ((qq / (r2 * np.sqrt(r2)))[..., None] * d).sum(2)


def coulomb_energy(pos: np.ndarray, vel: np.ndarray, charge: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Total energy ``sum v^2 / 2 + U`` (unit masses) of states ``(..., n, 3)``; shape ``(...)``.

    ``charge`` ``(S, n, 1)`` broadcasts against positions ``(S, F, n, 3)`` when given
    as ``charge[:, None]``.
    """
    i, j = np.triu_indices(pos.shape[-2], 1)
    d = pos[..., i, :] - pos[..., j, :]
    r = np.sqrt((d * d).sum(-1))
    u = strength * (charge[..., i, 0] * charge[..., j, 0] / r).sum(-1)
    return 0.5 * (vel * vel).sum((-1, -2)) + u


def simulate_charged(
    n_traj: int,
    *,
    n_particles: int = 5,
    frames: Sequence[int] | None = None,
    n_steps: int = 5000,
    dt: float = 0.001,
    save_every: int = 100,
    loc_std: float = 1.0,
    vel_norm: float = 0.5,
    max_force: float = 100.0,
    strength: float = 1.0,
    charge_prob: float = 0.5,
    seed: int = 0,
    initial: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Simulate ``n_traj`` independent charged systems (see the module docstring).

    Parameters
    ----------
    n_traj : int
        number of trajectories ``S``.
    frames : sequence of int, optional
        saved-frame indices to return, each in ``[0, n_steps // save_every)``
        (with the defaults: steps ``0, 100, ..., 4900``, 50 frames); default all of them.
        The simulation stops at the largest one.
    n_steps, dt, save_every : int, float, int
        leapfrog steps (5000), step (0.001), steps between frames (100).
    loc_std, vel_norm : float
        initial position spread (1.0) and speed (0.5).
    max_force : float
        per-component force clip (100.0); ``inf`` disables it.
    strength : float
        interaction strength ``s`` (1.0).
    charge_prob : float
        probability of a ``+1`` charge (0.5).
    seed : int
    initial : (charge, pos, vel), optional
        the initial states ``(S, n, 1)``, ``(S, n, 3)``, ``(S, n, 3)`` to integrate
        (e.g. :func:`egnn_generator_draws`) instead of drawing them from ``seed``;
        ``n_traj`` must be ``S``.

    Returns
    -------
    dict
        ``pos``, ``vel`` ``(S, F, n, 3)`` float64 at the requested frames (in the
        order given), ``charge`` ``(S, n, 1)``, ``clipped`` ``(S,)`` bool (any
        clipping up to the last requested frame).
    """
    n_frames_total = n_steps // save_every
    if n_traj < 1 or n_particles < 2:
        raise ValueError(f"need n_traj >= 1 and n_particles >= 2, got {n_traj} and {n_particles}")
    frames = np.arange(n_frames_total) if frames is None else np.asarray(frames, dtype=np.int64).reshape(-1)
    if frames.size == 0 or frames.min() < 0 or frames.max() >= n_frames_total:
        raise ValueError(
            f"frames must lie in [0, {n_frames_total}) (n_steps={n_steps} // save_every={save_every}), got {frames.tolist()}"
        )
    if initial is None:
        charge, x0, v0 = initial_state(
            n_traj, n_particles, loc_std=loc_std, vel_norm=vel_norm, charge_prob=charge_prob, seed=seed
        )
    else:
        charge, x0, v0 = (np.asarray(a, dtype=np.float64) for a in initial)
        if charge.shape != (n_traj, n_particles, 1) or x0.shape != v0.shape or x0.shape != (n_traj, n_particles, 3):
            raise ValueError(
                f"initial states must be charge ({n_traj}, {n_particles}, 1) and pos, vel "
                f"({n_traj}, {n_particles}, 3); got {charge.shape}, {x0.shape}, {v0.shape}"
            )
    pos = np.empty((n_traj, frames.size, n_particles, 3))
    vel = np.empty_like(pos)
    clipped = np.zeros(n_traj, dtype=bool)
    for lo in range(0, n_traj, _CHUNK):
        hi = min(lo + _CHUNK, n_traj)
        p, v, c = _leapfrog(
            x0[lo:hi],
            v0[lo:hi],
            charge[lo:hi],
            frames,
            dt=dt,
            save_every=save_every,
            max_force=max_force,
            strength=strength,
        )
        pos[lo:hi], vel[lo:hi], clipped[lo:hi] = p, v, c
    return {"pos": pos, "vel": vel, "charge": charge, "clipped": clipped}


# Trajectories are integrated in chunks of this many: ~500 keeps the working set of
# one step in cache (measured: ~10 s for 14000 x 4000 steps against ~20 s in one
# block). Every operation is element-wise per trajectory with a fixed order of
# summation, so a trajectory's result does not depend on the chunking or on S.
_CHUNK = 512


def _leapfrog(x0, v0, charge, frames, *, dt, save_every, max_force, strength):
    """Integrate one chunk; internal layout ``(n, 3, S)`` so each operation runs over
    contiguous rows of ``S`` trajectories (vectorises well; ``(S, n, 3)`` does not)."""
    n = x0.shape[1]
    x = np.ascontiguousarray(x0.transpose(1, 2, 0))  # (n, 3, S)
    v = np.ascontiguousarray(v0.transpose(1, 2, 0))
    q = charge[:, :, 0].T  # (n, S)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    qq = [strength * q[a] * q[b] for a, b in pairs]  # constant in time
    S = x.shape[2]
    out_x = np.empty((len(frames), n, 3, S))
    out_v = np.empty_like(out_x)
    clipped = np.zeros(S, dtype=bool)
    F = np.empty_like(x)

    def kick():
        F.fill(0.0)
        for (a, b), w in zip(pairs, qq):
            d = x[a] - x[b]  # (3, S)
            r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
            f = (w / (r2 * np.sqrt(r2))) * d  # force on a from b; b gets -f
            F[a] += f
            F[b] -= f
        over = np.abs(F) > max_force
        if over.any():
            clipped[over.any(axis=(0, 1))] = True
            np.clip(F, -max_force, max_force, out=F)
        v[...] += dt * F

    def record(f):
        for k in np.nonzero(frames == f)[0]:  # a frame may be requested twice
            out_x[k], out_v[k] = x, v

    wanted = set(int(f) for f in frames)
    record(0)
    kick()
    last = int(frames.max()) * save_every
    for step in range(1, last + 1):
        x += dt * v
        if step % save_every == 0 and step // save_every in wanted:
            record(step // save_every)
        if step < last:  # the kick after the last recorded frame would be wasted
            kick()
    # (F, n, 3, S) -> (S, F, n, 3)
    return out_x.transpose(3, 0, 1, 2), out_v.transpose(3, 0, 1, 2), clipped
