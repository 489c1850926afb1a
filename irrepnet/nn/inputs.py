"""From a task's input fields to the first node features of a model.

:class:`NodeInputs` concatenates the geometric inputs a model declares it uses
(velocities ``1o``, velocity history ``hx1o``, charges ``0e``, atom types ``kx0e``...) after a constant
scalar ``1x0e``, in e3nn's layout, so that every model starts from irreps it can
read off the task spec. Positions are *not* a node feature: only their differences
(edge vectors) are, which is what makes a model translation invariant.

Shapes/irreps
-------------
reads each chosen field ``(n, I_f.dim)``; writes ``node_features (n, 1 + sum I_f.dim)``
with irreps ``1x0e + I_f1 + I_f2 + ...`` and ``node_attrs (n, 1)`` ones, ``1x0e``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from e3nn import o3

from .. import keys as K
from ..interface import IrrepsModule

#: fields a model may take as node features, when the task has them
DEFAULT_FEATURE_FIELDS = (K.VEL, K.VEL_HISTORY, K.CHARGE, K.SPECIES_ONEHOT)


class NodeInputs(IrrepsModule):
    """Node features ``1x0e + <chosen inputs>`` and node attributes ``1x0e``.

    Parameters
    ----------
    task_inputs : dict
        the task spec's inputs (field -> irreps).
    fields : sequence of str, optional
        which of them to use; default: those of :data:`DEFAULT_FEATURE_FIELDS` the
        task has. ``vel`` is skipped when ``vel_history`` is used (it is its first block).
    """

    def __init__(self, task_inputs: Mapping[str, object], fields: Sequence[str] | None = None):
        super().__init__()
        if fields is None:
            fields = [f for f in DEFAULT_FEATURE_FIELDS if f in task_inputs]
            if K.VEL_HISTORY in fields and K.VEL in fields:
                fields.remove(K.VEL)
        missing = [f for f in fields if f not in task_inputs or task_inputs[f] is None]
        if missing:
            raise ValueError(
                f"NodeInputs: fields {missing} are not geometric inputs of this task (inputs: {dict(task_inputs)})"
            )
        irreps_in = {f: o3.Irreps(task_inputs[f]) for f in fields}
        features = o3.Irreps("1x0e")
        for f in fields:
            features = features + irreps_in[f]
        self._init_irreps(irreps_in, {K.NODE_FEATURES: features, K.NODE_ATTRS: "1x0e"})
        self.fields = tuple(fields)

    def forward(self, data):
        n = data[K.POS].shape[0] if K.POS in data else data[self.fields[0]].shape[0]
        like = data[K.POS] if K.POS in data else data[self.fields[0]]
        ones = torch.ones(n, 1, dtype=like.dtype, device=like.device)
        feats = torch.cat([ones] + [data[f] for f in self.fields], dim=1)
        return {**data, K.NODE_FEATURES: feats, K.NODE_ATTRS: ones}
