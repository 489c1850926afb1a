r"""Input-noise training for stable rollouts (Sanchez-Gonzalez et al. 2020).

A one-step model fed its own predictions sees inputs slightly off the training
distribution, and its errors compound. "Learning to Simulate Complex Physics with
Graph Networks" (Sanchez-Gonzalez, Godwin, Pfaff, Ying, Leskovec, Battaglia; ICML
2020, section 3.2 "Training noise") corrupts the *input* history with random-walk
noise during training, so that the model learns to cope with, and partly undo, the
drift of its own rollouts.

With history ``h >= 1`` the window of positions :math:`x(t-h), \dots, x(t)` gets
velocity noise that is a random walk over the ``h`` frame steps,

.. math::

    u_k = \sum_{j \le k} \epsilon_j,\quad \epsilon_j \sim \mathcal N(0, \sigma^2 / h),\qquad
    \tilde x(t-h+k) = x(t-h+k) + \sum_{j \le k} u_j \quad (k = 0 \dots h),

so the newest input step carries noise of standard deviation :math:`\sigma`; the
inputs ``pos``, ``vel`` and ``vel_history`` are recomputed from the noisy window.
The target follows the paper's correction: the next position is shifted by the
same noise as the current one, :math:`\tilde x(t+1) = x(t+1) + n_t`, so the target
displacement :math:`\tilde x(t+1) - \tilde x(t) = x(t+1) - x(t)` is the *true*
one: the model must predict the true next velocity from a noisy history, i.e. undo
the velocity drift. With ``h = 0`` only the positions get noise
:math:`\mathcal N(0, \sigma^2)` and the target is unchanged likewise.

Noise of a fixed scale in every direction is isotropic, so this keeps the symmetry
of the data distribution; the audit of the trained model is unaffected.

Shapes
------
``pos (n, 3)``, ``vel (n, 3)``, ``vel_history (n, 3h)`` newest step first (as in
:mod:`irrepnet.data.windows`); the batch is returned as a new dict.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .. import keys as K


def window_noise(
    shape, std: float, *, dtype=torch.float64, device=None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random-walk offsets ``(B, h+1, N, 3)`` for a window of positions ``x(t-h)`` to ``x(t)`` (newest last).

    The oldest frame is not moved; the newest frame step gets noise of standard
    deviation ``std`` (with ``h = 0`` the single frame gets ``N(0, std^2)``). Used by the
    unrolled loss, which feeds whole windows; :func:`add_input_noise` is the same noise on
    a batch's ``pos``/``vel_history`` fields.
    """
    B, hp1, N, _ = shape
    h = hp1 - 1
    if h == 0:
        return std * torch.randn(B, 1, N, 3, generator=generator, dtype=dtype).to(device)
    steps = std / h**0.5 * torch.randn(B, h, N, 3, generator=generator, dtype=dtype)
    offsets = steps.cumsum(dim=1).cumsum(dim=1)  # positions: sums of the velocity random walk
    return torch.cat([torch.zeros(B, 1, N, 3, dtype=dtype), offsets], dim=1).to(device)


def add_input_noise(
    batch: Mapping[str, torch.Tensor], std: float, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """``batch`` with random-walk input noise of last-step standard deviation ``std`` (see the module docstring)."""
    out = dict(batch)
    if std <= 0:
        return out
    pos = batch[K.POS]

    def normal(*shape):
        return torch.randn(*shape, generator=generator, dtype=pos.dtype).to(pos.device)

    vh = batch.get(K.VEL_HISTORY)
    if vh is None:
        out[K.POS] = pos + std * normal(*pos.shape)
        return out
    n, h = vh.shape[0], vh.shape[1] // 3
    steps = std / h**0.5 * normal(n, h, 3)  # epsilon_1..epsilon_h, oldest first
    vel_noise = steps.cumsum(dim=1)  # u_1..u_h: noise of the frame steps, oldest first
    out[K.POS] = pos + vel_noise.sum(dim=1)  # n_t = sum of all u
    # vel_history block k (newest first) is the step x(t-k) - x(t-k-1): it gets u_{h-k}
    out[K.VEL_HISTORY] = vh + vel_noise.flip(1).reshape(n, 3 * h)
    if K.VEL in batch:
        out[K.VEL] = out[K.VEL_HISTORY][:, 0:3]
    return out
