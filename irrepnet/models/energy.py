r"""Energy models: a per-graph energy summed from node scalars, and forces as its negative gradient.

The NequIP construction (Batzner et al., "E(3)-equivariant graph neural networks for
data-efficient and accurate interatomic potentials", Nat. Commun. 13, 2453 (2022)),
after SchNet (Schütt et al. 2017): a backbone maps the atoms to one invariant scalar
per atom, the energy is their sum over each graph, and the forces are its gradient,

.. math::

    E_g = \sum_{i \in g} \varepsilon_i(\{x_j\}, \{z_j\}), \qquad
    F_i = -\frac{\partial E_{g(i)}}{\partial x_i}.

If :math:`E` is E(3) invariant, :math:`F` is E(3) equivariant (a ``1o`` vector) by the
chain rule, and it is conservative (a curl-free field) by construction. The sum makes
:math:`E` extensive and the model apply to graphs of any size.

:class:`EnergyModel` wraps any :class:`~irrepnet.interface.IrrepsModule` that writes
``node_energy`` (``0e``, one per node); the registered families build one with their
invariant node features read by :class:`~irrepnet.nn.ScalarHead` (``per_graph=False``).
The gradient is taken inside ``forward``, under ``torch.enable_grad()``, so the
forces exist also where the caller turned gradients off (evaluation, the audit);
``create_graph`` is on in training mode, so that a loss on the forces trains the
parameters (a second-order gradient).

Stress
------
On periodic graphs (``cell (G, 3, 3)``, rows the lattice vectors, and ``pbc`` all true)
an :class:`EnergyModel` built with ``compute_stress=True`` (the registry does it for
tasks whose spec has ``extras["stress"]``, such as ``bulk_metal``) also returns the
stress, the derivative of the energy under a homogeneous strain :math:`\varepsilon`
(symmetric, one per graph) applied to positions and cell alike, per volume:

.. math::

    x_i' = x_i (1 + \varepsilon), \qquad C' = C (1 + \varepsilon), \qquad
    \sigma_g = \frac{1}{V_g} \frac{\partial E_g(x', C')}{\partial \varepsilon_g}\Big|_{\varepsilon = 0},
    \qquad V_g = |\det C_g|,

with row vectors as in ASE (the stress as the strain derivative of the energy: Nielsen &
Martin, "Quantum-mechanical theory of stress and force", Phys. Rev. B 32, 3780 (1985)):
the sign and units of ASE's
``get_stress(voigt=False)`` (eV/Å³ for eV and Å), positive when stretching the cell
raises the energy. The strain enters at zero, so the positions' gradient is still the
forces, and both come from one ``torch.autograd.grad`` call. The stress is a Cartesian
rank-2 tensor (it rotates as :math:`R \sigma R^\top`), not a field of e3nn irreps, so it
is declared with irreps ``None`` (:data:`irrepnet.keys.CARTESIAN_TENSOR_FIELDS` tells the
audit how it rotates); on a batch that is not periodic it is left out.

Graph properties
----------------
A task whose target is ``property`` (qm9: one invariant per molecule, such as the HOMO
energy) uses the same backbones without forces: :class:`GraphPropertyModel` pools the
node scalars per graph, by their sum (the default, as in the EGNN paper's QM9 model and
SchNet) or their mean (``pooling="mean"``, an intensive readout),

.. math::

    y_g = \sum_{i \in g} \varepsilon_i \quad\text{or}\quad y_g = \frac{1}{N_g}\sum_{i \in g} \varepsilon_i .

:func:`as_property_model` turns the :class:`EnergyModel` a registered builder returns
into one (the registry does it for such tasks).

Shapes/irreps
-------------
reads what the backbone reads (at least ``pos 1o (n, 3)``); returns ``energy (G, 1)``
``0e`` (a graph field) and ``forces (n, 3)`` ``1o`` (a node field), with
``compute_stress`` on periodic graphs also ``stress (G, 3, 3)`` (``cell (G, 3, 3)`` and
``pbc (G, 3)`` read from the batch); a :class:`GraphPropertyModel` returns
``property (G, 1)`` ``0e``.
"""

from __future__ import annotations

import torch

from .. import keys as K
from ..batch import ensure_batch
from ..interface import IrrepsModel, IrrepsModule, cast_inputs
from ..scatter import segment_sum


def _check_node_energy(backbone: IrrepsModule) -> None:
    """The backbone must write ``node_energy`` as ``1x0e``: one invariant per node to sum or pool."""
    written = backbone.irreps_out.get(K.NODE_ENERGY)
    if written is None or str(written) != "1x0e":
        raise ValueError(
            f"{type(backbone).__name__} must write {K.NODE_ENERGY!r} as 1x0e (one invariant per "
            f"node); it writes {dict(backbone.irreps_out)}"
        )


