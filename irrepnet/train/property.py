r"""Training on a graph-level invariant property (the qm9 task): mean/MAD normalisation, L1 loss, MAEs.

The EGNN paper's QM9 protocol (Satorras, Hoogeboom & Welling, ICML 2021; its
``main_qm9.py``): the target :math:`y` of each molecule is shifted and scaled by its
mean and its mean absolute deviation (MAD) over the training set,

.. math::

    \mu = \frac{1}{N}\sum_{m=1}^{N} y_m, \qquad
    \mathrm{MAD} = \frac{1}{N}\sum_{m=1}^{N} \lvert y_m - \mu \rvert, \qquad
    \tilde y_m = \frac{y_m - \mu}{\mathrm{MAD}},

the network :math:`f` is trained on :math:`\tilde y` with the L1 loss
:math:`\frac{1}{B}\sum_m \lvert f(m) - \tilde y_m\rvert` (the mean absolute error in
units of the MAD), and it predicts :math:`\hat y_m = \mathrm{MAD}\, f(m) + \mu` in the
target's units, in which the MAE is reported. A shift and a positive scale of an
invariant stay invariant. (The MAD is the mean absolute deviation about the mean, as in
the EGNN code, not the median absolute deviation.)

The scales are stored as ``{"outputs": {"property": MAD}, "shifts": {"property": mu}}``
(:class:`irrepnet.train.normalization.NormalizedModel` applies them).

Shapes/irreps
-------------
``property``, ``target_property (G, 1)`` 0e.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .. import keys as K
from .energy import LossTerm

#: the loss of a property task: L1, as the EGNN paper trains QM9
PROPERTY_LOSS = "l1"


def property_loss_terms() -> list[LossTerm]:
    """The one loss term of a property task: L1 of ``property`` against ``target_property`` (normalised)."""
    return [LossTerm(K.PROPERTY, K.TARGET_PROPERTY, 1.0, loss=PROPERTY_LOSS)]


def mean_mad(values: torch.Tensor) -> dict[str, float]:
    """``{"mean": mu, "mad": MAD}`` of ``values`` (float64), MAD about the mean; 1.0 for a constant target."""
    v = values.detach().double().reshape(-1)
    if v.numel() == 0:
        raise ValueError("cannot normalise a target over an empty training set")
    mu = float(v.mean())
    mad = float((v - mu).abs().mean())
    return {"mean": mu, "mad": mad if mad > 0 else 1.0}


def fit_property_scales(arrays: Mapping[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """``{"inputs": {}, "outputs": {property: MAD}, "shifts": {property: mu}}`` of the training set's target."""
    if K.TARGET_PROPERTY not in arrays:
        raise ValueError(
            f"property training needs the field {K.TARGET_PROPERTY!r} in the training set; it has {sorted(arrays)}"
        )
    stats = mean_mad(arrays[K.TARGET_PROPERTY])
    return {"inputs": {}, "outputs": {K.PROPERTY: stats["mad"]}, "shifts": {K.PROPERTY: stats["mean"]}}


def accumulate_abs_errors(acc: dict[str, tuple], batch, phys) -> None:
    """Add one batch's absolute errors, in physical units, to ``acc`` (``name: (sum, count)``).

    Energy tasks: energy per molecule and per atom, forces; property tasks: the property.
    """
    parts = {}
    if K.ENERGY in phys and K.TARGET_ENERGY in batch:
        err = (phys[K.ENERGY] - batch[K.TARGET_ENERGY]).double().abs()
        parts["energy_mae"] = err
        parts["energy_per_atom_mae"] = err / batch[K.NUM_NODES].double()[:, None]
    if K.FORCES in phys and K.TARGET_FORCES in batch:
        parts["forces_mae"] = (phys[K.FORCES] - batch[K.TARGET_FORCES]).double().abs()
    if K.PROPERTY in phys and K.TARGET_PROPERTY in batch:
        parts["property_mae"] = (phys[K.PROPERTY] - batch[K.TARGET_PROPERTY]).double().abs()
    for name, err in parts.items():
        s, c = acc.get(name, (0.0, 0))
        acc[name] = (s + float(err.sum()), c + err.numel())


__all__ = ["PROPERTY_LOSS", "accumulate_abs_errors", "fit_property_scales", "mean_mad", "property_loss_terms"]
