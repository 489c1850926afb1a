import pytest
import torch

from irrepnet import keys as K
from irrepnet.batch import check_batch, collate, ensure_batch, num_graphs, to


def sample(n, with_edges=False):
    s = {K.POS: torch.randn(n, 3), K.VEL: torch.randn(n, 3), K.CHARGE: torch.ones(n, 1)}
    if with_edges:
        s[K.EDGE_INDEX] = torch.tensor([[0, 1], [1, 0]]) if n >= 2 else torch.zeros(2, 0, dtype=torch.long)
    return s


def test_collate_concatenates_and_offsets_edges():
    b = collate([sample(3, True), sample(0, True), sample(2, True)])
    assert b[K.POS].shape == (5, 3) and b[K.NUM_NODES].tolist() == [3, 0, 2]
    assert b[K.BATCH].tolist() == [0, 0, 0, 2, 2]
    assert b[K.EDGE_INDEX].tolist() == [[0, 1, 3, 4], [1, 0, 4, 3]]
    assert num_graphs(b) == 3
    check_batch(b)


def test_collate_rejects_inconsistent_samples():
    with pytest.raises(ValueError, match="at least one sample"):
        collate([])
    s = sample(3)
    del s[K.VEL]
    with pytest.raises(KeyError, match="sample 1 has fields"):
        collate([sample(2), s])
    bad = sample(3)
    bad[K.VEL] = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="node field 'vel' has 4 rows but 'pos' has 3"):
        collate([bad])
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        collate([{K.POS: torch.zeros(3, 2)}])


def test_check_batch_errors():
    with pytest.raises(ValueError, match="pad 2-D coordinates"):
        check_batch({K.POS: torch.zeros(4, 2)})
    with pytest.raises(ValueError, match="'pos' contains 1 NaN or Inf"):
        check_batch({K.POS: torch.tensor([[0.0, float("nan"), 0.0]])})
    with pytest.raises(ValueError, match="'vel' contains 1 NaN or Inf"):
        check_batch({K.POS: torch.zeros(1, 3), K.VEL: torch.tensor([[float("inf"), 0.0, 0.0]])})
    with pytest.raises(ValueError, match="'batch' must be a long tensor"):
        check_batch({K.POS: torch.zeros(2, 3), K.BATCH: torch.zeros(3, dtype=torch.long)})
    with pytest.raises(ValueError, match="indices outside"):
        check_batch({K.POS: torch.zeros(2, 3), K.EDGE_INDEX: torch.tensor([[0], [2]])})
    with pytest.raises(KeyError, match="no 'pos' field"):
        check_batch({K.VEL: torch.zeros(2, 3)})


def test_ensure_batch_and_to():
    b = ensure_batch({K.POS: torch.zeros(4, 3)})
    assert b[K.BATCH].tolist() == [0] * 4 and b[K.NUM_NODES].tolist() == [4]
    d = to(b, dtype=torch.float64)
    assert d[K.POS].dtype == torch.float64 and d[K.BATCH].dtype == torch.long