class EnergyModel(IrrepsModel):
    """``energy`` = per-graph sum of the backbone's ``node_energy``; ``forces = -d energy / d pos``.

    Parameters
    ----------
    backbone : IrrepsModule
        reads ``pos`` (and whatever else) and writes ``node_energy`` ``0e``; it may return
        the whole batch dict or only its outputs.
    symmetry : Symmetry or str
        the claim the audit checks: the backbone's symmetry (``"E(3)"`` for an invariant
        energy made of distances and parity-even features).
    compute_stress : bool
        also return ``stress`` on batches whose graphs are all periodic in three
        directions (see the module docstring); the backbone must build its edges from
        ``pos`` and ``cell`` (a periodic graph), so that the strain reaches the energy.
    """

    def __init__(self, backbone: IrrepsModule, symmetry="E(3)", compute_stress: bool = False):
        if K.POS not in backbone.irreps_in:
            raise ValueError(
                f"{type(backbone).__name__} does not read {K.POS!r}: forces are the gradient of the "
                "energy with respect to the positions, so the backbone must read them"
            )
        _check_node_energy(backbone)
        outputs = {K.ENERGY: "0e", K.FORCES: "1o", **({K.STRESS: None} if compute_stress else {})}
        super().__init__(backbone.irreps_in, outputs, symmetry=symmetry)
        self.backbone, self.compute_stress = backbone, bool(compute_stress)

    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        data = ensure_batch(cast_inputs(self, data))
        outer_grad = torch.is_grad_enabled()
        pos = data[K.POS]
        if not pos.requires_grad:  # a fresh leaf: the caller's tensor is left as it is
            pos = pos.detach().requires_grad_(True)
        if K.CELL in data:  # the lattice vectors enter the edge vectors beside the positions: one dtype
            data[K.CELL] = data[K.CELL].to(pos.dtype)
        stress = self.compute_stress and fully_periodic(data)
        with torch.enable_grad():
            inputs, wrt = {**data, K.POS: pos}, [pos]
            if stress:
                strain, inputs[K.POS], inputs[K.CELL] = strained(pos, data[K.CELL], data[K.BATCH])
                wrt.append(strain)
            node_energy = self.backbone(inputs)[K.NODE_ENERGY]
            # numel(), not int(numel()): int() would pin the number of graphs in an export (irrepnet.export)
            energy = segment_sum(node_energy, data[K.BATCH], data[K.NUM_NODES].numel())
            grads = torch.autograd.grad(energy.sum(), wrt, create_graph=self.training and outer_grad, allow_unused=True)
        out = {K.ENERGY: energy, K.FORCES: -grads[0] if grads[0] is not None else torch.zeros_like(pos)}
        if stress:
            d_strain = grads[1] if grads[1] is not None else torch.zeros_like(wrt[1])
            out[K.STRESS] = d_strain / torch.linalg.det(inputs[K.CELL].detach()).abs()[:, None, None]
        if not outer_grad:  # evaluation: hand back plain values, no graph kept alive
            out = {k: v.detach() for k, v in out.items()}
        return out


def fully_periodic(data: dict[str, torch.Tensor]) -> bool:
    """Whether the batch has a ``cell`` and every graph is periodic along all three lattice vectors."""
    return K.CELL in data and K.PBC in data and bool(data[K.PBC].all())


def strained(
    pos: torch.Tensor, cell: torch.Tensor, batch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(strain, x (1 + eps), C (1 + eps))`` with ``strain (G, 3, 3)`` a zero leaf to differentiate by.

    ``eps`` is the symmetric part of ``strain``, so the derivative with respect to
    ``strain`` is the symmetric stress; at zero strain positions and cell are unchanged.
    Shapes: ``pos (n, 3)``, ``cell (G, 3, 3)``, ``batch (n,)``.
    """
    strain = torch.zeros_like(cell).requires_grad_(True)
    eps = 0.5 * (strain + strain.transpose(1, 2))
    return strain, pos + torch.einsum("ni,nij->nj", pos, eps[batch]), cell + cell @ eps


#: how :class:`GraphPropertyModel` pools the node scalars of a graph
POOLINGS = ("sum", "mean")


class GraphPropertyModel(IrrepsModel):
    """``property`` = per-graph sum (or mean) of the backbone's ``node_energy``; no forces.

    Parameters
    ----------
    backbone : IrrepsModule
        writes ``node_energy`` ``1x0e`` (the backbone of an :class:`EnergyModel`).
    pooling : {"sum", "mean"}
    symmetry : Symmetry or str
        the backbone's symmetry.
    """

    def __init__(self, backbone: IrrepsModule, pooling: str = "sum", symmetry="E(3)"):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        _check_node_energy(backbone)
        super().__init__(backbone.irreps_in, {K.PROPERTY: "0e"}, symmetry=symmetry)
        self.backbone, self.pooling = backbone, pooling

    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        data = ensure_batch(cast_inputs(self, data))
        node = self.backbone(data)[K.NODE_ENERGY]
        counts = data[K.NUM_NODES]
        out = segment_sum(node, data[K.BATCH], counts.numel())
        if self.pooling == "mean":  # an empty graph pools to 0
            out = out / counts.clamp(min=1).to(out.dtype)[:, None]
        return {K.PROPERTY: out}

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}"


def as_property_model(model: IrrepsModel, pooling: str = "sum") -> IrrepsModel:
    """``model`` as a :class:`GraphPropertyModel`: an :class:`EnergyModel`'s backbone, pooled; no forces."""
    if K.PROPERTY in model.irreps_out:
        return model
    if not isinstance(model, EnergyModel):
        raise TypeError(
            f"{type(model).__name__} has no per-node scalar backbone to pool (an EnergyModel has one); "
            f"it writes {sorted(model.irreps_out)}"
        )
    return GraphPropertyModel(model.backbone, pooling=pooling, symmetry=model.symmetry)


def wants_energy(task) -> bool:
    """Whether ``task`` (a TaskSpec) asks for per-node scalars summed per graph: an energy (with forces as its
    negative gradient) or a graph property (qm9); builders return an :class:`EnergyModel` for both."""
    return task.target in (K.ENERGY, K.PROPERTY)


def with_stress(model: IrrepsModel) -> IrrepsModel:
    """``model`` (an :class:`EnergyModel`) with ``compute_stress`` on, sharing its backbone; others as they are."""
    if not isinstance(model, EnergyModel) or model.compute_stress:
        return model
    return EnergyModel(model.backbone, symmetry=model.symmetry, compute_stress=True)


__all__ = [
    "POOLINGS",
    "EnergyModel",
    "GraphPropertyModel",
    "as_property_model",
    "fully_periodic",
    "strained",
    "wants_energy",
    "with_stress",
]
