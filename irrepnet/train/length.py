r"""The length unit of the training data, so that a model does not depend on the data's units.

Targets and velocities are divided by their training RMS (:mod:`.normalization`), but
positions are not: edge lengths, radial bases and graph cutoffs read them. The same
trajectory in nm and in Å then trained into different models (issue 25 measured, on
the shipped reference trajectory times 10: radial-field from 0.011x to 1.68x the
zero-displacement error; times 100, egnn-vel overflowed to NaN in float32).
:class:`~.normalization.NormalizedModel` therefore divides the positions it passes
to its model by one length :math:`\ell` fitted on the training data, the RMS
distance between two nodes of one graph (the RMS edge length of the full graph):

.. math::

    \ell^2 = \frac{\sum_g \sum_{i \ne j \in g} |x_i - x_j|^2}{\sum_g n_g (n_g - 1)},
    \qquad \sum_{i \ne j \in g} |x_i - x_j|^2 = 2 n_g \sum_{i \in g} |x_i - \bar x_g|^2 .

Why this statistic rather than the median nearest-neighbour distance: it is exact
and :math:`O(n)` (the identity on the right, no neighbour search); it does not depend
on any model's cutoff (the RMS edge length of a *radius* graph would depend on the
cutoff it is meant to measure); and on the training split of the shipped reference
chain it is 1.17 in the file's unit (1.14 over all frames), where the median
nearest-neighbour distance is 0.31, so the cutoffs that were tuned on that file in
its own unit (``tfn``'s ``r_max = 3.5`` ...) keep their meaning to 17%, not to a
factor of three. On nbody it is 4.14, and the default cutoffs there became 2.5
(10.4 in the data's unit, for the 10 of before). Its drawback: for an extended system
it grows with the system's size, so a cutoff relative to it is a fraction of the
training system's size.

**Cutoffs are in units of** :math:`\ell`. A model sees ``pos / ℓ``; a radius,
``r_max`` or ``max_radius`` in its config is measured in that unit, not in the
data's (``r_max = 3.5`` means 3.5 ℓ whatever unit the file is written in). The
outputs are returned in the data's own unit (the wrapper multiplies them back).

:math:`\ell` is a scalar, so rotations, reflections and translations commute with the
division: the audit's verdicts do not change. It is stored with the other scales
(``scales["length"]``, in every checkpoint); a checkpoint without it (made before it
existed, or with ``normalize = false``) reads positions in the data's unit
(:math:`\ell = 1`). Applied on the displacement tasks (twelve_body, nbody); energy
tasks (forces are gradients with respect to the positions) and graph properties keep
positions in the data's unit (Å for molecules and qm9).

Shapes
------
``pos`` ``(S, N, 3)`` stacked samples of equal size, or ``(n, 3)`` with ``num_nodes``
``(G,)`` for graphs of different sizes; the length is a float.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from .. import keys as K

#: trained outputs for which positions are divided by the fitted length
LENGTH_OUTPUTS = (K.DISPLACEMENT,)


def length_scale(arrays: Mapping[str, torch.Tensor]) -> float | None:
    """The RMS distance between two nodes of one graph over ``arrays`` (float64).

    ``None`` when there are no positions or no pair of nodes to measure, or when all
    nodes of every graph coincide (nothing to divide by).

    Raises
    ------
    ValueError
        the positions are not finite, or their squares overflow float64.
    """
    pos = arrays.get(K.POS)
    if pos is None or pos.numel() == 0:
        return None
    pos = pos.detach().double()
    if pos.dim() == 3:  # (S, N, 3): every sample a graph of N nodes
        n = pos.shape[1]
        spread = (pos - pos.mean(dim=1, keepdim=True)).pow(2).sum()
        pair_sum, pairs = 2.0 * n * float(spread), pos.shape[0] * n * (n - 1)
    else:  # (n, 3) nodes of graphs of num_nodes each (one graph without it)
        counts = arrays.get(K.NUM_NODES)
        counts = torch.tensor([pos.shape[0]]) if counts is None else counts.long().reshape(-1)
        graph = torch.repeat_interleave(torch.arange(len(counts)), counts)
        c = counts.double().clamp(min=1)[:, None]
        centre = torch.zeros(len(counts), 3, dtype=pos.dtype).index_add_(0, graph, pos) / c
        spread = torch.zeros(len(counts), dtype=pos.dtype).index_add_(0, graph, (pos - centre[graph]).pow(2).sum(1))
        pair_sum = float((2.0 * counts.double() * spread).sum())
        pairs = int((counts * (counts - 1)).sum())
    if not math.isfinite(pair_sum):
        raise ValueError(
            f"the training positions are not finite or too large to measure (largest |x| "
            f"{float(pos.abs().max()):.3g}); check the data file and its unit"
        )
    if pairs == 0 or pair_sum == 0.0:
        return None
    return math.sqrt(pair_sum / pairs)


def finite_gradients(params) -> bool:
    """Whether every gradient of ``params`` is finite (parameters without one count as finite)."""
    return all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None)


def nonfinite_hint(batch: Mapping[str, torch.Tensor], length: float | None, dtype: torch.dtype, step: int) -> str:
    """What to do about a loss or gradient that is not finite at ``step``: one clause for the error.

    Before the first update (``step`` 0) it comes from the data, not the learning rate:
    non-finite inputs, or positions whose size overflows ``dtype``. Later, with positions
    read in the data's unit (no fitted ``length``), the data's scale is named beside the
    learning rate.
    """
    bad = [k for k, v in batch.items() if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
    if bad:
        return (
            f"{bad} hold values that are not finite in {str(dtype).replace('torch.', '')}: "
            "check the data file, or train in float64 (--dtype float64)"
        )
    pos = batch.get(K.POS)
    size = f"positions up to {float(pos.abs().max()):.3g}" if pos is not None and pos.numel() else "the positions"
    if step == 0:
        seen = "read in the data's unit (normalize = false, or an energy or property task)"
        if length is not None:
            seen = f"divided by the fitted length {length:.3g}"
        return (
            f"before any update, so from the data's scale and not the learning rate: {size}, {seen}, "
            f"overflow in {str(dtype).replace('torch.', '')}; rescale the data or train in float64 (--dtype float64)"
        )
    if length is None and pos is not None:
        return (
            f"lower the learning rate, or mind the data's scale: {size} are read in the data's unit "
            "(normalize = false, or an energy or property task); keep normalize on or rescale the data"
        )
    return "lower the learning rate"


#: :func:`unscaled_cutoff_warning` stays quiet when fewer training pairs than this lie beyond the cutoff
QUIET_SHARE_BEYOND = 0.01


def model_cutoffs(model: torch.nn.Module) -> list[float]:
    """The finite cutoffs of ``model``'s layers (their ``r_max``), smallest first; ``[]`` for none."""
    found = {getattr(m, "r_max", None) for m in model.modules()}
    return sorted(float(r) for r in found if isinstance(r, (int, float)) and not isinstance(r, bool))


