r"""Target and input normalisation that keeps equivariance, and physics-residual targets.

The twelve_body displacements are about :math:`6\times10^{-3}` in size; fed raw, a
network's initial outputs are a hundred times too large and the loss is dominated by
that mismatch. Each vector input other than positions (velocities, velocity history)
and the target are divided by one scalar, their root mean square over the training
set. A scalar factor commutes with every rotation and reflection, so a normalised
E(3)-equivariant model stays E(3)-equivariant. Positions are divided by one length
fitted on the training data, the RMS distance between two nodes of a graph
(:mod:`irrepnet.train.length`, ``scales["length"]``), so that the model, its graph
cutoffs and radial bases are measured in that unit and the same data in nm or in Å
train the same model; the outputs are returned in the data's unit.

Physics residual
----------------
With ``residual = "constant_velocity"`` or ``"constant_acceleration"`` the model
learns a *correction* to a physical extrapolation (:mod:`irrepnet.data.baselines`)
instead of the whole displacement:

.. math::

    \widehat{\Delta x} = b(\text{data}) + s_c \, g \, f_\theta(\text{normalised data}),
    \qquad s_c = \operatorname{RMS}_\text{train}\bigl(\Delta x - b(\text{data})\bigr),

so the network's output is of order one although the correction is 100-1000 times
smaller than the displacement (the correction is normalised by its *own* training
RMS, not by that of the displacement). Both baselines are exactly E(3)-equivariant
(linear in the velocity history), so the sum keeps whatever symmetry ``f`` has; the
audit checks the wrapped model as a whole. ``residual = "none"`` has :math:`b = 0`.

Learned force
-------------
``residual = "force_difference"`` keeps the constant-acceleration baseline and lets
the network be a *force field*: a function :math:`f_\theta` of the positions (and
bonds) alone, evaluated on the current frame and on the previous one,
:math:`x(t-1) = x(t) - v_1`,

.. math::

    \widehat{\Delta x} = 2 v_1 - v_2 + g\, s_a \bigl[f_\theta(x(t)) - f_\theta(x(t-1))\bigr],
    \qquad s_a = \operatorname{RMS}_\text{train}(v_1 - v_2).

This is velocity Verlet with the data's own last acceleration :math:`v_1 - v_2` and the
*change* of acceleration taken from the learned force: if :math:`f_\theta` were the
true acceleration the prediction would be exact for Verlet data, and an error of
:math:`f_\theta` that varies smoothly with the positions cancels in the difference
(a least-squares force field that leaves 6% of the acceleration variance gives 1.6e-9
this way on the dmol test frames, against 9.6e-9 used directly; see the README). The
network must read positions only (build it for the task without history: velocities
of the previous frame are not all known); :func:`model_task_spec` gives that spec.

``g`` is 1, or with ``start_at_baseline`` a learnable scalar initialised at 0
(ReZero-style, Bachlechner et al. 2020): the untrained model *is* the baseline, and a
validation-selected checkpoint can never be worse on the validation split than the
baseline it corrects. Adam rescales every parameter's step by its gradient size, so
the network still learns at the full learning rate while ``g`` is small.

:class:`NormalizedModel` wraps a model that works in normalised units and presents
it in physical units: every reported metric, rollout and audit uses the wrapper.

Energies
--------
On an energy task (target ``energy``, with ``forces`` its negative gradient) the
energy and the forces share one scale, the training RMS of the forces, and the energy
gets a per-element shift :math:`\sum_i \mu_{z_i}` (``scales["atom_energies"]``), fitted
by least squares; see :mod:`irrepnet.train.energy`. A graph property (qm9) is shifted
by its training mean and scaled by its mean absolute deviation, ``scales["shifts"]``
and ``scales["outputs"]`` (:mod:`irrepnet.train.property`).

Shapes/irreps
-------------
the wrapped model's own ``irreps_in`` (plus ``vel_history hx1o`` when a residual
needs it) and ``irreps_out``; scales and the gate are scalars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from .. import keys as K
from ..interface import IrrepsModel
from ..registry import ConfigError
from .energy import energy_shift, fit_energy_scales
from .length import LENGTH_OUTPUTS, length_scale
from .property import fit_property_scales

#: ``residual`` values: the baseline of :mod:`irrepnet.data.baselines` each one adds, and the history it needs.
RESIDUALS = {
    "none": (None, 0),
    "constant_velocity": ("constant_velocity", 1),
    "constant_acceleration": ("constant_acceleration", 2),
    "force_difference": ("constant_acceleration", 2),
}
#: residuals whose network is a force field of the positions, run on two frames
FORCE_RESIDUALS = ("force_difference",)


def model_task_spec(spec, residual: str):
    """The spec a model is built for under ``residual``: positions only (and bonds) for a learned force."""
    if residual not in FORCE_RESIDUALS:
        return spec
    from ..tasks import task_spec

    return task_spec(spec.name, history=0, num_nodes=spec.num_nodes, bonds=spec.extras.get("bonds") == "chain")


def previous_frame(data: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``data`` moved one frame back: ``pos - v_1``; other fields as they are (a force model reads none)."""
    out = dict(data)
    out[K.POS] = data[K.POS] - data[K.VEL_HISTORY][..., :3]
    return out


