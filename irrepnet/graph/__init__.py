"""Graph construction: full, radius and kNN graphs over a batch, and edge vectors.

All builders follow the batch convention of :mod:`irrepnet.keys`: ``edge_index``
row 0 is the sender ``j``, row 1 the receiver ``i``; no edge joins two graphs; the
edges come in canonical order (by receiver, then sender) whatever the backend, so a
graph is reproducible and backends can be compared tensor for tensor.

Radius and kNN searches have interchangeable backends: pure PyTorch (always there,
any device), torch-cluster and vesin (compiled, optional). :func:`available_backends`
says which are installed here.

Periodic cells: :func:`periodic_radius_graph` also returns each edge's integer cell
shift (``edge_cell_shift``), and :func:`edge_vectors` and :func:`build_graph` include
it when the batch holds ``cell`` and ``pbc``; full and kNN graphs are not periodic.

Shapes
------
``pos (n, 3)``, ``batch (n,)``, ``num_nodes (G,)`` -> ``edge_index (2, E)``;
:func:`edge_vectors` adds ``edge_vec (E, 3)`` and ``edge_len (E,)``.
"""

from ._api import knn_graph, radius_graph  # noqa: F401
from ._build import build_graph, edge_vectors  # noqa: F401
from ._common import KNN_BACKENDS, RADIUS_BACKENDS, available
from ._dense import full_graph  # noqa: F401
from ._periodic import periodic_radius_graph  # noqa: F401


def available_backends() -> dict[str, tuple[str, ...]]:
    """Installed backends per search: ``{"radius": (...), "knn": (...)}``, ``"torch"`` first."""
    return {
        "radius": tuple(b for b in RADIUS_BACKENDS if b != "auto" and available(b)),
        "knn": tuple(b for b in KNN_BACKENDS if b != "auto" and available(b)),
    }


__all__ = [
    "full_graph",
    "radius_graph",
    "periodic_radius_graph",
    "knn_graph",
    "edge_vectors",
    "build_graph",
    "available_backends",
]
