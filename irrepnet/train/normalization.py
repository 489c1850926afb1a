r"""Target and input normalisation that keeps equivariance.

The twelve_body displacements are about :math:`6\times10^{-3}` in size; fed raw, a
network's initial outputs are a hundred times too large and the loss is dominated by
that mismatch. Each vector input other than positions (velocities, velocity history)
and the target are divided by one scalar, their root mean square over the training
set. A scalar factor commutes with every rotation and reflection, so a normalised
E(3)-equivariant model stays E(3)-equivariant; positions are left alone because
graph cutoffs and distances are read from them.

:class:`NormalizedModel` wraps a model that works in normalised units and presents
it in physical units: every reported metric, rollout and audit uses the wrapper.

Shapes/irreps
-------------
the wrapped model's own ``irreps_in`` / ``irreps_out``; scales are scalars.
"""

from __future__ import annotations

from typing import Dict, Mapping

import torch

from .. import keys as K
from ..interface import IrrepsModel


def rms(x: torch.Tensor) -> float:
    """Root mean square of all entries (float64); 1.0 for an all-zero tensor so that dividing is harmless."""
    value = float(x.detach().double().pow(2).mean().sqrt()) if x.numel() else 0.0
    return value if value > 0 else 1.0


def scaled_input_fields(model: IrrepsModel) -> list:
    """Inputs divided by their RMS: the vector-only fields (no ``l = 0`` part) other than positions."""
    fields = []
    for name, ir in model.irreps_in.items():
        if ir is None or name in K.POSITION_FIELDS or ir.dim == 0:
            continue
        if all(i.l > 0 for _, i in ir):
            fields.append(name)
    return fields


def fit_scales(model: IrrepsModel, arrays: Mapping[str, torch.Tensor], target: str,
               target_array: torch.Tensor) -> Dict[str, Dict[str, float]]:
    """``{"inputs": {field: rms}, "outputs": {target: rms}}`` from the training arrays."""
    inputs = {f: rms(arrays[f]) for f in scaled_input_fields(model) if f in arrays}
    return {"inputs": inputs, "outputs": {target: rms(target_array)}}


class NormalizedModel(IrrepsModel):
    """``model`` trained in normalised units, called in physical units.

    ``forward(data)`` divides the scaled inputs, runs ``model`` and multiplies the
    scaled outputs back; :meth:`forward_normalized` returns the raw (normalised)
    outputs, which the loss uses so that tiny targets keep their precision.

    Parameters
    ----------
    model : IrrepsModel
    scales : dict
        ``{"inputs": {field: s}, "outputs": {field: s}}`` as made by :func:`fit_scales`.
    """

    def __init__(self, model: IrrepsModel, scales: Mapping[str, Mapping[str, float]]):
        super().__init__(model.irreps_in, model.irreps_out, symmetry=model.symmetry)
        self.permutation_equivariant = model.permutation_equivariant
        self.model = model
        self.input_scales = {k: float(v) for k, v in scales.get("inputs", {}).items()}
        self.output_scales = {k: float(v) for k, v in scales.get("outputs", {}).items()}
        for name, s in list(self.input_scales.items()) + list(self.output_scales.items()):
            if not s > 0:
                raise ValueError(f"scale of {name!r} must be > 0, got {s}")

    @property
    def scales(self) -> Dict[str, Dict[str, float]]:
        return {"inputs": dict(self.input_scales), "outputs": dict(self.output_scales)}

    def normalize_inputs(self, data: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        out = dict(data)
        for name, s in self.input_scales.items():
            if name in out:
                out[name] = out[name] / s
        return out

    def forward_normalized(self, data: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return self.model(self.normalize_inputs(data))

    def forward(self, data: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        out = self.forward_normalized(data)
        return {k: (v * self.output_scales[k] if k in self.output_scales else v) for k, v in out.items()}

    def extra_repr(self) -> str:
        return f"scales={self.scales}"
