"""Periodic radius graphs against ASE's neighbour list, edge vectors with shifts, batching of cells."""

import numpy as np
import pytest
import torch

from irrepnet import keys as K
from irrepnet.batch import check_batch, collate, to
from irrepnet.graph import build_graph, edge_vectors, periodic_radius_graph, radius_graph
from irrepnet.graph._build import edge_pairs
from irrepnet.nn import GraphConstruction

ase = pytest.importorskip("ase")
from ase import Atoms  # noqa: E402
from ase.neighborlist import neighbor_list  # noqa: E402

BACKENDS = ["torch", "vesin"]


def needs(backend):
    if backend == "vesin":
        pytest.importorskip("vesin_torch", reason="vesin backend not installed")


def random_cell(rng, length=4.0, tilt=0.4):
    """A triclinic cell: rows near ``length`` times the identity, sheared by up to ``tilt`` of it."""
    return length * (np.eye(3) + rng.uniform(-tilt, tilt, (3, 3)))


def random_atoms(rng, n, cell, pbc, spread=(-0.5, 1.5)):
    """``n`` atoms at fractional coordinates in ``spread`` (outside the cell too: legal in ASE)."""
    full = np.array(cell, dtype=float)
    for k in range(3):
        if not pbc[k] and not full[k].any():  # an open axis with a zero row: span it anyway
            full[k] = 4.0 * np.eye(3)[k]
    frac = rng.uniform(*spread, (n, 3))
    return Atoms(f"H{n}", positions=frac @ full, cell=cell, pbc=pbc)


def ase_triples(atoms, r, offset=0):
    """``{(receiver, sender, S): D}`` from ASE: its i is our receiver, j our sender, S the same shift."""
    i, j, shift, d = neighbor_list("ijSD", atoms, r)
    return {(int(a) + offset, int(b) + offset, tuple(int(v) for v in s)): dv for a, b, s, dv in zip(i, j, shift, d)}


def batch_of(atoms_list):
    samples = [
        {
            K.POS: torch.tensor(a.positions),
            K.CELL: torch.tensor(a.cell.array)[None],
            K.PBC: torch.tensor(a.pbc)[None],
        }
        for a in atoms_list
    ]
    return collate(samples)


def triples(edge_index, shift):
    return list(zip(edge_index[1].tolist(), edge_index[0].tolist(), map(tuple, shift.long().tolist())))