def _fraction_beyond(pos: torch.Tensor, r: float) -> float | None:
    """The share of node pairs of one graph farther apart than ``r``, for ``(S, N, 3)`` samples; else None."""
    if pos.dim() != 3 or pos.shape[1] < 2:
        return None
    d = torch.cdist(pos.detach().double(), pos.detach().double())
    n = pos.shape[1]
    off = ~torch.eye(n, dtype=torch.bool)
    return float((d[:, off] > r).double().mean())


def unscaled_cutoff_warning(model: torch.nn.Module, arrays: Mapping[str, torch.Tensor]) -> str | None:
    """What a user should know when positions reach a model with a cutoff in the data's unit.

    Trained without normalisation (``normalize = false``, as the nbody suites train, the EGNN
    paper's protocol), positions are not divided by the fitted length, so a cutoff meant in
    fitted lengths (the per-task defaults of tfn, mace, se3-transformer ...) is read in the
    data's unit. ``None`` when the model has no cutoff, when the fitted length is within 10%
    of 1 (the two units agree), or when fewer than :data:`QUIET_SHARE_BEYOND` of the training
    pairs lie beyond the cutoff (fixed-size graphs: a cutoff given in the data's unit on
    purpose); otherwise one sentence naming the cutoff in both units, the share of training
    pairs beyond it, and the two fixes.
    """
    cutoffs = model_cutoffs(model)
    length = length_scale(arrays)
    if not cutoffs or length is None or abs(length - 1.0) < 0.1:
        return None
    r = cutoffs[0]
    beyond = _fraction_beyond(arrays[K.POS], r)
    if beyond is not None and beyond < QUIET_SHARE_BEYOND:  # the cutoff was set in the data's unit, or is harmless
        return None
    share = "" if beyond is None else f"; {100 * beyond:.3g}% of the training pairs lie beyond it"
    return (
        f"normalize = false: positions reach the model in the data's unit, so its cutoff r_max = {r:g} is "
        f"{r:g} in the data's unit, {r / length:.3g} fitted lengths of this training set (l = {length:.3g}){share}. "
        f"The per-task default cutoffs are meant in fitted lengths ({r:g} l = {r * length:.3g} here): train with "
        "normalize = true, or set the model's r_max in the data's unit"
    )