def rms(x: torch.Tensor) -> float:
    """Root mean square of all entries (float64); 1.0 for an all-zero tensor so that dividing is harmless."""
    value = float(x.detach().double().pow(2).mean().sqrt()) if x.numel() else 0.0
    return value if value > 0 else 1.0


def check_residual(residual: str, history: int, output: str = K.DISPLACEMENT) -> None:
    """Raise :class:`ConfigError` unless ``residual`` exists and the task supports it."""
    if residual not in RESIDUALS:
        raise ConfigError(f"residual must be one of {sorted(RESIDUALS)}, got {residual!r}")
    need = RESIDUALS[residual][1]
    if need and output != K.DISPLACEMENT:
        raise ConfigError(f"residual {residual!r} corrects a displacement; the model is trained on {output!r}")
    if history < need:
        raise ConfigError(
            f"residual {residual!r} needs a velocity history of at least {need} frame(s) "
            f"({K.VEL_HISTORY!r}); the task has history {history}: use --history {need} or more, "
            'or residual = "none"'
        )


def baseline_displacement(residual: str, data: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """The physical extrapolation ``b(data)`` ``(n, 3)`` of ``residual``, or ``None`` for ``"none"``.

    ``data`` may hold node fields of shape ``(n, ...)`` or stacked arrays ``(S, N, ...)``.
    """
    from ..data import baselines

    name = RESIDUALS[residual][0]
    if name is None:
        return None
    vh = data[K.VEL_HISTORY]
    flat = {K.POS: data[K.POS].reshape(-1, 3), K.VEL_HISTORY: vh.reshape(-1, vh.shape[-1])}
    return baselines.predict(name, flat).reshape(data[K.POS].shape)


def scaled_input_fields(model: IrrepsModel) -> list:
    """Inputs divided by their RMS: the vector-only fields (no ``l = 0`` part) other than positions."""
    fields = []
    for name, ir in model.irreps_in.items():
        if ir is None or name in K.POSITION_FIELDS or ir.dim == 0:
            continue
        if all(i.l > 0 for _, i in ir):
            fields.append(name)
    return fields


def fit_scales(
    model: IrrepsModel,
    arrays: Mapping[str, torch.Tensor],
    target: str,
    target_array: torch.Tensor,
    residual: str = "none",
) -> dict[str, dict[str, float]]:
    """``{"inputs": {field: rms}, "outputs": {target: rms}, "length": l}`` from the training arrays.

    With a residual the output scale is the RMS of the correction ``target - b(data)``.
    ``length`` (displacement targets; :func:`irrepnet.train.length.length_scale`) is the
    unit in which the model sees positions.
    """
    if target == K.ENERGY:  # one scale for energy and forces, and per-element atom energies
        if residual != "none":
            raise ConfigError(f"residual {residual!r} corrects a displacement; an energy model has none")
        return fit_energy_scales(arrays)
    if target == K.PROPERTY:  # mean and MAD of the training targets (EGNN's QM9 protocol)
        if residual != "none":
            raise ConfigError(f"residual {residual!r} corrects a displacement; a graph property has none")
        return fit_property_scales(arrays)
    inputs = {f: rms(arrays[f]) for f in scaled_input_fields(model) if f in arrays}
    base = baseline_displacement(residual, arrays) if residual != "none" else None
    corr = target_array if base is None else target_array.double() - base.double().reshape(target_array.shape)
    scales = {"inputs": inputs, "outputs": {target: rms(corr)}}
    length = length_scale(arrays) if target in LENGTH_OUTPUTS else None
    if length is not None:
        scales["length"] = length
    if residual in FORCE_RESIDUALS:  # the unit of the learned force: the last acceleration v_1 - v_2
        vh = arrays[K.VEL_HISTORY]
        scales["acceleration"] = rms(vh[..., :3] - vh[..., 3:6])
    return scales


class NormalizedModel(IrrepsModel):
    """``model`` trained in normalised units, called in physical units.

    ``forward(data)`` divides the scaled inputs, runs ``model``, multiplies the
    scaled outputs back and adds the residual baseline; :meth:`forward_normalized`
    returns the raw (normalised) outputs and :meth:`normalized_target` the matching
    truth, which the loss compares so that tiny targets keep their precision.

    Parameters
    ----------
    model : IrrepsModel
    scales : dict
        ``{"inputs": {field: s}, "outputs": {field: s}}`` as made by :func:`fit_scales`;
        optional ``"length"``: positions are divided by it before ``model`` reads them
        (its cutoffs are in that unit; absent: the data's unit).
    residual : str
        ``"none"``, ``"constant_velocity"``, ``"constant_acceleration"`` or ``"force_difference"``
        (see the module docstring).
    start_at_baseline : bool
        multiply the correction by a learnable scalar gate initialised at 0.
    output : str
        the output the residual and the gate apply to.
    history : int, optional
        the task's history length, for the irreps of ``vel_history`` when only the
        residual reads it (default: the fewest frames the residual needs).
    """

    def __init__(
        self,
        model: IrrepsModel,
        scales: Mapping[str, Mapping[str, float]],
        *,
        residual: str = "none",
        start_at_baseline: bool = False,
        output: str = K.DISPLACEMENT,
        history: int | None = None,
    ):
        if residual not in RESIDUALS:
            raise ConfigError(f"residual must be one of {sorted(RESIDUALS)}, got {residual!r}")
        irreps_in = dict(model.irreps_in)
        need = RESIDUALS[residual][1]
        if need and K.VEL_HISTORY not in irreps_in:  # read by the baseline only
            irreps_in[K.VEL_HISTORY] = f"{max(need, history or 0)}x1o"
        self.acceleration_scale = None
        if residual in FORCE_RESIDUALS:
            velocities = [f for f in (K.VEL, K.VEL_HISTORY) if f in model.irreps_in]
            if velocities:
                raise ConfigError(
                    f"residual {residual!r} runs the model as a force field of the positions on two "
                    f"frames, but it reads {velocities}; build it for the task without history "
                    "(irrepnet.train.normalization.model_task_spec)"
                )
            if not scales.get("acceleration", 0) > 0:
                raise ValueError(f"residual {residual!r} needs scales['acceleration'] > 0 (fit_scales makes it)")
            self.acceleration_scale = float(scales["acceleration"])
        super().__init__(irreps_in, model.irreps_out, symmetry=model.symmetry)
        self.permutation_equivariant = model.permutation_equivariant
        self.model = model
        self.residual, self.output = residual, output
        self.input_scales = {k: float(v) for k, v in scales.get("inputs", {}).items()}
        self.output_scales = {k: float(v) for k, v in scales.get("outputs", {}).items()}
        if K.ENERGY in self.output_scales:  # the stress is the energy's strain derivative: its scale
            self.output_scales.setdefault(K.STRESS, self.output_scales[K.ENERGY])
        self.output_shifts = {k: float(v) for k, v in scales.get("shifts", {}).items()}  # added after scaling
        length = scales.get("length")
        self.length_scale = None if length is None else float(length)
        if self.length_scale is not None and not (math.isfinite(self.length_scale) and self.length_scale > 0):
            raise ValueError(f"scales['length'] must be finite and > 0, got {length}")
        for name, s in list(self.input_scales.items()) + list(self.output_scales.items()):
            if not s > 0:
                raise ValueError(f"scale of {name!r} must be > 0, got {s}")
        # a registered parameter (not a buffer) only when asked: old checkpoints keep loading
        self.gate = torch.nn.Parameter(torch.zeros(())) if start_at_baseline else None
        atom_energies = scales.get("atom_energies")
        self.atom_energies = [float(m) for m in atom_energies] if atom_energies is not None else None
        if self.atom_energies is not None and K.SPECIES_ONEHOT not in irreps_in:
            raise ValueError(
                f"scales['atom_energies'] shift the energy by element, but the model does not read "
                f"{K.SPECIES_ONEHOT!r}; fit the scales of this model with fit_scales"
            )

    @property
    def scales(self) -> dict[str, dict[str, float]]:
        out = {"inputs": dict(self.input_scales), "outputs": dict(self.output_scales)}
        if self.acceleration_scale is not None:
            out["acceleration"] = self.acceleration_scale
        if self.atom_energies is not None:
            out["atom_energies"] = list(self.atom_energies)
        if self.output_shifts:
            out["shifts"] = dict(self.output_shifts)
        if self.length_scale is not None:
            out["length"] = self.length_scale
        return out

    def normalize_inputs(self, data: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = dict(data)
        for name, s in self.input_scales.items():
            if name in out:
                out[name] = out[name] / s
        if self.length_scale is not None:  # lengths in the fitted unit: cutoffs and radial bases read them
            for name in (K.POSITION_FIELDS | {K.EDGE_VEC, K.EDGE_LEN}) & out.keys():
                out[name] = out[name] / self.length_scale
        return out

    def forward_normalized(self, data: Mapping[str, torch.Tensor], runner=None) -> dict[str, torch.Tensor]:
        """Normalised outputs; ``runner`` (e.g. the compiled ``model``) runs instead of ``model``."""
        run = runner or self.model
        out = run(self.normalize_inputs(data))
        if self.acceleration_scale is not None:  # a learned force: its change over the last frame step
            before = run(self.normalize_inputs(previous_frame(data)))[self.output]
            unit = self.acceleration_scale / self.output_scales.get(self.output, 1.0)
            out = {**out, self.output: unit * (out[self.output] - before)}
        if self.gate is not None:
            out = dict(out)
            out[self.output] = self.gate * out[self.output]
        return out

    def normalized_target(
        self, data: Mapping[str, torch.Tensor], truth: torch.Tensor, output: str | None = None
    ) -> torch.Tensor:
        """What :meth:`forward_normalized` should output for ``output`` (default: the trained one).

        ``(truth - b(data)) / s``.

        ``b`` is the residual baseline of the trained output, or the atom energies of ``energy``.
        """
        output = output or self.output
        base = baseline_displacement(self.residual, data) if output == self.output else None
        if output == K.ENERGY and self.atom_energies is not None:
            base = energy_shift(data, self.atom_energies).to(truth.dtype)
        corr = truth if base is None else truth - base
        if output in self.output_shifts:
            corr = corr - self.output_shifts[output]
        return corr / self.output_scales.get(output, 1.0)

    def to_physical(self, data: Mapping[str, torch.Tensor], out: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Normalised outputs (of :meth:`forward_normalized` on ``data``) in physical units, baseline added."""
        out = {k: (v * self.output_scales[k] if k in self.output_scales else v) for k, v in out.items()}
        out.update({k: out[k] + s for k, s in self.output_shifts.items() if k in out})
        base = baseline_displacement(self.residual, data)
        if base is not None:
            out[self.output] = out[self.output] + base.to(out[self.output].dtype)
        if self.atom_energies is not None and K.ENERGY in out:
            out[K.ENERGY] = out[K.ENERGY] + energy_shift(data, self.atom_energies).to(out[K.ENERGY].dtype)
        return out

    def forward(self, data: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.to_physical(data, self.forward_normalized(data))

    def extra_repr(self) -> str:
        gate = ", start_at_baseline" if self.gate is not None else ""
        return f"scales={self.scales}, residual={self.residual!r}{gate}"


def with_residual(
    model: IrrepsModel,
    residual: str,
    correction_scale: float = 1.0,
    *,
    start_at_baseline: bool = False,
    history: int | None = None,
) -> NormalizedModel:
    """``model`` as a correction to the physical extrapolation ``residual`` (no input scaling).

    The library form of what ``irrepnet train --residual`` does: the output is
    ``b(data) + correction_scale * model(data)`` (times the gate with ``start_at_baseline``).
    """
    return NormalizedModel(
        model,
        {"outputs": {K.DISPLACEMENT: correction_scale}},
        residual=residual,
        start_at_baseline=start_at_baseline,
        history=history,
    )