def assert_matches_ase(atoms_list, r, backend):
    data = batch_of(atoms_list)
    ei, shift = periodic_radius_graph(
        data[K.POS], r, data[K.CELL], data[K.PBC], data[K.BATCH], data[K.NUM_NODES], backend=backend
    )
    ref, offset = {}, 0
    for a in atoms_list:
        ref.update(ase_triples(a, r, offset))
        offset += len(a)
    got = triples(ei, shift)
    assert len(got) == len(set(got)), "duplicate edges"
    assert got == sorted(got), "edges must be sorted by receiver, then sender, then shift"
    assert set(got) == set(ref)
    assert shift.dtype == data[K.POS].dtype and bool((shift == shift.round()).all())
    # edge_vec = x_i - (x_j + S C) is ASE's -D
    out = edge_vectors({**data, K.EDGE_INDEX: ei, K.EDGE_CELL_SHIFT: shift})
    want = torch.tensor(np.array([ref[t] for t in got])).reshape(-1, 3)
    torch.testing.assert_close(out[K.EDGE_VEC], -want, atol=1e-10, rtol=0)
    return ei, shift


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_triclinic_cells_match_ase(backend, seed):
    needs(backend)
    rng = np.random.default_rng(seed)
    atoms = random_atoms(rng, 40, random_cell(rng, 6.0), [True, True, True])
    assert_matches_ase([atoms], 3.5, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_small_cells_give_several_images_and_self_images(backend):
    needs(backend)
    rng = np.random.default_rng(3)
    small = random_atoms(rng, 3, random_cell(rng, 2.5), [True, True, True])
    one = random_atoms(rng, 1, random_cell(rng, 2.0, tilt=0.3), [True, True, True])
    ei, shift = assert_matches_ase([small, one], 5.0, backend)  # cutoff > 2x the cell: many images
    got = triples(ei, shift)
    assert any(i == j for i, j, _ in got), "a cell smaller than the cutoff has self images"
    pair_counts = {}
    for i, j, _ in got:
        pair_counts[(i, j)] = pair_counts.get((i, j), 0) + 1
    assert max(pair_counts.values()) > 5, "several images of one neighbour"


@pytest.mark.parametrize("backend", BACKENDS)
def test_slabs_wires_and_mixed_batches_match_ase(backend):
    needs(backend)
    rng = np.random.default_rng(4)
    slab_cell = random_cell(rng, 4.0)
    slab_cell[2] = 0.0  # ASE writes a slab's open axis as a zero row
    graphs = [
        random_atoms(rng, 12, slab_cell, [True, True, False]),
        random_atoms(rng, 15, np.zeros((3, 3)), [False, False, False]),  # a molecule in the batch
        random_atoms(rng, 10, random_cell(rng, 3.0), [False, True, False]),  # a wire along b
        random_atoms(rng, 20, random_cell(rng, 5.0), [True, True, True]),
        random_atoms(rng, 8, random_cell(rng, 4.0), [True, False, True]),
    ]
    assert_matches_ase(graphs, 3.0, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_open_graphs_of_a_mixed_batch_keep_their_plain_edges(backend):
    needs(backend)
    rng = np.random.default_rng(5)
    molecule = random_atoms(rng, 30, np.zeros((3, 3)), [False] * 3)
    crystal = random_atoms(rng, 20, random_cell(rng, 5.0), [True] * 3)
    data = batch_of([molecule, crystal])
    ei, shift = periodic_radius_graph(data[K.POS], 2.5, data[K.CELL], data[K.PBC], data[K.BATCH], backend=backend)
    alone = radius_graph(data[K.POS][:30], 2.5, backend=backend)
    mine = ei[1] < 30
    assert torch.equal(ei[:, mine], alone) and not shift[mine].any()
    # pbc all false: exactly radius_graph, every shift 0
    closed = torch.zeros(2, 3, dtype=torch.bool)
    ei0, shift0 = periodic_radius_graph(data[K.POS], 2.5, data[K.CELL], closed, data[K.BATCH], backend=backend)
    assert torch.equal(ei0, radius_graph(data[K.POS], 2.5, data[K.BATCH], backend=backend)) and not shift0.any()


def test_backends_agree_tensor_for_tensor_and_wrapping_only_moves_shifts():
    needs("vesin")
    rng = np.random.default_rng(6)
    atoms = random_atoms(rng, 25, random_cell(rng, 5.0), [True, True, True], spread=(0.0, 1.0))
    data = batch_of([atoms])
    args = (data[K.POS], 4.0, data[K.CELL], data[K.PBC])
    ei, shift = periodic_radius_graph(*args, backend="torch")
    ei_v, shift_v = periodic_radius_graph(*args, backend="vesin")
    assert torch.equal(ei, ei_v) and torch.equal(shift, shift_v)
    # move atom 0 by -2 a + 3 c: same edges, its shifts change by the lattice translation
    moved = data[K.POS].clone()
    move = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    moved[0] += move @ data[K.CELL][0]
    ei_m, shift_m = periodic_radius_graph(moved, 4.0, data[K.CELL], data[K.PBC])
    expected = shift.clone()
    expected[ei[1] == 0] += move
    expected[ei[0] == 0] -= move
    got = dict(zip(triples(ei_m, shift_m), range(len(shift_m))))
    assert set(got) == set(triples(ei, expected))


def test_max_num_neighbors_and_loops_under_pbc():
    rng = np.random.default_rng(7)
    atoms = random_atoms(rng, 4, random_cell(rng, 2.5), [True] * 3)
    data = batch_of([atoms])
    args = (data[K.POS], 4.0, data[K.CELL], data[K.PBC])
    ei, shift = periodic_radius_graph(*args)
    length = edge_vectors({**data, K.EDGE_INDEX: ei, K.EDGE_CELL_SHIFT: shift})[K.EDGE_LEN]
    ei3, shift3 = periodic_radius_graph(*args, max_num_neighbors=3)
    assert torch.equal(torch.bincount(ei3[1]), torch.full((4,), 3))
    for i in range(4):
        nearest = torch.sort(length[ei[1] == i]).values[:3]
        kept = edge_vectors({**data, K.EDGE_INDEX: ei3, K.EDGE_CELL_SHIFT: shift3})[K.EDGE_LEN][ei3[1] == i]
        torch.testing.assert_close(torch.sort(kept).values, nearest)
    eil, shiftl = periodic_radius_graph(*args, loop=True)
    loops = (eil[0] == eil[1]) & (shiftl == 0).all(1)
    assert int(loops.sum()) == 4 and eil.shape[1] == ei.shape[1] + 4


def test_refusals():
    pos, cell, pbc = torch.rand(5, 3), torch.eye(3)[None] * 3, torch.ones(1, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="torch_cluster' has no periodic"):
        periodic_radius_graph(pos, 1.0, cell, pbc, backend="torch_cluster")
    data = {K.POS: pos, K.CELL: cell, K.PBC: pbc}
    for kind, opts in (("full", {}), ("knn", {"k": 2})):
        with pytest.raises(ValueError, match="use a radius graph"):
            build_graph(data, kind, **opts)
        with pytest.raises(ValueError, match="use kind='radius'"):
            GraphConstruction(kind, **opts)(data)
    with pytest.raises(ValueError, match="linearly dependent"):
        periodic_radius_graph(pos, 1.0, torch.zeros(1, 3, 3), pbc)
    with pytest.raises(ValueError, match="no 'pbc'"):
        build_graph({K.POS: pos, K.CELL: cell}, "radius", r=1.0)


def test_edge_lengths_are_differentiable_in_pos_and_cell():
    rng = np.random.default_rng(8)
    atoms = random_atoms(rng, 5, random_cell(rng, 3.0), [True, True, False])
    data = batch_of([atoms])
    ei, shift = periodic_radius_graph(data[K.POS], 3.5, data[K.CELL], data[K.PBC])
    assert bool((shift != 0).any())

    def total_length(pos, cell):  # the topology fixed: a smooth function of pos and cell
        fields = {**data, K.POS: pos, K.CELL: cell, K.EDGE_INDEX: ei, K.EDGE_CELL_SHIFT: shift}
        return edge_vectors(fields)[K.EDGE_LEN].sum()

    pos, cell = data[K.POS].clone().requires_grad_(True), data[K.CELL].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(total_length, (pos, cell), eps=1e-6, atol=1e-7)
    grad_cell = torch.autograd.grad(total_length(pos, cell), cell)[0]
    assert float(grad_cell.abs().max()) > 0.1  # the cell really enters the lengths


def test_edge_pairs_under_shifts():
    rng = np.random.default_rng(9)
    atoms = random_atoms(rng, 3, random_cell(rng, 2.5), [True] * 3)
    data = batch_of([atoms])
    ei, shift = periodic_radius_graph(data[K.POS], 4.0, data[K.CELL], data[K.PBC])
    edge_pair, pair_edge = edge_pairs(ei, 3, shift)
    assert pair_edge.numel() * 2 == ei.shape[1]  # no self loops: every pair has two edges
    got = triples(ei, shift)
    for e, p in enumerate(edge_pair.tolist()):
        i, j, s = got[e]
        partner = (j, i, tuple(-v for v in s))
        rep = got[int(pair_edge[p])]
        assert rep in (got[e], partner)
    # the layer: pair fields give every edge its own length back
    layer = GraphConstruction("radius", r=4.0, pairs=True)
    out = layer(data)
    torch.testing.assert_close(out[K.EDGE_LEN][out[K.PAIR_EDGE]][out[K.EDGE_PAIR]], out[K.EDGE_LEN])
    assert torch.equal(out[K.EDGE_CELL_SHIFT], shift)


def test_graph_layer_writes_shifts_as_topology_and_drops_stale_ones():
    rng = np.random.default_rng(10)
    crystal = random_atoms(rng, 6, random_cell(rng, 3.0), [True] * 3)
    data = batch_of([crystal])
    layer = GraphConstruction("radius", r=3.0)
    prepared = layer.topology(data)
    assert layer.topology_field + K.EDGE_CELL_SHIFT in prepared
    out = layer(prepared)
    ei, shift = periodic_radius_graph(data[K.POS], 3.0, data[K.CELL], data[K.PBC])
    assert torch.equal(out[K.EDGE_INDEX], ei) and torch.equal(out[K.EDGE_CELL_SHIFT], shift)
    # an open batch carrying a stale shift field gets plain edge vectors
    open_data = {K.POS: data[K.POS], K.EDGE_CELL_SHIFT: torch.ones(3, 3), K.CELL: data[K.CELL]}
    open_data[K.PBC] = torch.zeros(1, 3, dtype=torch.bool)
    out = layer(open_data)
    plain = radius_graph(data[K.POS], 3.0)
    assert torch.equal(out[K.EDGE_INDEX], plain) and K.EDGE_CELL_SHIFT not in out
    torch.testing.assert_close(out[K.EDGE_VEC], data[K.POS][plain[1]] - data[K.POS][plain[0]], rtol=0, atol=0)


def test_cells_batch_and_move_like_graph_fields():
    rng = np.random.default_rng(11)
    graphs = [random_atoms(rng, n, random_cell(rng), pbc) for n, pbc in ((3, [True] * 3), (2, [True, True, False]))]
    data = batch_of(graphs)
    assert data[K.CELL].shape == (2, 3, 3) and data[K.PBC].shape == (2, 3) and data[K.PBC].dtype == torch.bool
    check_batch(data)
    moved = to(data, dtype=torch.float32)
    assert moved[K.CELL].dtype == torch.float32 and moved[K.PBC].dtype == torch.bool
    assert torch.equal(moved[K.PBC], data[K.PBC])


def test_models_that_read_positions_directly_refuse_periodic_input():
    from irrepnet.registry import build_model
    from irrepnet.tasks import task_spec

    rng = np.random.default_rng(12)
    data = batch_of([random_atoms(rng, 4, random_cell(rng, 3.0), [True] * 3)])
    data[K.SPECIES_ONEHOT] = torch.ones(4, 1, dtype=torch.float64)
    task = task_spec("molecules", species=["Cu"])
    with pytest.raises(ValueError, match="use graph='irrepnet'"):
        build_model("e3nn-reference", task, graph="e3nn", max_radius=2.0)(data)
    with pytest.raises(ValueError, match="set center_positions=False"):
        build_model("segnn", task, center_positions=True, graph="radius", radius=2.0)(data)
    # a periodic task's graph="auto" is a radius graph even for small cells
    from irrepnet.nn.graph_layer import auto_graph_kind

    assert auto_graph_kind("auto", 4, periodic=True) == "radius" and auto_graph_kind("auto", 4) == "full"


def test_check_batch_refuses_malformed_cells():
    rng = np.random.default_rng(13)
    data = batch_of(
        [random_atoms(rng, 3, random_cell(rng), [True] * 3), random_atoms(rng, 2, random_cell(rng), [True] * 3)]
    )
    with pytest.raises(ValueError, match=r"'cell' must be a float tensor of shape \(2, 3, 3\)"):
        check_batch({**data, K.CELL: data[K.CELL][0]})
    with pytest.raises(ValueError, match=r"'pbc' must be a bool tensor of shape \(2, 3\)"):
        check_batch({**data, K.PBC: data[K.PBC].long()})


@pytest.mark.parametrize("dense", [True, False])
def test_query_pairs_of_the_cell_list_against_brute_force(dense):
    from irrepnet.graph._cell_list import radius_query_pairs

    g = torch.Generator().manual_seed(14)
    sizes = [50, 0, 80, 1, 30]
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pos = torch.rand(len(batch), 3, generator=g, dtype=torch.float64) * 3.0
    pos[batch == 2] += 1e6  # a far graph: the sparse layout's compression
    queries = 60  # graph 0 and part of graph 2 ask; the rest are only found
    p, q = radius_query_pairs(pos, 0.8, batch, len(sizes), queries, dense=dense)
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    want = (d2 < 0.64) & (batch[:, None] == batch[None]) & ~torch.eye(len(batch), dtype=torch.bool)
    want[queries:] = False
    got = torch.zeros_like(want)
    got[p, q] = True
    assert p.numel() == int(want.sum()) and torch.equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cutoff_is_strict_across_the_boundary(backend):
    needs(backend)
    # a simple cubic lattice of spacing 1 in a 3x3x3 periodic box: every neighbour (many of
    # them images) sits at exactly 1, sqrt(2), ...; integer coordinates make those exact
    grid = torch.stack(torch.meshgrid(*[torch.arange(3.0, dtype=torch.float64)] * 3, indexing="ij"), -1).reshape(-1, 3)
    cell, pbc = 3.0 * torch.eye(3, dtype=torch.float64)[None], torch.ones(1, 3, dtype=torch.bool)
    for r, degree in ((1.0, 0), (1.0 + 1e-9, 6), (2**0.5 + 1e-9, 18), (1.5, 18)):
        ei, shift = periodic_radius_graph(grid - 0.5, r, cell, pbc, backend=backend)  # half outside the box
        assert torch.equal(torch.bincount(ei[1], minlength=27), torch.full((27,), degree))


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_positions_and_cells(backend):
    needs(backend)
    rng = np.random.default_rng(15)
    atoms = random_atoms(rng, 30, random_cell(rng, 4.0), [True, True, False])
    data = batch_of([atoms])
    pos, cell = data[K.POS].float(), data[K.CELL].float()
    ei, shift = periodic_radius_graph(pos, 3.0, cell, data[K.PBC], backend=backend)
    assert shift.dtype == torch.float32
    ref = ase_triples(atoms, 3.0)
    got = triples(ei, shift)
    assert set(got) == set(ref)  # no pair of this draw lies within float32 rounding of the cutoff
    vec = edge_vectors({K.POS: pos, K.CELL: cell, K.EDGE_INDEX: ei, K.EDGE_CELL_SHIFT: shift})[K.EDGE_VEC]
    want = -torch.tensor(np.array([ref[t] for t in got]), dtype=torch.float32)
    torch.testing.assert_close(vec, want, atol=1e-5, rtol=0)


def test_vesin_open_graphs_of_a_periodic_batch_keep_the_flat_input_guard():
    needs("vesin")
    # an open flat set wider than ~316 x 316 cutoffs would crash vesin 0.6 (SIGFPE): refused instead
    flat = torch.tensor([[0.0, 0, 0], [400, 0, 0], [0, 400, 0], [0.5, 0, 0]], dtype=torch.float64)
    pos = torch.cat([flat, torch.rand(3, 3, dtype=torch.float64)])
    cell = torch.stack([torch.zeros(3, 3), 2.0 * torch.eye(3)]).double()
    pbc = torch.tensor([[False] * 3, [True] * 3])
    args = (pos, 1.0, cell, pbc, None, torch.tensor([4, 3]))
    with pytest.raises(ValueError, match="vesin cannot handle this input"):
        periodic_radius_graph(*args, backend="vesin")
    ei, _ = periodic_radius_graph(*args, backend="torch")
    assert ei[:, ei[1] < 4].tolist() == [[3, 0], [0, 3]]


def test_shifts_without_a_cell_are_refused():
    ei = torch.tensor([[0], [1]])
    with pytest.raises(KeyError, match="no 'cell' to shift by"):
        edge_vectors({K.POS: torch.rand(2, 3), K.EDGE_INDEX: ei, K.EDGE_CELL_SHIFT: torch.ones(1, 3)})
