"""Physical baselines as parameter-free models: the yardsticks every model must beat.

They sit behind the same interface as learned models, so the CLI, the audit and the
results tables treat them alike.

- ``zero-displacement``: :math:`\\Delta x = 0`.
- ``constant-velocity``: :math:`\\Delta x = v\\,\\Delta t`. On trajectories ``v`` is the
  last frame step :math:`x(t) - x(t-1)` and :math:`\\Delta t = 1` frame; on the charged
  N-body task it is the true velocity and :math:`\\Delta t` the time to the target frame,
  i.e. the *Linear* model :math:`p(0) + v(0)\\,t` of Satorras et al., "E(n) Equivariant
  Graph Neural Networks" (ICML 2021), Table 2.
- ``constant-acceleration``: :math:`\\Delta x = v_1 + (v_1 - v_2) = 2 v_1 - v_2` with
  :math:`v_1 = x(t) - x(t-1)`, :math:`v_2 = x(t-1) - x(t-2)` (needs history >= 2).

All three are exactly E(3) equivariant.

Shapes/irreps
-------------
in: ``pos 1o``, ``vel 1o`` or ``vel_history hx1o``; out: ``displacement 1o`` (n, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import keys as K
from ..interface import IrrepsModel, Symmetry, TaskSpec
from ..registry import ConfigError, register_model


@dataclass
class NoConfig:
    """Physical baselines have nothing to configure."""


def _history_length(task: TaskSpec) -> int:
    ir = task.inputs.get(K.VEL_HISTORY)
    return 0 if ir is None else ir.dim // 3


class ZeroDisplacement(IrrepsModel):
    symmetry = Symmetry.E3

    def __init__(self):
        super().__init__({K.POS: "1o"}, {K.DISPLACEMENT: "1o"})

    def forward(self, data):
        return {K.DISPLACEMENT: torch.zeros_like(data[K.POS])}


class ConstantVelocity(IrrepsModel):
    symmetry = Symmetry.E3

    def __init__(self, field: str, dt: float):
        super().__init__({field: "1o" if field == K.VEL else f"{0}x1o"}, {K.DISPLACEMENT: "1o"})
        self.field, self.dt = field, float(dt)

    def forward(self, data):
        return {K.DISPLACEMENT: self.dt * data[self.field][:, :3]}


class ConstantAcceleration(IrrepsModel):
    symmetry = Symmetry.E3

    def __init__(self, history: int):
        super().__init__({K.VEL_HISTORY: f"{history}x1o"}, {K.DISPLACEMENT: "1o"})

    def forward(self, data):
        v = data[K.VEL_HISTORY]
        return {K.DISPLACEMENT: 2 * v[:, 0:3] - v[:, 3:6]}


@register_model("zero-displacement", config=NoConfig, description="physical baseline: predicts no motion")
def build_zero(config: NoConfig, task: TaskSpec) -> IrrepsModel:
    return ZeroDisplacement()


@register_model("constant-velocity", config=NoConfig,
                description="physical baseline: x + v dt (the EGNN paper's Linear model on nbody)")
def build_constant_velocity(config: NoConfig, task: TaskSpec) -> IrrepsModel:
    if K.VEL in task.inputs:
        m = ConstantVelocity(K.VEL, task.extras.get("frame_dt", 1.0))
        m.irreps_in = {K.VEL: task.inputs[K.VEL]}
        return m
    h = _history_length(task)
    if h < 1:
        raise ConfigError(f"constant-velocity needs a velocity input; task {task.name!r} has none "
                          "(use a history length >= 1)")
    m = ConstantVelocity(K.VEL_HISTORY, 1.0)
    m.irreps_in = {K.VEL_HISTORY: task.inputs[K.VEL_HISTORY]}
    return m


@register_model("constant-acceleration", config=NoConfig,
                description="physical baseline: x + 2 v1 - v2 from the last three frames")
def build_constant_acceleration(config: NoConfig, task: TaskSpec) -> IrrepsModel:
    h = _history_length(task)
    if h < 2:
        raise ConfigError(f"constant-acceleration needs a velocity history of at least 2 frames; task "
                          f"{task.name!r} has {h} (use history >= 2)")
    return ConstantAcceleration(h)
