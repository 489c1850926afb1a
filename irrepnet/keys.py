"""Field names of a batch of graphs, with their shapes.

A batch is a plain ``dict[str, torch.Tensor]``. Every key a layer, task or model
reads or writes is a constant here, so that a typo is a ``NameError`` and not a
silently missing field (the idea of nequip's ``AtomicDataDict``).

Each field also has a *kind* (node, edge, graph or global), used by code that must
move data around without knowing the model: batching, node permutation in the
equivariance audit, moving a batch to a device. Position-like fields (absolute
positions, which translate) are listed in :data:`POSITION_FIELDS`; everything else
that is a vector (velocities, displacements, edge vectors) is translation invariant.

Shapes/irreps
-------------
``n`` nodes over all graphs, ``E`` edges, ``G`` graphs, ``h`` history length.
"""

from __future__ import annotations

# --- node fields --------------------------------------------------------------
POS = "pos"  # (n, 3) float, 1o: absolute positions; translate with the frame
VEL = "vel"  # (n, 3) float, 1o: velocity (nbody) or last frame step x(t) - x(t-1)
VEL_HISTORY = "vel_history"  # (n, 3h) float, h x 1o: [x(t)-x(t-1), x(t-1)-x(t-2), ...], newest first
CHARGE = "charge"  # (n, 1) float, 0e: particle charge
NODE_INDEX = "node_index"  # (n,) long: position of the node in its own graph (bead index)
BATCH = "batch"  # (n,) long: graph id of each node, in [0, G)
NODE_FEATURES = "node_features"  # (n, irreps.dim): hidden features, irreps set by the layer that writes them
NODE_ATTRS = "node_attrs"  # (n, irreps.dim): fixed per-node attributes (e.g. 1x0e ones, charges)
TARGET_DISP = "target_disp"  # (n, 3) float, 1o: x(t+1) - x(t)
TARGET_POS = "target_pos"  # (n, 3) float, 1o: x(t+1); translates with the frame
SPECIES_ONEHOT = "species_onehot"  # (n, k) float, kx0e: one-hot of the element among the task's k species
TARGET_FORCES = "target_forces"  # (n, 3) float, 1o: true force on each atom (molecules: eV/Angstrom)

# --- edge fields --------------------------------------------------------------
# edge_index[0] is the sender j, edge_index[1] the receiver i; messages flow j -> i.
EDGE_INDEX = "edge_index"  # (2, E) long
EDGE_VEC = "edge_vec"  # (E, 3) float, 1o: pos[receiver] - pos[sender] = x_i - x_j
EDGE_LEN = "edge_len"  # (E,) float: |edge_vec|; irreps None (a bare vector, invariant)
EDGE_SH = "edge_sh"  # (E, sh.dim): spherical harmonics Y(edge_vec / |edge_vec|), l = 0..lmax
EDGE_EMBEDDING = "edge_embedding"  # (E, n_basis) 0e: radial basis of edge_len times a smooth cutoff
EDGE_PAIR = "edge_pair"  # (E,) long: the unordered pair {i, j} of each edge, in [0, P); symmetric graphs only
PAIR_EDGE = "pair_edge"  # (P,) long: one edge of each pair (functions of |x_i - x_j| need computing once per pair)
RECEIVER_SLOTS = "receiver_slots"  # (D,) long: present when each node receives exactly D edges (nn.graph_layer)
PAIR_EMBEDDING = "pair_embedding"  # (P, n_basis) 0e: edge_embedding per pair; edge_embedding = this[edge_pair]
#: (E, 3) float holding integers: the periodic image of the sender, in cell vectors; with it
#: edge_vec = pos[i] - (pos[j] + edge_cell_shift @ cell[g]) (absent or zero: no periodicity)
EDGE_CELL_SHIFT = "edge_cell_shift"

# --- graph fields -------------------------------------------------------------
NUM_NODES = "num_nodes"  # (G,) long: nodes per graph (graphs may be empty)
TARGET_ENERGY = "target_energy"  # (G, 1) float, 0e: true energy of each graph (molecules: eV)
#: (G, 1) float, 0e: the true value of a graph-level invariant property, one per graph
#: (qm9: the chosen target, e.g. HOMO in meV; irrepnet.data.qm9 lists the targets and units)
TARGET_PROPERTY = "target_property"

