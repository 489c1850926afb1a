"""The equivariance audit on periodic data: cells rotate with the positions, translations wrap.

A model that reads ``edge_vec`` passes; the same model made blind to the cell shifts
(``edge_vec = x_i - x_j`` on a periodic graph) is rotation equivariant and invariant
under a uniform translation, but fails once atoms are wrapped back into the cell.
"""

import copy

import pytest
import torch

from irrepnet import keys as K
from irrepnet.batch import collate
from irrepnet.equivariance import audit
from irrepnet.graph import edge_vectors
from irrepnet.nn import GraphConstruction
from irrepnet.registry import build_model
from irrepnet.tasks import task_spec

ase_build = pytest.importorskip("ase.build")

R_MAX = 4.0  # more than half the 3.61 Å cubic cell: several images of a neighbour


def copper(repeat=(1, 1, 1), rattle=0.1, seed=0, pbc=(True, True, True)):
    atoms = ase_build.bulk("Cu", cubic=True).repeat(repeat)
    atoms.rattle(rattle, seed=seed)
    atoms.pbc = pbc
    return {
        K.POS: torch.tensor(atoms.positions),
        K.SPECIES_ONEHOT: torch.ones(len(atoms), 1, dtype=torch.float64),
        K.CELL: torch.tensor(atoms.cell.array)[None],
        K.PBC: torch.tensor(atoms.pbc)[None],
    }


@pytest.fixture(scope="module")
def data():
    # a bulk cell (4 atoms, every image within 4 Å) and a 2x2x1 slab periodic in a and b
    return collate([copper(seed=1), copper((2, 2, 1), seed=2, pbc=(True, True, False))])


@pytest.fixture(scope="module")
def tfn():
    torch.manual_seed(0)
    task = task_spec("molecules", species=["Cu"])
    return build_model("tfn", task, graph="radius", r_max=R_MAX, layers=2)


class ShiftBlindGraph(GraphConstruction):
    """The broken model's graph: periodic edges, but ``edge_vec = x_i - x_j`` (the shift dropped)."""

    def forward(self, data):
        out = super().forward(data)
        plain = {k: v for k, v in out.items() if k != K.EDGE_CELL_SHIFT}
        return {**out, K.EDGE_VEC: edge_vectors(plain)[K.EDGE_VEC], K.EDGE_LEN: edge_vectors(plain)[K.EDGE_LEN]}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_model_reading_edge_vectors_passes_the_periodic_audit(tfn, data, dtype):
    report = audit(tfn, data, dtype=dtype, trials=2)
    assert report.passed, str(report)
    assert {c.check for c in report.checks} == {"rotation", "reflection", "translation", "permutation"}


def test_a_model_ignoring_the_shifts_fails_it(tfn, data):
    broken = copy.deepcopy(tfn)
    graphs = [m for m in broken.modules() if isinstance(m, GraphConstruction)]
    assert graphs, "tfn builds its graph with GraphConstruction"
    for m in graphs:
        m.__class__ = ShiftBlindGraph
    report = audit(broken, data, dtype=torch.float64, trials=2)
    assert report["translation"].passed is False, str(report)
    assert report["translation"].rel_error > 1e-3


def test_rotating_positions_without_the_cell_is_caught(tfn, data, monkeypatch):
    from irrepnet import equivariance

    monkeypatch.setattr(equivariance, "_act_cell", lambda fields, R: dict(fields))
    report = audit(tfn, data, dtype=torch.float64, checks=("rotation",))
    assert report["rotation"].passed is False


def test_cell_shifts_enter_a_compiled_region_like_edge_index(tfn, data):
    from irrepnet.compile import compile_model

    backbone = copy.deepcopy(tfn.backbone).double()  # the energy model's autograd.grad does not trace
    compiled = compile_model(backbone, backend="eager", fullgraph=True, fallback=False)
    prepared = compiled.prepare(dict(data))
    assert any(name.endswith(K.EDGE_CELL_SHIFT) for name in prepared), "the shifts travel as a topology field"
    torch.testing.assert_close(compiled(data)[K.NODE_ENERGY], backbone(data)[K.NODE_ENERGY], rtol=0, atol=1e-12)
