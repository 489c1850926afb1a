"""Graph construction as a layer, so that a model owns its graph.

Building the graph inside the model means the audit transforms only node fields and
the graph is rebuilt from the transformed positions, which is what happens at
inference. It is built once per batch and every later layer reuses it.

Shapes/irreps
-------------
reads ``pos 1o (n, 3)``, ``batch (n,)``, ``num_nodes (G,)``;
writes ``edge_index (2, E)``, ``edge_vec 1o (E, 3)``, ``edge_len (E,)``.
"""

from __future__ import annotations

from typing import Optional

from .. import keys as K
from ..batch import ensure_batch
from ..graph import build_graph
from ..interface import IrrepsModule


class GraphConstruction(IrrepsModule):
    """Full, radius or kNN graph over each graph of the batch.

    Parameters
    ----------
    kind : {"full", "radius", "knn"}
    r : float, optional
        cutoff radius for ``kind="radius"``.
    k : int, optional
        neighbours per node for ``kind="knn"``.
    backend : str
        neighbour-search backend (see :mod:`irrepnet.graph`).
    """

    def __init__(self, kind: str = "full", r: Optional[float] = None, k: Optional[int] = None, backend: str = "auto"):
        super().__init__({K.POS: "1o"}, {K.EDGE_INDEX: None, K.EDGE_VEC: "1o", K.EDGE_LEN: None})
        if kind not in ("full", "radius", "knn"):
            raise ValueError(f"unknown graph kind {kind!r}; choose 'full', 'radius' or 'knn'")
        if kind == "radius" and (r is None or r <= 0):
            raise ValueError(f"a radius graph needs r > 0, got r={r}")
        if kind == "knn" and (k is None or k < 1):
            raise ValueError(f"a kNN graph needs k >= 1, got k={k}")
        self.kind, self.r, self.k, self.backend = kind, r, k, backend

    def forward(self, data):
        kwargs = {"r": self.r} if self.kind == "radius" else {"k": self.k} if self.kind == "knn" else {}
        backend = {} if self.kind == "full" else {"backend": self.backend}
        return build_graph(ensure_batch(data), self.kind, **kwargs, **backend)

    def extra_repr(self) -> str:
        extra = f", r={self.r}" if self.kind == "radius" else f", k={self.k}" if self.kind == "knn" else ""
        return f"kind={self.kind!r}{extra}, {super().extra_repr()}"
