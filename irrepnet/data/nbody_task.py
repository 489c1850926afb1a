"""The charged N-body task of the EGNN paper: predict positions 10 frames ahead.

Satorras, Hoogeboom & Welling, "E(n) Equivariant Graph Neural Networks", ICML 2021
(https://arxiv.org/abs/2102.09844), section 5.1. Five charged particles in 3-D
(physics and integration in :mod:`irrepnet.data.nbody_sim`); a sample gives the
positions, velocities and charges at saved frame 30 and asks for the positions at
frame 40, i.e. ``Delta t = (40 - 30) * 100 * 0.001 = 1.0`` time units later:

.. math::

    \\mathrm{pos} = x(30), \\quad \\mathrm{vel} = v(30), \\quad
    \\mathrm{target\\_pos} = x(40), \\quad \\mathrm{target\\_disp} = x(40) - x(30).

Splits as in the paper: 3000 training trajectories (the first ``n_train`` of a
10000-trajectory training pool, so that learning curves over ``n_train`` use
nested sets), 2000 validation, 2000 test, each split from its own fixed seed.
With ``draws="egnn-generator"`` the trajectories start from exactly the initial states
of the published generator's ``nbody_small`` files (:func:`~irrepnet.data.nbody_sim.egnn_generator_draws`),
integrated by irrepnet's simulator, and the frames are numbered as that generator numbers
them: its frame ``f`` is the state after ``(f + 1) x 100`` steps, so its frames 30 and 40
are ``frame_input=31, frame_target=41`` here. Only the rounding of the integration differs.
Generated arrays are cached on disk (:mod:`irrepnet.data.cache`) under a hash of
every parameter; generating all 14000 trajectories takes ~15 s on one core.

Shapes
------
sample: ``pos, vel, target_pos, target_disp (5, 3)``, ``charge (5, 1)``,
``node_index (5,)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import keys as K
from .cache import cached_arrays
from .dataset import GraphArrayDataset
from .nbody_sim import EGNN_GENERATOR_SEED, EGNN_GENERATOR_SPLITS, egnn_generator_draws, simulate_charged

#: bump when the generator changes in a way that changes its output.
GENERATOR_VERSION = 1

#: default seed of each split (different, so that no trajectory is in two splits).
SPLIT_SEEDS = {"train": 2021_1, "valid": 2021_2, "test": 2021_3}
SPLIT_SIZES = {"train": 10000, "valid": 2000, "test": 2000}  # train: the pool size
#: where the initial states come from: irrepnet's own seeded streams, or the published generator's
DRAWS = ("irrepnet", "egnn-generator")


@dataclass(frozen=True)
class NBodyConfig:
    """Physics, integration and sampling of the charged N-body task (EGNN defaults)."""

    n_particles: int = 5
    n_steps: int = 5000  # length of the reference simulation; only frames <= frame_target are run
    dt: float = 0.001
    save_every: int = 100
    frame_input: int = 30
    frame_target: int = 40
    loc_std: float = 1.0
    vel_norm: float = 0.5
    max_force: float = 100.0
    strength: float = 1.0
    charge_prob: float = 0.5

    def __post_init__(self):
        # canonical types, so that dt=1e-3 and dt=0.001 or max_force=100 and 100.0
        # give the same cache key
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                if int(value) != value:
                    raise ValueError(f"{f.name} must be an integer, got {value!r}")
                object.__setattr__(self, f.name, int(value))
            elif f.type == "float":
                object.__setattr__(self, f.name, float(value))
        n_frames = self.n_steps // self.save_every
        if not 0 <= self.frame_input < self.frame_target < n_frames:
            raise ValueError(
                f"need 0 <= frame_input < frame_target < n_steps // save_every = {n_frames}, "
                f"got frame_input={self.frame_input}, frame_target={self.frame_target}"
            )

    @property
    def delta_t(self) -> float:
        """Physical time between the input and the target frame."""
        return (self.frame_target - self.frame_input) * self.save_every * self.dt


class NBodyDataset(GraphArrayDataset):
    """Samples of the charged N-body task (see the module docstring).

    Attributes
    ----------
    delta_t : float
        physical time between ``pos`` and ``target_pos`` (1.0 by default), used by
        the Linear baseline ``pos + vel * delta_t``.
    clipped : numpy.ndarray
        ``(S,)`` bool, whether a force component was clipped in the trajectory.
    config, split, seed, draws
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        *,
        config: NBodyConfig,
        split: str,
        seed: int,
        dtype: torch.dtype = torch.float64,
        draws: str = "irrepnet",
    ):
        pos, target = arrays["pos"], arrays["target_pos"]
        S, n, _ = pos.shape
        super().__init__(
            {
                K.POS: pos,
                K.VEL: arrays["vel"],
                K.CHARGE: arrays["charge"],
                K.TARGET_POS: target,
                K.TARGET_DISP: target - pos,  # in float64, before any cast
                K.NODE_INDEX: np.broadcast_to(np.arange(n), (S, n)),
            },
            dtype=dtype,
        )
        self.config, self.split, self.seed = config, split, seed
        self.draws = draws
        self.delta_t = config.delta_t
        self.clipped = np.asarray(arrays["clipped"], dtype=bool)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"NBodyDataset({self.split}: {len(self)} samples x {self.num_nodes} particles, frames "
            f"{c.frame_input}->{c.frame_target}, delta_t={self.delta_t:g}, seed={self.seed}, "
            + ("" if self.draws == "irrepnet" else f"draws={self.draws}, ")
            + f"{self.dtype})"
        )


