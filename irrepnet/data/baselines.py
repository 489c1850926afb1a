"""Physical baselines: what a model has to beat before it has learned anything.

Each baseline maps a sample or batch dict to a predicted displacement
``x(t+1) - x(t)`` (``(n, 3)``), from the fields the tasks provide:

=========================  ===========================================  ===================
name                       prediction of the displacement               needs
=========================  ===========================================  ===================
``zero``                   :math:`0`                                    nothing
``constant_velocity``      :math:`v_1`                                  ``h >= 1``
``constant_acceleration``  :math:`v_1 + (v_1 - v_2) = 2 v_1 - v_2`      ``h >= 2``
``linear``                 :math:`v \\, \\Delta t`                        ``vel``, ``delta_t``
=========================  ===========================================  ===================

with :math:`v_1 = x(t) - x(t-1)`, :math:`v_2 = x(t-1) - x(t-2)` the first two
blocks of ``vel_history`` (newest first). ``linear`` is the "Linear" model of the
EGNN paper (Satorras et al., ICML 2021, Table 2): ``x(30) + v(30) * Delta t`` with
physical velocities and ``Delta t = 1.0`` between frames 30 and 40. (The paper's
0.0819 comes from a version with a *learned* ``Delta t``, initialised at 0.7;
:func:`fit_linear_delta_t` gives the least-squares one.)

The score is the mean squared error over all coordinates,
``mean((pred - target_disp)^2)`` averaged over nodes and the 3 components; for
positions it is the same number, since ``pred_pos - target_pos = pred - target_disp``.
On the dmol-book 12-body file, chronological test split (frames ``t >= 1637``,
the same 410 samples for every history length), these are 2.43e-5 (zero),
1.65e-7 (constant velocity) and 5.60e-9 (constant acceleration).

Shapes
------
input: ``vel_history (n, 3h)``, ``vel (n, 3)``, ``target_disp (n, 3)``; output ``(n, 3)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch

from .. import keys as K
from ..batch import collate

Batch = Mapping[str, torch.Tensor]

BASELINES = ("zero", "constant_velocity", "constant_acceleration", "linear")
_NEEDS_HISTORY = {"constant_velocity": 1, "constant_acceleration": 2}


def history_length(data: Batch) -> int:
    """``h``, the number of frame steps in ``vel_history`` (0 when absent)."""
    vh = data.get(K.VEL_HISTORY)
    return 0 if vh is None else vh.shape[-1] // 3


def _history(data: Batch, name: str, need: int) -> torch.Tensor:
    h = history_length(data)
    if h < need:
        frames = "t-1" if need == 1 else "t-1 and t-2"
        raise ValueError(
            f"baseline {name!r} needs history h >= {need} (frames {frames}) but the data has h = {h} "
            f"({K.VEL_HISTORY!r} {'absent' if h == 0 else 'of shape ' + str(tuple(data[K.VEL_HISTORY].shape))}); "
            f"build the dataset with history={need} or more"
        )
    return data[K.VEL_HISTORY]


def zero_displacement(data: Batch) -> torch.Tensor:
    """Predict no motion: ``dx = 0``."""
    return torch.zeros_like(data[K.POS])


def constant_velocity(data: Batch) -> torch.Tensor:
    """Repeat the last frame step: ``dx = x(t) - x(t-1)`` (needs ``h >= 1``)."""
    return _history(data, "constant_velocity", 1)[:, 0:3].clone()


def constant_acceleration(data: Batch) -> torch.Tensor:
    """Extrapolate the last two steps: ``dx = 2 v1 - v2`` (needs ``h >= 2``)."""
    vh = _history(data, "constant_acceleration", 2)
    return 2.0 * vh[:, 0:3] - vh[:, 3:6]


def linear(data: Batch, delta_t: float | None = None) -> torch.Tensor:
    """EGNN's Linear model as a displacement: ``dx = v * delta_t``."""
    if K.VEL not in data:
        raise ValueError(f"baseline 'linear' needs the {K.VEL!r} field (physical velocities)")
    if delta_t is None:
        raise ValueError(
            "baseline 'linear' needs delta_t, the physical time between pos and target; datasets from "
            "irrepnet.data.nbody() carry it as .delta_t (1.0 for the EGNN task)"
        )
    return data[K.VEL] * delta_t