#: (G, 3, 3) float: each graph's lattice vectors a, b, c as rows (ASE's convention, Å); rotates
#: with the positions (three 1o rows); zero rows along directions that are not periodic
CELL = "cell"
PBC = "pbc"  # (G, 3) bool: whether each graph is periodic along a, b, c
TARGET_STRESS = "target_stress"  # (G, 3, 3) float: true stress of each periodic graph (eV/Å^3, ASE's sign)

# --- model outputs (shared by all heads) --------------------------------------
DISPLACEMENT = "displacement"  # (n, 3) 1o: predicted x(t+1) - x(t)
NEXT_POS = "next_pos"  # (n, 3) 1o: predicted x(t+1); translates with the frame
NODE_ENERGY = "node_energy"  # (n, 1) 0e
ENERGY = "energy"  # (G, 1) 0e: per-graph scalar
FORCES = "forces"  # (n, 3) 1o: -d energy / d pos, predicted
#: (G, 1) 0e: predicted graph-level invariant property (sum or mean of per-node 0e outputs; qm9)
PROPERTY = "property"
STRESS = "stress"  # (G, 3, 3): predicted stress = (1/V) dE/d(strain), periodic graphs only

NODE, EDGE, GRAPH = "node", "edge", "graph"

_FIELD_KINDS: dict[str, str] = {
    POS: NODE,
    VEL: NODE,
    VEL_HISTORY: NODE,
    CHARGE: NODE,
    NODE_INDEX: NODE,
    BATCH: NODE,
    NODE_FEATURES: NODE,
    NODE_ATTRS: NODE,
    TARGET_DISP: NODE,
    TARGET_POS: NODE,
    SPECIES_ONEHOT: NODE,
    TARGET_FORCES: NODE,
    DISPLACEMENT: NODE,
    FORCES: NODE,
    NEXT_POS: NODE,
    NODE_ENERGY: NODE,
    EDGE_INDEX: EDGE,
    EDGE_VEC: EDGE,
    EDGE_LEN: EDGE,
    EDGE_SH: EDGE,
    EDGE_EMBEDDING: EDGE,
    EDGE_CELL_SHIFT: EDGE,
    EDGE_PAIR: EDGE,  # PAIR_EDGE is not registered: its rows are pairs, built per batch, never collated
    NUM_NODES: GRAPH,
    CELL: GRAPH,
    PBC: GRAPH,
    TARGET_STRESS: GRAPH,
    STRESS: GRAPH,
    ENERGY: GRAPH,
    TARGET_ENERGY: GRAPH,
    PROPERTY: GRAPH,
    TARGET_PROPERTY: GRAPH,
}

POSITION_FIELDS = {POS, TARGET_POS, NEXT_POS}
#: Cartesian rank-2 tensors ``(G, 3, 3)`` (declared with irreps ``None``): a rotation or
#: reflection ``R`` acts on them as ``R T R^T``; the audit transforms them so
CARTESIAN_TENSOR_FIELDS = {STRESS, TARGET_STRESS}


def register_field(name: str, kind: str, *, is_position: bool = False) -> None:
    """Declare a new field so that batching and the audit know how to move it.

    Parameters
    ----------
    name : str
        the dict key.
    kind : str
        one of ``"node"`` (first dim is nodes), ``"edge"`` (first dim is edges, or
        second dim for ``edge_index``-like fields) or ``"graph"`` (first dim is graphs).
    is_position : bool
        ``True`` for absolute positions, which the audit translates.
    """
    if kind not in (NODE, EDGE, GRAPH):
        raise ValueError(f"field kind must be 'node', 'edge' or 'graph', got {kind!r} for field {name!r}")
    old = _FIELD_KINDS.get(name)
    if old is not None and old != kind:
        raise ValueError(f"field {name!r} is already registered as a {old} field; cannot re-register it as {kind}")
    _FIELD_KINDS[name] = kind
    if is_position:
        POSITION_FIELDS.add(name)


def field_kind(name: str) -> str:
    """Return ``"node"``, ``"edge"`` or ``"graph"`` for a registered field."""
    try:
        return _FIELD_KINDS[name]
    except KeyError:
        raise KeyError(
            f"unknown field {name!r}: register it with irrepnet.keys.register_field({name!r}, 'node'|'edge'|'graph')"
        ) from None


def is_registered(name: str) -> bool:
    """Whether ``name`` is a field known to :mod:`irrepnet.keys`."""
    return name in _FIELD_KINDS
