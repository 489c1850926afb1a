r"""An exponential moving average of the weights, the model that is evaluated and kept.

With a constant learning rate, Adam's iterates keep moving around a minimum: the
validation loss of consecutive epochs scatters by several percent, and the epoch that
early stopping keeps is partly the luck of that scatter. Averaging the iterates
(Polyak & Juditsky 1992, "Acceleration of stochastic approximation by averaging")
removes most of that noise at no cost in steps. The exponential form keeps a shadow
copy :math:`\bar\theta` of the trainable parameters and after every optimiser step sets

.. math::

    \bar\theta \leftarrow d_t\,\bar\theta + (1 - d_t)\,\theta,\qquad
    d_t = \min\!\left(d,\ \frac{1 + t}{10 + t}\right),

where :math:`t` counts the updates so far; the warm-up of :math:`d_t` (as in
TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``) lets the average forget
the random initial weights within the first few dozen steps instead of ``1 / (1 - d)``
of them. With ``d = 0.99`` the average spans about 100 steps. Trainers of interatomic
potentials offer the same (NequIP's ``use_ema``, MACE's ``--ema`` with ``--ema_decay 0.99``).

The average is over the *stored* parameters: a parametrised weight
(:mod:`irrepnet.nn.parametrization`) is a fixed linear map of its stored tensor, so
averaging the stored tensors averages the weights. Buffers are not averaged (irrepnet's
models hold none that training changes).

Shapes/irreps
-------------
the shadow copies have the shapes, dtypes and devices of the parameters they follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class ExponentialMovingAverage:
    """A shadow copy of ``named_parameters``, updated by :meth:`~ExponentialMovingAverage.update`, swapped in by :meth:`~ExponentialMovingAverage.applied`.

    Parameters
    ----------
    named_parameters : iterable of (name, parameter)
        the trainable parameters to follow (names identify them in a checkpoint).
    decay : float
        ``d`` in (0, 1): the weight of the old average at each update.
    """

    def __init__(self, named_parameters, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay!r} (0.99 averages over about 100 steps)")
        pairs: list[tuple[str, torch.nn.Parameter]] = list(named_parameters)
        if not pairs:
            raise ValueError("no parameters to average")
        self.decay = float(decay)
        self.names = [n for n, _ in pairs]
        self.params = [p for _, p in pairs]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    def current_decay(self) -> float:
        """``d_t`` of the next update (the warm-up: small while few updates have been averaged)."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the parameters' current values (after an optimiser step)."""
        weight = 1.0 - self.current_decay()
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], weight)
        self.updates += 1

    @contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[None]:
        """Inside the block the parameters hold the average; the training values come back after it.

        The values are copied in place, so every view of the parameters (a compiled
        model, an optimiser) sees the average inside the block and nothing is rebuilt.
        """
        saved = [p.detach().clone() for p in self.params]
        for p, s in zip(self.params, self.shadow):
            p.copy_(s)
        try:
            yield
        finally:
            for p, s in zip(self.params, saved):
                p.copy_(s)

    def state_dict(self) -> dict[str, object]:
        """The shadow parameters and the update count, for a checkpoint."""
        return {
            "decay": self.decay,
            "updates": self.updates,
            "shadow": {n: s.detach().clone() for n, s in zip(self.names, self.shadow)},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore :meth:`state_dict`'s output; the parameter names must be the same."""
        shadow = state["shadow"]
        if sorted(shadow) != sorted(self.names):
            missing = sorted(set(self.names) - set(shadow))
            extra = sorted(set(shadow) - set(self.names))
            raise ValueError(
                f"the weight average was saved for other parameters (missing {missing[:3]}, "
                f"unexpected {extra[:3]}); resume with the same model"
            )
        for name, s in zip(self.names, self.shadow):
            s.copy_(shadow[name])
        self.updates = int(state["updates"])
