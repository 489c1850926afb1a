r"""The k-step unrolled loss on trajectory tasks (``unroll_steps = k > 1``).

A one-step model is trained on true inputs but run on its own predictions; the
unrolled loss trains it the way it is run. From a training frame ``t`` the window of
positions ``x(t-h) .. x(t)`` is fed to the model, its predicted displacement moves the
newest position, the window shifts by one frame, and so on ``k`` times, with gradients
through the whole unroll. Step ``j`` is scored against the displacement that leads from
the model's own position :math:`\hat x(t+j)` back to the true :math:`x(t+j+1)`,

.. math::

    L = \frac1k \sum_{j=0}^{k-1} \big\lVert f(\hat W_j) - n\big(x(t+j+1) - \hat x(t+j)\big) \big\rVert^2,

in the trainer's normalised units ``n``; input noise, if any, goes on the starting
window only. Frames within ``k`` frames of the end of the training split are skipped.

Shapes
------
trajectory ``(T, N, 3)``; windows ``(B, h+1, N, 3)`` (newest frame last); the model's
batch as :func:`irrepnet.data.windows.window_batch` builds it.
"""

from __future__ import annotations

import torch

from .. import keys as K
from ..data.windows import window_batch
from .noise import window_noise
from .runtime import move


def unroll_trajectory(train_set, output: str, k: int, device, dtype) -> torch.Tensor:
    """The training trajectory (on ``device``) to unroll on; refuses datasets that are not one trajectory."""
    from ..registry import ConfigError

    if (
        output != K.DISPLACEMENT
        or getattr(train_set, "trajectory", None) is None
        or getattr(train_set, "frames", None) is None
    ):
        raise ConfigError("unroll_steps > 1 needs a trajectory task (twelve_body) and a displacement output")
    if not (train_set.frames + k - 1 <= train_set.frames.max()).any():
        raise ConfigError(f"unroll_steps = {k} is longer than the training split ({len(train_set)} frames)")
    return torch.as_tensor(train_set.trajectory).to(device=device, dtype=dtype)


def unrolled_loss(trainer, idx: torch.Tensor) -> torch.Tensor:
    """Mean normalised loss of ``trainer``'s model over ``unroll_steps`` fed-back steps from the frames ``idx``."""
    ds, k, traj = trainer.train_set, trainer.config.unroll_steps, trainer._unroll_frames
    frames = ds.frames[idx.numpy()]
    frames = frames[frames + k - 1 <= ds.frames.max()]  # stay inside the training split
    if frames.size == 0:  # a batch made only of the split's last frames: the one-step loss
        return trainer.loss(move(ds.batch(idx), trainer.device, trainer.dtype))
    h = ds.history
    window = torch.stack([traj[t - h : t + 1] for t in frames])  # (B, h+1, N, 3)
    if trainer.noise_std > 0:
        window = window + window_noise(window.shape, trainer.noise_std, dtype=window.dtype, device=window.device)
    B, N = window.shape[0], window.shape[2]
    model, output = trainer.model, trainer.output
    total = 0.0
    for j in range(k):
        data = window_batch(window, h)
        out = trainer._forward_train(data)
        truth = (traj[torch.as_tensor(frames + j + 1)] - window[:, -1]).reshape(B * N, 3)
        total = total + (out[output] - model.normalized_target(data, truth)).pow(2).mean()
        step = model.to_physical(data, out)[output].reshape(B, N, 3)
        window = torch.cat([window[:, 1:], (window[:, -1] + step)[:, None]], dim=1)
    return total / k
