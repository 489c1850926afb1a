r"""Weight parametrisations: e3nn's fan-in-normalised weights, or ``torch.nn.Linear``'s.

e3nn's layers (``o3.Linear``, ``nn.FullyConnectedNet``) store weights
:math:`W \sim \mathcal N(0, 1)` and apply :math:`W / \sqrt{\text{fan-in}}` in their forward
(the path weight of an ``o3.Linear`` instruction with ``"element"`` normalisation; the
:math:`1/\sqrt{h_{in}}` of a fully connected layer). ``torch.nn.Linear`` stores the applied
weight itself. Both describe the same functions, but an optimiser does not see them alike:
Adam's step is about ``lr`` in every stored parameter whatever the scale of its gradient,
so the applied weight moves by :math:`\mathrm{lr}/\sqrt{\text{fan-in}}` per step under
e3nn's parametrisation and by :math:`\mathrm{lr}` under ``Linear``'s: at a fan-in of 64,
eight times less. A model tuned in one and trained in the other behaves like one trained
at a very different learning rate (issue 12: SEGNN's paper code uses ``Linear``'s, and
SEGNN in irrepnet learnt several times faster once it did too; see
:class:`~irrepnet.nn.steerable.SteerableLinear`).

:func:`use_linear_parametrization` switches every e3nn ``o3.Linear`` (with internal
weights) and every ``FullyConnectedNet`` layer inside a module to ``Linear``'s
parametrisation with ``torch.nn.utils.parametrize``: the stored parameter becomes the
applied weight :math:`W_{\text{raw}} = W / \sqrt{\text{fan-in}}`, and the layer reads
:math:`\sqrt{\text{fan-in}}\, W_{\text{raw}}`, which its forward scales back. The function
is unchanged at the moment of the switch (only Adam's geometry changes), and a
``state_dict`` saved before the switch (keys ``…weight``) still loads, as the same function.

Shapes/irreps: no layer changes its shapes or irreps; only the stored parameters are rescaled.
"""

from __future__ import annotations

from functools import partial

import torch
from e3nn import o3
from e3nn.nn._fc import _Layer as _FullyConnectedLayer
from torch.nn.utils import parametrize

#: the weight parametrisations a model may ask for (``"e3nn"``: leave the layers as they are)
PARAMETRIZATIONS = ("e3nn", "linear")


class _Scaled(torch.nn.Module):
    """``weight = scale * raw`` (and ``raw = weight / scale``, so registering keeps the function)."""

    scale: torch.Tensor  # a buffer: follows the module's device and dtype, not saved

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale, persistent=False)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return raw * self.scale

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return weight / self.scale


def applied_scales(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    r"""The factors :math:`1/\sqrt{\text{fan-in}}` that ``module``'s forward applies to its own stored weights.

    ``{name: tensor shaped like the weight}``: ``weight`` of an ``o3.Linear`` with internal
    weights (one path weight per instruction) or of a ``FullyConnectedNet`` layer; whatever a
    module reports through a ``fan_in_scales()`` method (irrepnet's own fan-in-normalised
    layers, e.g. :class:`~irrepnet.nn.tp_conv.RadialMLP`'s weights); ``{}`` for any other module.
    """
    if isinstance(module, o3.Linear):
        if not module.internal_weights or module.weight_numel == 0 or module.weight.dim() != 1:
            return {}
        # the flat weight lists the instructions' (mul_in, mul_out) blocks in order; biases are apart
        parts = [
            torch.full((ins.path_shape[0] * ins.path_shape[1],), float(ins.path_weight))
            for ins in module.instructions
            if ins.i_in != -1
        ]
        return {"weight": torch.cat(parts).to(module.weight)}
    if isinstance(module, _FullyConnectedLayer):
        # the forward's own factor, without the activation's variance terms (both 1 by default)
        return {"weight": torch.full_like(module.weight, float(module.h_in) ** -0.5)}
    if hasattr(module, "fan_in_scales"):
        return dict(module.fan_in_scales())  # type: ignore[operator]  # duck-typed protocol
    return {}


def use_linear_parametrization(model: torch.nn.Module) -> int:
    """Store the weights of ``model``'s fan-in-normalised layers as ``torch.nn.Linear`` would.

    Returns the number of weight tensors switched. Idempotent: a weight already switched is
    left alone. :class:`~irrepnet.nn.steerable.SteerableLinear` has its own switch
    (``reset_parameters("linear")``), which also draws the weights anew.
    """
    switched = 0
    for module in list(model.modules()):
        for name, factor in applied_scales(module).items():
            if parametrize.is_parametrized(module, name):
                continue
            parametrize.register_parametrization(module, name, _Scaled(1.0 / factor))
            module._register_load_state_dict_pre_hook(partial(_load_unparametrized, name=name), with_module=True)
            switched += 1
    return switched


def _load_unparametrized(module, state_dict, prefix, *_args, name: str) -> None:
    """Accept a state_dict from before the switch: its ``name`` becomes the stored (applied) weight."""
    old, new = prefix + name, prefix + f"parametrizations.{name}.original"
    if old in state_dict and new not in state_dict:
        current = getattr(module, name)
        state_dict[new] = getattr(module.parametrizations, name)[0].right_inverse(state_dict.pop(old).to(current))