def generate_nbody(n_traj: int, config: NBodyConfig, seed: int, initial=None) -> dict[str, np.ndarray]:
    """Simulate ``n_traj`` trajectories and keep the two frames of the task (no cache).

    ``initial``: given initial states (charge, pos, vel), else drawn from ``seed``.
    Returns ``pos, vel, target_pos (S, n, 3)``, ``charge (S, n, 1)``, ``clipped (S,)``.
    """
    c = config
    r = simulate_charged(
        n_traj,
        n_particles=c.n_particles,
        frames=[c.frame_input, c.frame_target],
        n_steps=c.n_steps,
        dt=c.dt,
        save_every=c.save_every,
        loc_std=c.loc_std,
        vel_norm=c.vel_norm,
        max_force=c.max_force,
        strength=c.strength,
        charge_prob=c.charge_prob,
        seed=seed,
        initial=initial,
    )
    return {
        "pos": r["pos"][:, 0],
        "vel": r["vel"][:, 0],
        "target_pos": r["pos"][:, 1],
        "charge": r["charge"],
        "clipped": r["clipped"],
    }


def nbody(
    split: str = "train",
    *,
    n_train: int = 3000,
    n_pool: int = SPLIT_SIZES["train"],
    n_valid: int = SPLIT_SIZES["valid"],
    n_test: int = SPLIT_SIZES["test"],
    seed: int | None = None,
    config: NBodyConfig | None = None,
    cache_dir=None,
    use_cache: bool = True,
    dtype: torch.dtype = torch.float64,
    draws: str = "irrepnet",
) -> NBodyDataset:
    """One split of the charged N-body task.

    Parameters
    ----------
    split : {"train", "valid", "test"}
    n_train : int
        training samples: the first ``n_train`` of the training pool.
    n_pool, n_valid, n_test : int
        trajectories generated for the training pool and the other splits
        (10000, 2000, 2000). Unit tests pass small sizes.
    seed : int, optional
        override the split's default seed (:data:`SPLIT_SEEDS`).
    config : NBodyConfig, optional
        physics and frames (EGNN defaults).
    cache_dir : path, optional
        default ``$IRREPNET_CACHE`` or ``~/.cache/irrepnet``.
    use_cache : bool
        ``False`` always simulates and writes nothing.
    dtype : torch.dtype
    draws : {"irrepnet", "egnn-generator"}
        ``"egnn-generator"``: the published generator's initial states and frame numbering
        (see the module docstring); the split sizes are then that generator's (10000,
        2000, 2000), the seed is its 43, and ``config`` defaults to frames 31 -> 41.

    Returns
    -------
    NBodyDataset
    """
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {tuple(SPLIT_SEEDS)}, got {split!r}")
    if draws not in DRAWS:
        raise ValueError(f"draws must be one of {DRAWS}, got {draws!r}")
    if split == "train" and not 1 <= n_train <= n_pool:
        raise ValueError(f"n_train={n_train} must be in [1, n_pool={n_pool}]; raise n_pool to train on more")
    if draws == "egnn-generator":
        config, seed, params, generate = _egnn_generator_source(split, n_pool, n_valid, n_test, seed, config)
    else:
        config = config or NBodyConfig()
        n_gen = {"train": n_pool, "valid": n_valid, "test": n_test}[split]
        if n_gen < 1:
            raise ValueError(f"the {split} split needs at least one trajectory, got {n_gen}")
        seed = SPLIT_SEEDS[split] if seed is None else int(seed)
        params = {"version": GENERATOR_VERSION, "config": dataclasses.asdict(config), "n_traj": n_gen, "seed": seed}

        def generate():
            return generate_nbody(n_gen, config, seed)

    arrays = cached_arrays("nbody-charged", params, generate, cache_dir=cache_dir, use_cache=use_cache)
    if split == "train":
        arrays = {k: v[:n_train] for k, v in arrays.items()}
    return NBodyDataset(arrays, config=config, split=split, seed=seed, dtype=dtype, draws=draws)


def _egnn_generator_source(split, n_pool, n_valid, n_test, seed, config):
    """``(config, seed, cache params, generate)`` of a split of the published generator's draws."""
    sizes = dict(EGNN_GENERATOR_SPLITS)
    if (n_pool, n_valid, n_test) != (sizes["train"], sizes["valid"], sizes["test"]) or seed is not None:
        raise ValueError(
            f"draws='egnn-generator' replays the published generator: its splits are "
            f"{sizes['train']}/{sizes['valid']}/{sizes['test']} trajectories from seed "
            f"{EGNN_GENERATOR_SEED}; drop n_pool/n_valid/n_test/seed (got {n_pool}/{n_valid}/{n_test}, "
            f"seed {seed})"
        )
    # its frame f is the state after (f + 1) x save_every steps: its 30 -> 40 are 31 -> 41 here
    config = config or NBodyConfig(frame_input=31, frame_target=41)
    params = {
        "version": GENERATOR_VERSION,
        "draws": "egnn-generator",
        "config": dataclasses.asdict(config),
        "split": split,
        "seed": EGNN_GENERATOR_SEED,
    }

    def generate():
        c = config
        initial = egnn_generator_draws(
            n_particles=c.n_particles,
            loc_std=c.loc_std,
            vel_norm=c.vel_norm,
            n_steps=c.n_steps,
            save_every=c.save_every,
        )[split]
        return generate_nbody(len(initial[0]), config, EGNN_GENERATOR_SEED, initial=initial)

    return config, EGNN_GENERATOR_SEED, params, generate
