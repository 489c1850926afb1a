r"""Loss terms and normalisation of energy-and-force training (the molecules task).

An energy model (:class:`irrepnet.models.energy.EnergyModel`) returns ``energy`` per
graph and ``forces = -d energy / d pos`` per node. Following NequIP (Batzner et al.,
Nat. Commun. 13, 2453 (2022)) and Allegro, both are trained together,

.. math::

    \mathcal L = w_E\, \frac{1}{G} \sum_g \Bigl(\frac{\hat E_g - E_g}{s\, N_g}\Bigr)^2
               + w_F\, \frac{1}{3n} \sum_{i,\alpha} \Bigl(\frac{\hat F_{i\alpha} - F_{i\alpha}}{s}\Bigr)^2,

with ``energy_weight`` :math:`w_E` and ``force_weight`` :math:`w_F` from the training
config. On periodic data with a stress label (bulk_metal) ``stress_weight`` :math:`w_\sigma`
(default 0) adds the stress as a virial per atom, in the unit of the energy term,

.. math::

    w_\sigma\, \frac{1}{9G} \sum_{g,\alpha\beta}
        \Bigl(\frac{V_g (\hat\sigma_{g,\alpha\beta} - \sigma_{g,\alpha\beta})}{s\, N_g}\Bigr)^2,

since the stress is an energy per volume: :math:`\sigma V / N` is the per-atom energy
change under unit strain, as extensive-free as the per-atom energy. The energy error is taken **per atom** (divided by the atom count :math:`N_g`):
the energy is extensive, so a per-molecule error would weigh a 14-atom molecule
:math:`14^2` times more than a one-atom one and grow with the system, while the force
term is already per atom; per atom, both terms are intensive and comparable.

Normalisation (:func:`fit_energy_scales`): one scale :math:`s`, the RMS of the training
force components, divides energy and forces alike, because the forces are the
gradient of the energy: :math:`E = s\,\tilde E + \sum_i \mu_{z_i}` gives
:math:`F = s\,\tilde F` for the network's :math:`\tilde E, \tilde F` (positions stay
in Å). The shift :math:`\sum_i \mu_{z_i}` is a per-element atom energy fitted by least
squares of the training energies on the element counts; it depends on the atom types
only, so it is invariant and adds no force.

Shapes/irreps
-------------
``energy``, ``target_energy (G, 1)`` 0e; ``forces``, ``target_forces (n, 3)`` 1o;
``species_onehot (n, k)`` kx0e; atom energies ``(k,)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import keys as K
from ..batch import ensure_batch
from ..scatter import segment_sum


@dataclass(frozen=True)
class LossTerm:
    """One part of the training loss: ``weight`` x MSE of ``output`` against ``truth`` (normalised units).

    ``per_atom``: a graph field whose error is divided by the graph's node count first.
    ``loss``: ``"mse"`` (squared error) or ``"l1"`` (absolute error, the EGNN paper's QM9 loss).
    """

    output: str
    truth: str
    weight: float = 1.0
    per_atom: bool = False
    loss: str = "mse"


def energy_loss_terms(energy_weight: float, force_weight: float, stress_weight: float = 0.0) -> list[LossTerm]:
    """The terms of the energy-and-force (and stress) loss (see the module docstring); zero weights are left out."""
    terms = []
    if energy_weight > 0:
        terms.append(LossTerm(K.ENERGY, K.TARGET_ENERGY, float(energy_weight), per_atom=True))
    if force_weight > 0:
        terms.append(LossTerm(K.FORCES, K.TARGET_FORCES, float(force_weight)))
    if stress_weight > 0:
        terms.append(LossTerm(K.STRESS, K.TARGET_STRESS, float(stress_weight)))  # per atom via the volume
    return terms


def virial_per_atom(stress: torch.Tensor, data: Mapping[str, torch.Tensor]) -> torch.Tensor:
    r"""``(G, 9)``: :math:`\sigma_g V_g / N_g` of ``stress (G, 3, 3)``, from ``cell`` and ``num_nodes``."""
    volume = torch.linalg.det(data[K.CELL].to(stress.dtype)).abs()
    per_atom = volume / data[K.NUM_NODES].to(stress.dtype).clamp(min=1)
    return stress.reshape(len(stress), 9) * per_atom[:, None]


def displacement_only_options(config) -> list[str]:
    """Names of the options of ``config`` (a TrainConfig) that are set but only apply to displacement tasks.

    An energy model has no physical baseline to correct or start from, and noisy or
    fed-back positions would not match the forces labelled at the true ones.
    """
    on = (
        ("residual", config.residual != "none"),
        ("start_at_baseline", config.start_at_baseline),
        ("input_noise", config.input_noise > 0),
        ("unroll_steps", config.unroll_steps > 1),
    )
    return [name for name, is_set in on if is_set]


def species_counts(data: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``(G, k)`` atoms of each species per graph, from ``species_onehot`` and ``batch``."""
    data = ensure_batch(data)
    return segment_sum(data[K.SPECIES_ONEHOT], data[K.BATCH], data[K.NUM_NODES].numel())


def energy_shift(data: Mapping[str, torch.Tensor], atom_energies: Sequence[float]) -> torch.Tensor:
    """``(G, 1)``: :math:`\\sum_{i \\in g} \\mu_{z_i}`, the energy of graph ``g``'s atoms on their own."""
    onehot = data[K.SPECIES_ONEHOT]
    mu = torch.as_tensor(list(atom_energies), dtype=onehot.dtype, device=onehot.device)
    if mu.numel() != onehot.shape[-1]:
        raise ValueError(
            f"{len(mu)} atom energies for a one-hot of {onehot.shape[-1]} species; "
            "the model was normalised on another species list"
        )
    return species_counts(data) @ mu[:, None]


def fit_energy_scales(arrays: Mapping[str, torch.Tensor]) -> dict[str, object]:
    """``{"inputs": {}, "outputs": {energy: s, forces: s}, "atom_energies": [mu_1..mu_k]}`` from the training set.

    ``arrays`` is the whole training set as one batch (``MoleculeDataset.arrays()``).
    """
    for name in (K.TARGET_ENERGY, K.SPECIES_ONEHOT):
        if name not in arrays:
            raise ValueError(f"energy training needs the field {name!r} in the training set; it has {sorted(arrays)}")
    counts = species_counts(arrays).double().cpu().numpy()
    energy = arrays[K.TARGET_ENERGY].double().cpu().numpy().reshape(-1)
    mu, *_ = np.linalg.lstsq(counts, energy, rcond=None)  # minimum norm for species never seen
    forces = arrays.get(K.TARGET_FORCES)
    if forces is not None and forces.numel() and float(forces.double().pow(2).mean()) > 0:
        s = float(forces.double().pow(2).mean().sqrt())
    else:  # no forces: the scale of the per-atom energy residual
        resid = (energy - counts @ mu) / np.maximum(counts.sum(1), 1)
        s = float(np.sqrt(np.mean(resid**2))) or 1.0
    # the stress is the strain derivative of the same energy: the same scale (positions stay in Å)
    outputs = {K.ENERGY: s, K.FORCES: s, K.STRESS: s}
    return {"inputs": {}, "outputs": outputs, "atom_energies": [float(m) for m in mu]}
