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

All three are exactly E(3) equivariant. The formulas live in
:mod:`irrepnet.data.baselines`; these classes only declare their irreps.

Shapes/irreps
-------------
in: ``pos 1o``, ``vel 1o`` or ``vel_history hx1o``; out: ``displacement 1o`` (n, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import keys as K
from ..data import baselines
from ..interface import IrrepsModel, Symmetry, TaskSpec
from ..registry import ConfigError, register_model


@dataclass
class NoConfig:
    """Physical baselines have nothing to configure."""


def _history_length(task: TaskSpec) -> int:
    ir = task.inputs.get(K.VEL_HISTORY)
    return 0 if ir is None else ir.dim // 3


class PhysicalBaseline(IrrepsModel):
    """A parameter-free predictor from :mod:`irrepnet.data.baselines` behind the interface."""

    symmetry = Symmetry.E3

    def __init__(self, name: str, irreps_in, delta_t: float = 1.0):
        super().__init__(irreps_in, {K.DISPLACEMENT: "1o"})
        self.baseline, self.delta_t = name, float(delta_t)

    def forward(self, data):
        return {K.DISPLACEMENT: baselines.predict(self.baseline, data, delta_t=self.delta_t)}

    def extra_repr(self) -> str:
        return f"{self.baseline!r}, {super().extra_repr()}"


@register_model("zero-displacement", config=NoConfig, description="physical baseline: predicts no motion")
def build_zero(config: NoConfig, task: TaskSpec) -> IrrepsModel:
    """Build ``zero-displacement``: predicts no motion."""
    return PhysicalBaseline("zero", {K.POS: task.inputs.get(K.POS, "1o")})


@register_model(
    "constant-velocity",
    config=NoConfig,
    description="physical baseline: x + v dt (the EGNN paper's Linear model on nbody)",
)
def build_constant_velocity(config: NoConfig, task: TaskSpec) -> IrrepsModel:
    """Build ``constant-velocity``: ``x + v dt``."""
    if _history_length(task) >= 1:
        return PhysicalBaseline("constant_velocity", {K.VEL_HISTORY: task.inputs[K.VEL_HISTORY]})
    if K.VEL in task.inputs:  # physical velocities: the EGNN paper's Linear model
        return PhysicalBaseline("linear", {K.VEL: task.inputs[K.VEL]}, task.extras.get("delta_t", 1.0))
    raise ConfigError(
        f"constant-velocity needs a velocity input; task {task.name!r} has none (use a history length >= 1)"
    )


@register_model(
    "constant-acceleration", config=NoConfig, description="physical baseline: x + 2 v1 - v2 from the last three frames"
)
def build_constant_acceleration(config: NoConfig, task: TaskSpec) -> IrrepsModel:
    """Build ``constant-acceleration``: ``x + 2 v1 - v2`` from the last three frames."""
    h = _history_length(task)
    if h < 2:
        raise ConfigError(
            f"constant-acceleration needs a velocity history of at least 2 frames; task "
            f"{task.name!r} has {h} (use history >= 2)"
        )
    return PhysicalBaseline("constant_acceleration", {K.VEL_HISTORY: task.inputs[K.VEL_HISTORY]})
