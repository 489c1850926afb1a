import math

import numpy as np
import pytest
import torch

from irrepnet import keys as K
from irrepnet.batch import collate
from irrepnet.graph import (
    _cell_list,
    _common,
    available_backends,
    build_graph,
    edge_vectors,
    full_graph,
    knn_graph,
    radius_graph,
)

RADIUS = ["torch", "torch_cluster", "vesin"]
KNN = ["torch", "torch_cluster"]
MODULE = {"torch_cluster": "torch_cluster", "vesin": "vesin_torch"}


def needs(backend):
    if backend != "torch":
        pytest.importorskip(MODULE[backend], reason=f"{backend} backend not installed")


def batch_of(sizes, scale=3.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    num_nodes = torch.tensor(sizes, dtype=torch.long)
    pos = torch.rand(int(num_nodes.sum()), 3, generator=g, dtype=dtype) * scale - scale / 2
    batch = torch.repeat_interleave(torch.arange(len(sizes)), num_nodes)
    return pos, batch, num_nodes


def ref_radius(pos, r, batch, loop=False):
    """Dense numpy reference, canonical order (np.nonzero is receiver-major)."""
    p, b = pos.double().numpy(), batch.numpy()
    d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    adj = (d2 < r * r) & (b[:, None] == b[None, :])
    np.fill_diagonal(adj, loop)
    recv, send = np.nonzero(adj)
    return torch.from_numpy(np.stack([send, recv])).long()


def ref_knn(pos, k, batch):
    p, b = pos.double().numpy(), batch.numpy()
    d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    d2[b[:, None] != b[None, :]] = np.inf
    np.fill_diagonal(d2, np.inf)
    edges = set()
    for i in range(len(p)):
        for j in np.argsort(d2[i], kind="stable")[:k]:
            if np.isfinite(d2[i, j]):
                edges.add((int(j), i))
    return edges


def as_set(edge_index):
    return set(zip(*edge_index.tolist()))


def assert_canonical(edge_index, n):
    assert edge_index.dtype == torch.long and edge_index.shape[0] == 2
    key = edge_index[1] * max(n, 1) + edge_index[0]
    assert bool((key[1:] > key[:-1]).all()), "edges must be sorted by receiver, then sender, without duplicates"


CASES = {
    "many_graphs": ([7, 0, 12, 1, 30, 0, 5, 19, 2], 3.0),
    "empty_in_middle": ([5, 0, 0, 9], 2.0),
    "single_node": ([1], 1.0),
    "one_graph": ([300], 6.0),
}


@pytest.mark.parametrize("backend", RADIUS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_radius_matches_brute_force(backend, name):
    needs(backend)
    sizes, scale = CASES[name]
    pos, batch, num_nodes = batch_of(sizes, scale)
    for r in (0.4, 1.0):
        ei = radius_graph(pos, r, batch, num_nodes, backend=backend)
        assert torch.equal(ei, ref_radius(pos, r, batch))
        assert_canonical(ei, pos.shape[0])


@pytest.mark.parametrize("backend", RADIUS)
def test_radius_special_layouts(backend):
    needs(backend)
    empty = radius_graph(torch.zeros(0, 3), 1.0, num_nodes=torch.tensor([0, 0]), backend=backend)
    assert empty.shape == (2, 0) and empty.dtype == torch.long
    # coincident points are neighbours at distance 0
    pos = torch.tensor([[0.0, 0, 0], [0, 0, 0], [0, 0, 0], [0.5, 0, 0], [3, 3, 3]])
    assert as_set(radius_graph(pos, 1.0, backend=backend)) == as_set(ref_radius(pos, 1.0, torch.zeros(5).long()))
    # 2-D points (z = 0) and nodes of graphs interleaved in the batch
    pos2, batch, _ = batch_of([40, 40], 2.0, seed=3)
    pos2[:, 2] = 0
    shuffled = batch[torch.randperm(80, generator=torch.Generator().manual_seed(1))]
    assert torch.equal(radius_graph(pos2, 0.5, shuffled, backend=backend), ref_radius(pos2, 0.5, shuffled))
    # far apart graphs (float64): 1e12 and -1e9
    far, batch, _ = batch_of([30, 30, 30], 2.0, seed=4)
    far[30:60] += 1e12
    far[60:] -= 1e9
    assert torch.equal(radius_graph(far, 0.7, batch, backend=backend), ref_radius(far, 0.7, batch))


@pytest.mark.parametrize("backend", RADIUS)
def test_radius_cutoff_is_strict_on_a_lattice(backend):
    needs(backend)
    # integer lattice with negative coordinates: many points sit exactly on cell
    # boundaries and many pairs exactly at distance 1 and sqrt(2)
    grid = torch.stack(torch.meshgrid(*[torch.arange(-3.0, 3.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    batch = torch.zeros(len(grid), dtype=torch.long)
    for r, per_inner_node in ((1.0, 0), (1.0 + 1e-6, 6), (math.sqrt(2) + 1e-6, 18)):
        ei = radius_graph(grid, r, backend=backend)
        assert torch.equal(ei, ref_radius(grid, r, batch))
        degree = torch.bincount(ei[1], minlength=len(grid))
        assert int(degree.max()) == per_inner_node


def test_points_exactly_on_cell_boundaries():
    # spacing = the cell side, so every point sits on a cell corner; with negative
    # coordinates and pairs at one and two cell sides (r / 2 and just above r)
    r = 1.0
    side = r * (1 + _common.SEARCH_MARGIN) / _cell_list.CELLS_PER_CUTOFF
    axis = torch.arange(-4, 4, dtype=torch.float64) * side
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    batch = torch.zeros(len(grid), dtype=torch.long)
    for dense in (True, False):
        a, b = _cell_list.radius_pairs(grid, r, batch, 1, dense=dense)
        assert torch.equal(_common.canonical_edges(a, b, len(grid), symmetric=True), ref_radius(grid, r, batch))


@pytest.mark.parametrize("backend", RADIUS)
def test_radius_large_random_against_kdtree(backend):
    needs(backend)
    spatial = pytest.importorskip("scipy.spatial", reason="scipy is used as the reference")
    g = torch.Generator().manual_seed(5)
    pos = (torch.rand(5000, 3, generator=g, dtype=torch.float64) - 0.5) * 20
    pairs = spatial.cKDTree(pos.numpy()).query_pairs(1.0, output_type="ndarray")
    expected = set(map(tuple, pairs.tolist())) | set(map(tuple, pairs[:, ::-1].tolist()))
    ei = radius_graph(pos, 1.0, backend=backend)
    assert as_set(ei) == expected
    assert_canonical(ei, 5000)


def test_backends_return_identical_tensors():
    pos, batch, num_nodes = batch_of([200, 0, 3000, 17, 1], 12.0, seed=7, dtype=torch.float32)
    results = {b: radius_graph(pos, 1.0, batch, num_nodes, backend=b) for b in available_backends()["radius"]}
    for name, ei in results.items():
        assert torch.equal(ei, results["torch"]), name


@pytest.mark.parametrize("dense", [None, False])
def test_cell_list_on_huge_coordinates(dense):
    # far clusters, one at 1e12 (float64): a dense grid or plain linear cell keys
    # would overflow; the default must pick the compressed (sparse) keys by itself
    pos, batch, num_nodes = batch_of([150, 150, 60], 3.0, seed=2)
    pos[150:300] += 1e12
    pos[300:] -= 1e9
    pos[300:, 2] *= 1e6  # a graph stretched along z: a sparse grid
    a, b = _cell_list.radius_pairs(pos, 0.7, batch, 3, dense=dense)
    got = _common.canonical_edges(a, b, pos.shape[0], symmetric=True)
    assert torch.equal(got, ref_radius(pos, 0.7, batch))
    assert torch.equal(radius_graph(pos, 0.7, batch), got)


def test_vesin_refuses_inputs_that_would_crash_it():
    pytest.importorskip("vesin_torch", reason="vesin-torch not installed")
    # vesin 0.6 divides by zero (SIGFPE) on flat sets wider than ~316 x 316 cutoffs
    flat = torch.tensor([[0.0, 0, 0], [400, 0, 0], [0, 400, 0], [0.5, 0, 0]])
    with pytest.raises(ValueError, match="vesin cannot handle this input"):
        radius_graph(flat, 1.0, backend="vesin")
    assert radius_graph(flat, 1.0).tolist() == [[3, 0], [0, 3]]
    # the cutoff is scaled away: vesin alone refuses cutoffs below 1e-6
    tiny = torch.tensor([[0.0, 0, 0], [1e-8, 0, 0], [3e-7, 0, 0]], dtype=torch.float64)
    assert torch.equal(radius_graph(tiny, 1e-7, backend="vesin"), radius_graph(tiny, 1e-7, backend="torch"))


def test_half_precision_positions_are_compared_in_float32():
    pos, batch, _ = batch_of([50, 50], 2.0, seed=6, dtype=torch.float16)
    ei = radius_graph(pos, 0.6, batch)
    assert ei.device == pos.device and torch.equal(ei, radius_graph(pos.float(), 0.6, batch))


def test_cell_list_result_does_not_depend_on_chunking(monkeypatch):
    pos, batch, num_nodes = batch_of([300, 0, 200], 4.0, seed=11)
    expected = ref_radius(pos, 0.9, batch)
    for chunk in (1, 37, 1000):
        monkeypatch.setattr(_cell_list, "CHUNK", chunk)
        assert torch.equal(radius_graph(pos, 0.9, batch, num_nodes, backend="torch"), expected)


def test_chunks_run_in_threads_and_torch_threads_are_restored(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    pos, batch, _ = batch_of([400, 300], 4.0, seed=12)
    expected = ref_radius(pos, 0.9, batch)
    monkeypatch.setattr(_cell_list, "CHUNK", 100)  # many chunks
    before = torch.get_num_threads()
    with ThreadPoolExecutor(3) as pool:  # concurrent calls share the thread-count switch
        runs = list(pool.map(lambda _: radius_graph(pos, 0.9, batch, backend="torch"), range(3)))
    assert all(torch.equal(run, expected) for run in runs)
    assert torch.get_num_threads() == before


def test_sparse_lookup_matches_dense_on_ordinary_input():
    pos, batch, _ = batch_of([400, 30, 250], 5.0, seed=4)
    runs = [
        _common.canonical_edges(*_cell_list.radius_pairs(pos, 0.8, batch, 3, dense=d), 680, symmetric=True)
        for d in (True, False)
    ]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], ref_radius(pos, 0.8, batch))


def test_stencil_covers_exactly_the_reachable_cells():
    for m in (1, 2, 3):
        cols = {(dx, dy): h for dx, dy, h in _cell_list.stencil(m)}
        for dx in range(-m - 1, m + 2):
            for dy in range(-m - 1, m + 2):
                for dz in range(-m - 1, m + 2):
                    gap = sum(max(abs(d) - 1, 0) ** 2 for d in (dx, dy, dz))
                    forward = (dx, dy) if (dx, dy) > (0, 0) else (-dx, -dy)
                    covered = (dx, dy) == (0, 0) and abs(dz) <= m or abs(dz) <= cols.get(forward, -1)
                    assert covered == (gap < m * m), (m, dx, dy, dz)


def test_radius_options_loop_and_max_neighbors():
    pos, batch, num_nodes = batch_of([60, 0, 40], 2.0, seed=8)
    full = radius_graph(pos, 1.0, batch, num_nodes)
    looped = radius_graph(pos, 1.0, batch, num_nodes, loop=True)
    assert torch.equal(looped, ref_radius(pos, 1.0, batch, loop=True))
    assert torch.equal(radius_graph(pos, 1.0, batch, num_nodes, max_num_neighbors=0), full[:, :0])
    assert torch.equal(radius_graph(pos, 1.0, batch, num_nodes, max_num_neighbors=1000), full)
    limited = radius_graph(pos, 1.0, batch, num_nodes, max_num_neighbors=3)
    assert_canonical(limited, 100)
    d = (pos[:, None] - pos[None]).norm(dim=-1)
    for i in range(100):
        senders = full[0, full[1] == i]
        nearest = senders[torch.argsort(d[i, senders], stable=True)[:3]]
        assert sorted(limited[0, limited[1] == i].tolist()) == sorted(nearest.tolist())


@pytest.mark.parametrize("backend", KNN)
def test_knn_matches_brute_force(backend):
    needs(backend)
    pos, batch, num_nodes = batch_of([12, 0, 3, 1, 40, 5, 0], 2.0, seed=9)
    for k in (1, 4, 20):
        ei = knn_graph(pos, k, batch, num_nodes, backend=backend)
        assert as_set(ei) == ref_knn(pos, k, batch)
        assert_canonical(ei, pos.shape[0])
    shuffled = batch[torch.randperm(len(batch), generator=torch.Generator().manual_seed(0))]
    assert as_set(knn_graph(pos, 3, shuffled, backend=backend)) == ref_knn(pos, 3, shuffled)
    assert knn_graph(torch.zeros(0, 3), 3, backend=backend).shape == (2, 0)


def test_knn_backends_agree_and_ties_go_to_lower_index():
    pos, batch, num_nodes = batch_of([500, 30, 2, 700], 4.0, seed=10)
    runs = [knn_graph(pos, 6, batch, num_nodes, backend=b) for b in available_backends()["knn"]]
    assert all(torch.equal(run, runs[0]) for run in runs)
    square = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]])
    ei = knn_graph(square, 2, backend="torch")
    assert ei[0, ei[1] == 0].tolist() == [1, 2]
    looped = knn_graph(square, 2, backend="torch", loop=True)
    assert looped[0, looped[1] == 0].tolist() == [0, 1]


def test_full_graph():
    ei = full_graph(torch.tensor([3, 0, 2]))
    assert ei.tolist() == [[1, 2, 0, 2, 0, 1, 4, 3], [0, 0, 1, 1, 2, 2, 3, 4]]
    sizes = [12] * 32
    pos, batch, num_nodes = batch_of(sizes)
    ei = full_graph(num_nodes)
    assert ei.shape == (2, 32 * 12 * 11) and torch.equal(ei, ref_radius(pos, 1e9, batch))
    shuffled = batch[torch.randperm(len(batch))]
    assert torch.equal(full_graph(num_nodes, shuffled, loop=True), ref_radius(pos, 1e9, shuffled, loop=True))
    assert full_graph(0).shape == (2, 0) and full_graph(1).shape == (2, 0)


def test_edge_vectors_and_their_gradient():
    pos = torch.tensor([[0.0, 0, 0], [0, 0, 0], [1, 2, 2]], requires_grad=True)
    out = edge_vectors({K.POS: pos, K.EDGE_INDEX: torch.tensor([[0, 2], [1, 0]])})
    assert out[K.EDGE_VEC].tolist() == [[0, 0, 0], [-1, -2, -2]] and out[K.EDGE_LEN].tolist() == [0, 3]
    out[K.EDGE_LEN].sum().backward()
    assert torch.isfinite(pos.grad).all()  # coincident nodes: zero-length edge, no NaN


def test_build_graph_on_a_collated_batch():
    g = torch.Generator().manual_seed(0)
    data = collate([{K.POS: torch.randn(n, 3, generator=g)} for n in (5, 0, 8)])
    for kind, kwargs in (("full", {}), ("radius", {"r": 1.5}), ("knn", {"k": 3})):
        out = build_graph(data, kind, **kwargs)
        ei = out[K.EDGE_INDEX]
        assert torch.equal(out[K.BATCH][ei[0]], out[K.BATCH][ei[1]])
        torch.testing.assert_close(out[K.EDGE_VEC], data[K.POS][ei[1]] - data[K.POS][ei[0]])
        assert out[K.EDGE_LEN].shape == (ei.shape[1],) and K.POS in out
    assert build_graph({K.POS: torch.zeros(2, 3)}, "full")[K.EDGE_INDEX].shape == (2, 2)
    with pytest.raises(ValueError, match="needs r"):
        build_graph(data, "radius")
    with pytest.raises(ValueError, match="does not use r"):
        build_graph(data, "knn", k=2, r=1.0)
    with pytest.raises(ValueError, match="unknown graph kind"):
        build_graph(data, "delaunay")


def test_bad_inputs_give_clear_errors(monkeypatch):
    pos = torch.rand(4, 3)
    with pytest.raises(ValueError, match=r"shape \(n, 3\), got \(4, 2\)"):
        radius_graph(torch.rand(4, 2), 1.0)
    bad = pos.clone()
    bad[1, 0], bad[1, 2], bad[3, 1] = float("nan"), float("inf"), float("nan")
    with pytest.raises(ValueError, match="3 NaN/Inf values in 2 of 4 nodes"):
        radius_graph(bad, 1.0)
    for r in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="r must be a finite number > 0"):
            radius_graph(pos, r)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        knn_graph(pos, 0)
    with pytest.raises(ValueError, match="batch has 3 entries but pos has 4 nodes"):
        radius_graph(pos, 1.0, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="num_nodes sums to 5"):
        radius_graph(pos, 1.0, num_nodes=torch.tensor([2, 3]))
    with pytest.raises(ValueError, match="disagree"):
        radius_graph(pos, 1.0, torch.tensor([0, 0, 0, 1]), torch.tensor([2, 2]))
    with pytest.raises(ValueError, match="unknown radius_graph backend 'kdtree'"):
        radius_graph(pos, 1.0, backend="kdtree")
    with pytest.raises(ValueError, match="cannot bin it exactly"):
        radius_graph(torch.tensor([[0.0, 0, 0], [1e12, 0, 0]], dtype=torch.float64), 1.0, backend="torch")
    with pytest.raises(ValueError, match="max_num_neighbors must be"):
        radius_graph(pos, 1.0, max_num_neighbors=-1)
    monkeypatch.setattr(_common, "backend_module", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-build-isolation torch-cluster"):
        radius_graph(pos, 1.0, backend="torch_cluster")
    with pytest.raises(ImportError, match="pip install vesin-torch"):
        radius_graph(pos, 1.0, backend="vesin")
    assert available_backends() == {"radius": ("torch",), "knn": ("torch",)}
    assert radius_graph(pos, 1.0).shape[0] == 2  # "auto" falls back to torch


# --- pairs and regular graphs (the fast paths of irrepnet.nn.graph_layer) -------------------


def test_edge_pairs_map_each_edge_and_its_reverse_to_one_pair():
    from irrepnet.graph._build import edge_pairs

    pos = torch.randn(30, 3) * 2
    batch = torch.arange(3).repeat_interleave(10)
    ei = radius_graph(pos, 2.5, batch)
    edge_pair, pair_edge = edge_pairs(ei, 30)
    assert pair_edge.numel() * 2 == ei.shape[1]
    assert torch.equal(edge_pair[pair_edge], torch.arange(pair_edge.numel()))
    ends = torch.sort(ei, dim=0).values  # (min, max) of each edge
    assert torch.equal(ends[:, pair_edge][:, edge_pair], ends)
    one_way = ei[:, ei[0] < ei[1]]
    assert edge_pairs(one_way, 30) is None


def test_regular_degree_is_found_only_when_every_node_receives_equally():
    from irrepnet.graph import full_graph
    from irrepnet.nn.graph_layer import regular_degree

    assert regular_degree(full_graph(torch.tensor([5, 5, 5]))[1], 15) == 4
    assert regular_degree(full_graph(torch.tensor([5, 4]))[1], 9) is None
    assert regular_degree(torch.zeros(0, dtype=torch.long), 3) is None


def test_a_second_graph_drops_the_pair_and_regular_fields_of_the_first():
    from irrepnet.nn import GraphConstruction

    data = {K.POS: torch.randn(10, 3) * 3, K.NUM_NODES: torch.tensor([5, 5])}
    full = GraphConstruction("full", pairs=True)(data)
    assert K.RECEIVER_SLOTS in full and K.PAIR_EDGE in full
    knn = GraphConstruction("knn", k=2)({**full, "pair_embedding": torch.zeros(full[K.PAIR_EDGE].shape[0], 4)})
    assert not {K.EDGE_PAIR, K.PAIR_EDGE, "pair_embedding"} & set(knn)


def test_full_graph_topology_is_reused_only_for_the_same_systems():
    """GraphConstruction keeps the last full graph: reused for equal batch/num_nodes, rebuilt otherwise."""
    from irrepnet.nn import GraphConstruction

    layer = GraphConstruction("full")
    key = layer.topology_field

    def batch_of(counts):
        counts = torch.tensor(counts)
        return {
            K.POS: torch.randn(int(counts.sum()), 3, dtype=torch.float64),
            K.NUM_NODES: counts,
            K.BATCH: torch.arange(len(counts)).repeat_interleave(counts),
        }

    first = layer.topology(batch_of([3, 3]))
    again = layer.topology(batch_of([3, 3]))  # new tensors, same systems: the same edges, not rebuilt
    assert again[key] is first[key] and torch.equal(again[key], full_graph(torch.tensor([3, 3])))
    other = layer.topology(batch_of([2, 4]))  # same node count, other systems: rebuilt
    assert torch.equal(other[key], full_graph(torch.tensor([2, 4])))
    assert key + K.RECEIVER_SLOTS not in other  # degrees 1 and 3: not regular
    layer.regular = False  # an option that changes the fields written is part of the key
    assert key + K.RECEIVER_SLOTS not in layer.topology(batch_of([3, 3]))
