"""Windows over one trajectory: next-frame samples and train/test splits on frames.

A sample at frame ``t`` of a trajectory ``x`` of shape ``(T, N, 3)`` asks for the
next frame from the current one and (optionally) the last ``h`` frame steps, as in
the dmol-book chapter "Equivariant neural networks with e3nn" (applied/e3nn_traj):

.. math::

    \\mathrm{pos} = x(t), \\qquad
    \\mathrm{target\\_disp} = x(t+1) - x(t), \\qquad
    \\mathrm{target\\_pos} = x(t+1),

    \\mathrm{vel\\_history}_k = x(t-k) - x(t-k-1), \\quad k = 0 \\dots h-1
    \\ (\\text{newest first}), \\qquad \\mathrm{vel} = \\mathrm{vel\\_history}_0 .

Frame ``t`` is available when ``h <= t <= T - 2``.

Splits are defined on the frame index ``t`` of the *target-bearing* frames
``0 .. T-2``, not on the available samples, so a frame is in the same split for
every history length: with ``h > 0`` the first ``h`` frames are simply dropped
from whichever split holds them (the chronological training split), and the test
split is unchanged. With ``T = 2048`` and the 80/20 chronological split this is
frames ``0..1636`` for training (``1637 - h`` samples) and ``1637..2046`` for test
(410 samples), the split on which the dmol baselines of the shared README are
measured.

Shapes
------
trajectory ``(T, N, 3)``; sample: ``pos, target_disp, target_pos, vel (N, 3)``,
``vel_history (N, 3h)`` (e3nn ``h x 1o``: the ``(N, h, 3)`` array reshaped),
``node_index (N,)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .. import keys as K
from .dataset import GraphArrayDataset
from .trajectory import check_trajectory

SPLITS = ("chronological", "shuffled")


def min_frames(history: int) -> int:
    """Fewest frames a trajectory needs for one sample with ``history`` steps: ``h + 2``."""
    return history + 2


def _check_history(history: int) -> int:
    if isinstance(history, bool) or not isinstance(history, (int, np.integer)) or history < 0:
        raise ValueError(f"history must be an integer >= 0 (number of past frame steps), got {history!r}")
    return int(history)


def split_frames(
    num_frames: int,
    *,
    split: str = "chronological",
    train_fraction: float = 0.8,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split the target-bearing frames (``t`` from 0 to ``T-2``) into train and test.

    Parameters
    ----------
    num_frames : int
        ``T``, the number of frames of the trajectory.
    split : {"chronological", "shuffled"}
        chronological: the first ``floor(train_fraction * (T-1))`` frames train, the
        rest test (no frame of the test future is seen in training). shuffled: the
        same sizes from a permutation drawn with ``seed``.
    train_fraction : float
        in ``(0, 1)``.
    seed : int
        used by the shuffled split only.

    Returns
    -------
    (train_frames, test_frames) : two sorted int64 arrays of frame indices ``t``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    n = num_frames - 1
    if n < 2:
        raise ValueError(f"a train/test split needs at least 3 frames (2 targets), got T={num_frames}")
    # the small epsilon keeps 0.8 * 2047 = 1637.6 -> 1637 robust to float rounding
    n_train = min(max(math.floor(train_fraction * n + 1e-9), 1), n - 1)
    if split == "chronological":
        order = np.arange(n)
    else:
        order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


class TrajectoryDataset(GraphArrayDataset):
    """Next-frame samples from one trajectory (see the module docstring for the math).

    Parameters
    ----------
    trajectory : array of shape (T, N, 2|3)
        positions; 2-D is padded with ``z = 0``.
    history : int
        ``h``, the number of past frame steps in ``vel_history`` (``0``: no
        ``vel`` / ``vel_history`` fields).
    frames : sequence of int, optional
        the frames ``t`` to use; default all available ones, ``h .. T-2``. Frames
        with ``t < h`` are dropped (they lack history); other out-of-range frames
        raise ``ValueError``.
    dtype : torch.dtype
        floating dtype of the samples (float64 by default). Differences are taken
        in float64 before the cast so that float32 targets keep their precision.

    Attributes
    ----------
    frames : numpy.ndarray
        ``(S,)`` frame index ``t`` of each sample.
    history : int
    """

    def __init__(
        self,
        trajectory: np.ndarray | torch.Tensor,
        *,
        history: int = 0,
        frames: Sequence[int] | None = None,
        dtype: torch.dtype = torch.float64,
    ):
        h = _check_history(history)
        if isinstance(trajectory, torch.Tensor):
            trajectory = trajectory.detach().cpu().numpy()
        x = check_trajectory(trajectory)
        T, N, _ = x.shape
        if T < min_frames(h):
            raise ValueError(
                f"trajectory too short: T={T} frames, but history h={h} needs at least T=h+2={min_frames(h)} "
                f"(frames t-h .. t+1 for one sample); use a longer trajectory or a smaller history"
            )
        if frames is None:
            t = np.arange(h, T - 1)
        else:
            t = np.asarray(frames, dtype=np.int64).reshape(-1)
            bad = t[(t < 0) | (t > T - 2)]
            if bad.size:
                raise ValueError(
                    f"frames {bad[:5].tolist()} out of range: a trajectory of T={T} frames has targets for t in [0, {T - 2}]"
                )
            t = t[t >= h]  # the first h frames lack history: documented, not an error
            if t.size == 0:
                raise ValueError(
                    f"no frame left: every requested frame has t < history h={h}; "
                    "reduce the history or choose later frames"
                )
        self.history = h
        self.frames = t
        self.num_frames = T
        #: the whole ``(T, N, 3)`` float64 trajectory, read by multi-step rollouts
        self.trajectory = x
        fields = {
            K.POS: x[t],
            K.TARGET_DISP: x[t + 1] - x[t],
            K.TARGET_POS: x[t + 1],
            K.NODE_INDEX: np.broadcast_to(np.arange(N), (t.size, N)),
        }
        if h >= 1:
            # steps[k] = x(t-k) - x(t-k-1), newest first -> (S, N, h, 3) -> (S, N, 3h) = h x 1o
            steps = np.stack([x[t - k] - x[t - k - 1] for k in range(h)], axis=2)
            fields[K.VEL_HISTORY] = steps.reshape(t.size, N, 3 * h)
            fields[K.VEL] = steps[:, :, 0]
        super().__init__(fields, dtype=dtype)

    def __repr__(self) -> str:
        lo, hi = (int(self.frames.min()), int(self.frames.max())) if self.frames.size else (0, -1)
        return (
            f"TrajectoryDataset({len(self)} samples, frames {lo}..{hi} of T={self.num_frames}, "
            f"N={self.num_nodes}, history={self.history}, {self.dtype})"
        )


def split_trajectory(
    trajectory: np.ndarray | torch.Tensor,
    *,
    history: int = 0,
    split: str = "chronological",
    train_fraction: float = 0.8,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[TrajectoryDataset, TrajectoryDataset]:
    """Train and test :class:`TrajectoryDataset` of one trajectory (see :func:`split_frames`).

    With ``history = h`` the training set of the chronological split loses its
    first ``h`` frames; the test set is the same for every ``h`` as long as
    ``h <= floor(train_fraction * (T-1))``.
    """
    h = _check_history(history)
    if isinstance(trajectory, torch.Tensor):
        trajectory = trajectory.detach().cpu().numpy()
    x = check_trajectory(trajectory)
    T = x.shape[0]
    if T < min_frames(h) + 1:
        raise ValueError(
            f"trajectory too short to split: T={T} frames, but history h={h} needs at least "
            f"T=h+3={min_frames(h) + 1} (one train and one test sample)"
        )
    train_t, test_t = split_frames(T, split=split, train_fraction=train_fraction, seed=seed)
    out = []
    for name, t in (("train", train_t), ("test", test_t)):
        if not (t >= h).any():
            raise ValueError(
                f"the {name} split has no frame t >= history h={h} (its frames are {int(t.min())}..{int(t.max())} "
                f"of T={T}); use a longer trajectory or a smaller history"
            )
        out.append(TrajectoryDataset(x, history=h, frames=t, dtype=dtype))
    return out[0], out[1]


def window_batch(window: torch.Tensor, history: int) -> dict:
    """Model inputs of ``B`` graphs from their last ``h+1`` positions (what a rollout feeds back).

    Parameters
    ----------
    window : tensor of shape (B, h+1, N, 3)
        positions ``x(t-h) .. x(t)``, newest last.
    history : int
        ``h``; with ``h >= 1`` the batch has ``vel`` and ``vel_history`` (newest step first),
        laid out as in :class:`TrajectoryDataset`.

    Returns
    -------
    dict
        ``pos (B*N, 3)``, ``node_index``, ``num_nodes``, ``batch`` and, with history,
        ``vel (B*N, 3)`` and ``vel_history (B*N, 3h)``.
    """
    B, _, N, _ = window.shape
    pos = window[:, -1]
    data = {
        K.POS: pos.reshape(B * N, 3),
        K.NODE_INDEX: torch.arange(N, device=window.device).repeat(B),
        K.NUM_NODES: torch.full((B,), N, dtype=torch.long, device=window.device),
        K.BATCH: torch.arange(B, device=window.device).repeat_interleave(N),
    }
    if history >= 1:
        steps = [window[:, -1 - k] - window[:, -2 - k] for k in range(history)]  # newest first
        vh = torch.stack(steps, dim=2)  # (B, N, h, 3)
        data[K.VEL_HISTORY] = vh.reshape(B * N, 3 * history)
        data[K.VEL] = steps[0].reshape(B * N, 3)
    return data
