r"""Chain topology as edge features: which pairs of a bead-spring chain are bonded.

A polymer's forces depend on its bonds, not on distances alone: on the dmol-book
12-body chain bonded beads are 0.07-0.65 apart and non-bonded ones come as close
as 0.16, so a model that sees only distances cannot tell a stretched bond from a
close encounter. Bonded terms also explain most of the acceleration: a linear
least-squares fit of bond and angle forces that knows the bonds predicts the next
step with an MSE of 1.5e-9 on the dmol test frames, against 5.6e-9 for constant
acceleration, and pairwise forces that know them only reach 5.4e-8
(``benchmarks/force_fit.py``).

When a task declares its nodes a chain (``TaskSpec.extras["bonds"] == "chain"``,
``load_task(..., bonds=True)``), ``node_index`` is the bead's place along the
chain and an edge :math:`j \to i` gets the one-hot of its chain separation

.. math::

    s_{ij} = \min(|k_i - k_j|, S), \qquad
    t_{ij} = \mathrm{onehot}(s_{ij} - 1) \in \{0, 1\}^{S}

with :math:`S = 3` classes: bonded neighbours, angle partners (1-3 pairs) and
the rest. :math:`t_{ij}` is a scalar (``0e``) function of node labels, so it
keeps E(3) equivariance, and it is symmetric in :math:`i, j` and moves with the
nodes, so it keeps permutation equivariance (the audit permutes ``node_index``
with the positions).

Shapes/irreps
-------------
``node_index (n,)`` long and ``edge_index (2, E)`` -> ``(E, S)`` ``S x 0e``.
"""

from __future__ import annotations

import torch

from .. import keys as K

#: separation classes: bonded (1), angle partners (2), further along the chain (>= 3)
CHAIN_CLASSES = 3


def chain_bonds(task) -> bool:
    """Whether ``task`` (a :class:`~irrepnet.interface.TaskSpec`) declares its nodes a bonded chain."""
    return task.extras.get("bonds") == "chain"


def chain_separation(
    node_index: torch.Tensor,
    edge_index: torch.Tensor,
    *,
    classes: int = CHAIN_CLASSES,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""One-hot ``(E, classes)`` of :math:`\min(|k_i - k_j|, classes) - 1` for each edge.

    Edges join distinct nodes of one graph, so the separation is at least 1. ``dtype`` defaults to
    torch's default dtype at the time of the call (not at import).
    """
    sep = (node_index.index_select(0, edge_index[1]) - node_index.index_select(0, edge_index[0])).abs()
    sep = sep.clamp(1, classes) - 1
    return torch.nn.functional.one_hot(sep, classes).to(dtype or torch.get_default_dtype())


def chain_separation_of(data, edge_index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """:func:`chain_separation` of ``data``'s ``node_index`` on ``edge_index``, in ``like``'s dtype."""
    return chain_separation(data[K.NODE_INDEX], edge_index, dtype=like.dtype)
