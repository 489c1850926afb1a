"""Equivariant output heads, shared by every family.

- :class:`VectorHead`: an equivariant linear map (e3nn ``o3.Linear``) from node
  features to one ``1o`` vector per node, e.g. the displacement or the next position
  (then added to the input position, so it translates with the frame).
- :class:`ScalarHead`: a ``0e`` scalar per node, optionally summed per graph (energy).

Only the ``0e`` and ``1o`` parts of the features can reach the outputs: an
equivariant linear map cannot mix different irreps, which is why parity matters.

Shapes/irreps
-------------
``node_features (n, I.dim)`` -> ``displacement``/``next_pos (n, 3)`` ``1o``,
``node_energy (n, 1)`` ``0e`` or ``energy (G, 1)`` ``0e``.
"""

from __future__ import annotations

from e3nn import o3

from .. import keys as K
from ..interface import IrrepsModule
from ..scatter import segment_sum


class VectorHead(IrrepsModule):
    """One ``1o`` vector per node from ``node_features``.

    Parameters
    ----------
    irreps_features : Irreps
        irreps of ``node_features``; must contain ``1o``.
    out_field : str
        ``"displacement"`` or ``"next_pos"`` (then ``pos`` is added).
    """

    def __init__(self, irreps_features, out_field: str = K.DISPLACEMENT):
        irreps_features = o3.Irreps(irreps_features)
        if not any(ir == o3.Irrep("1o") for _, ir in irreps_features):
            raise ValueError(
                f"VectorHead needs 1o features to predict a vector, got {irreps_features}; "
                "add 1o channels to the last layer (a 1e pseudovector cannot be a displacement)"
            )
        irreps_in = {K.NODE_FEATURES: irreps_features}
        if out_field == K.NEXT_POS:
            irreps_in[K.POS] = o3.Irreps("1o")
        super().__init__(irreps_in, {out_field: "1o"})
        self.linear = o3.Linear(irreps_features, "1x1o")
        self.out_field = out_field

    def forward(self, data):
        v = self.linear(data[K.NODE_FEATURES])
        if self.out_field == K.NEXT_POS:
            v = data[K.POS] + v
        return {**data, self.out_field: v}


class ScalarHead(IrrepsModule):
    """A ``0e`` scalar per node (``node_energy``) or per graph (``energy``, summed)."""

    def __init__(self, irreps_features, per_graph: bool = True):
        irreps_features = o3.Irreps(irreps_features)
        if not any(ir == o3.Irrep("0e") for _, ir in irreps_features):
            raise ValueError(f"ScalarHead needs 0e features, got {irreps_features}")
        out = K.ENERGY if per_graph else K.NODE_ENERGY
        super().__init__({K.NODE_FEATURES: irreps_features}, {out: "0e"})
        self.linear = o3.Linear(irreps_features, "1x0e")
        self.per_graph = per_graph

    def forward(self, data):
        e = self.linear(data[K.NODE_FEATURES])
        if not self.per_graph:
            return {**data, K.NODE_ENERGY: e}
        return {**data, K.ENERGY: segment_sum(e, data[K.BATCH], data[K.NUM_NODES].numel())}