def predict(name: str, data: Batch, *, delta_t: float | None = None) -> torch.Tensor:
    """Displacement ``(n, 3)`` predicted by baseline ``name`` (one of :data:`BASELINES`)."""
    fns: dict[str, Callable[[Batch], torch.Tensor]] = {
        "zero": zero_displacement,
        "constant_velocity": constant_velocity,
        "constant_acceleration": constant_acceleration,
        "linear": lambda d: linear(d, delta_t),
    }
    if name not in fns:
        raise ValueError(f"unknown baseline {name!r}; known: {BASELINES}")
    return fns[name](data)


def _first(data) -> Batch:
    return data if isinstance(data, Mapping) else data[0]


def applicable_baselines(data, *, delta_t: float | None = None) -> list[str]:
    """Baselines that the fields of ``data`` (a batch dict or a dataset) support.

    ``linear`` needs physical velocities and a ``delta_t`` (given, or the dataset's
    ``delta_t`` attribute); on a trajectory dataset ``vel`` is a frame step and
    ``linear`` would only repeat ``constant_velocity``, so it is left out there.
    """
    delta_t = getattr(data, "delta_t", None) if delta_t is None else delta_t
    first = _first(data)
    names = ["zero"]
    h = history_length(first)
    names += [n for n, need in _NEEDS_HISTORY.items() if h >= need]
    if K.VEL in first and delta_t is not None:
        names.append("linear")
    return names


def _batches(data, batch_size: int) -> Iterable[Batch]:
    if isinstance(data, Mapping):
        yield data
        return
    n = len(data)
    if n == 0:
        raise ValueError("cannot evaluate baselines on an empty dataset")
    for lo in range(0, n, batch_size):
        idx = range(lo, min(lo + batch_size, n))
        yield data.batch(list(idx)) if hasattr(data, "batch") else collate([data[i] for i in idx])


def evaluate_baselines(
    data,
    names: Sequence[str] | None = None,
    *,
    delta_t: float | None = None,
    batch_size: int = 4096,
) -> dict[str, float]:
    """Mean squared error per coordinate of each baseline on ``data``.

    Parameters
    ----------
    data : dataset or dict
        a dataset (``len``, ``[i]``, optionally ``.batch(indices)`` and ``.delta_t``)
        or one batch dict with ``target_disp``.
    names : sequence of str, optional
        baselines to evaluate; default all :func:`applicable_baselines`. Asking for
        one the data cannot support raises ``ValueError`` saying what is missing.
    delta_t : float, optional
        for ``linear``; default the dataset's ``delta_t`` attribute.
    batch_size : int

    Returns
    -------
    dict
        ``{name: MSE}``, accumulated in float64 over all nodes and coordinates.
    """
    delta_t = getattr(data, "delta_t", None) if delta_t is None else delta_t
    names = applicable_baselines(data, delta_t=delta_t) if names is None else list(names)
    for name in names:
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}; known: {BASELINES}")
    sse = {name: 0.0 for name in names}
    count = 0
    for batch in _batches(data, batch_size):
        if K.TARGET_DISP not in batch:
            raise KeyError(f"baselines are scored on {K.TARGET_DISP!r}, which the data lacks; fields: {sorted(batch)}")
        target = batch[K.TARGET_DISP].double()
        count += target.numel()
        for name in names:
            err = predict(name, batch, delta_t=delta_t).double() - target
            sse[name] += float((err * err).sum())
    return {name: sse[name] / count for name in names}


def fit_linear_delta_t(data, *, batch_size: int = 4096) -> float:
    """Least-squares ``delta_t`` of ``dx = v * delta_t`` on ``data`` (e.g. the training set).

    ``delta_t* = sum(v . dx) / sum(v . v)``: what EGNN's Linear model, whose time
    step is a trained parameter, converges to.
    """
    num = den = 0.0
    for batch in _batches(data, batch_size):
        if K.VEL not in batch:
            raise ValueError(f"fitting the linear baseline needs the {K.VEL!r} field")
        v = batch[K.VEL].double()
        num += float((v * batch[K.TARGET_DISP].double()).sum())
        den += float((v * v).sum())
    if den == 0.0:
        raise ValueError("all velocities are zero; delta_t is undetermined")
    return num / den
