"""Energy models on a periodic task with their default configs; the non-periodic defaults unchanged.

``irrepnet train --task bulk_metal --model egnn`` (or any other energy model) must work
with no model option: on a periodic task egnn and segnn resolve ``graph="auto"`` to a
radius graph (4.0 Å on bulk_metal) and segnn drops its centroid feature. Asking for what
a periodic cell cannot have (a full graph, the centroid, e3nn's own neighbour search) is a
one-line ConfigError at build time, naming the config key. On twelve_body, nbody and
molecules the defaults build the same models as before: the parameter counts and outputs
below were recorded at commit 072adcf, before ``"auto"`` existed.
"""

import pytest
import torch
from toy_modules import toy_molecules

from irrepnet import data as D
from irrepnet import keys as K
from irrepnet.batch import collate
from irrepnet.equivariance import audit
from irrepnet.nn import GraphConstruction
from irrepnet.registry import ConfigError, build_model, get_model_entry, list_models, unavailable_reason
from irrepnet.tasks import task_spec

# one torch thread per test (tests/conftest.py): steady timings beside other jobs
pytestmark = pytest.mark.usefixtures("one_torch_thread")

ase_build = pytest.importorskip("ase.build")

ENERGY_MODELS = [n for n in list_models() if get_model_entry(n).energy]


def copper(seed, strain=0.02):
    """A rattled, strained cubic fcc Cu cell (4 atoms, a = 3.61 Å: a neighbour has several images at 4 Å)."""
    atoms = ase_build.bulk("Cu", "fcc", cubic=True)
    g = torch.Generator().manual_seed(seed)
    deform = torch.eye(3, dtype=torch.float64) + strain * torch.randn(3, 3, generator=g, dtype=torch.float64)
    cell = torch.tensor(atoms.cell.array) @ deform
    pos = torch.tensor(atoms.positions) @ deform + 0.1 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    return {
        K.POS: pos,
        K.SPECIES_ONEHOT: torch.ones(4, 1, dtype=torch.float64),
        K.CELL: cell[None],
        K.PBC: torch.ones(1, 3, dtype=torch.bool),
    }


@pytest.fixture(scope="module")
def cells():
    return collate([copper(0), copper(1)])


def _graphs(model):
    return [m for m in model.modules() if isinstance(m, GraphConstruction)]


@pytest.mark.parametrize("name", ENERGY_MODELS)
def test_every_energy_model_runs_on_a_periodic_task_with_its_default_config(name, cells):
    missing = unavailable_reason(name)
    if missing:
        pytest.skip(missing)
    torch.manual_seed(0)
    model = build_model(name, task_spec("bulk_metal")).double()
    graphs = _graphs(model)
    assert graphs and all(g.kind == "radius" for g in graphs), f"{name} must use a radius graph on periodic cells"
    out = model(cells)
    assert out[K.ENERGY].shape == (2, 1) and out[K.FORCES].shape == (8, 3) and out[K.STRESS].shape == (2, 3, 3)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert float(out[K.FORCES].detach().abs().max()) > 0  # the rattled atoms feel forces through the images
    report = audit(model, cells, dtype=torch.float64, trials=1)
    assert report.passed, str(report)
    assert report["translation"].passed  # periodic mode: atoms wrapped back into the cell


def test_egnn_and_segnn_default_to_the_bulk_metal_cutoff_and_no_centroid():
    task = task_spec("bulk_metal")
    for name in ("egnn", "segnn"):
        (graph,) = _graphs(build_model(name, task, layers=1))
        assert graph.r == 4.0
    segnn = build_model("segnn", task, layers=1)
    inputs = [m for m in segnn.modules() if type(m).__name__ == "SteerableInputs"]
    assert len(inputs) == 1 and inputs[0].center_positions is False
    assert inputs[0].avg_num_neighbors == 17.8  # tfn's MEASURED_NEIGHBORS at 4.0 Å
    (graph,) = _graphs(build_model("egnn", task, layers=1, radius=3.0))
    assert graph.r == 3.0  # an explicit radius wins


@pytest.mark.parametrize(
    ("name", "config", "key"),
    [
        ("egnn", {"graph": "full"}, "graph='radius'"),
        ("segnn", {"graph": "full"}, "graph='radius'"),
        ("segnn", {"center_positions": True}, "center_positions=False"),
        ("e3nn-reference", {"graph": "e3nn"}, "graph='irrepnet'"),
    ],
)
def test_what_a_periodic_cell_cannot_have_is_refused_at_build_time_naming_the_key(name, config, key):
    with pytest.raises(ConfigError) as info:
        build_model(name, task_spec("bulk_metal"), {**config, "layers": 1})
    message = str(info.value)
    assert "\n" not in message and key in message and "periodic" in message, message


def test_a_non_periodic_energy_task_keeps_the_full_graph_and_the_centroid():
    task = task_spec("energy", species=("Cu",))
    assert not task.extras["periodic"]
    for name in ("egnn", "segnn"):
        (graph,) = _graphs(build_model(name, task, layers=1))
        assert graph.kind == "full"
    with pytest.raises(ConfigError, match="needs radius > 0"):
        build_model("egnn", task, graph="radius")


#: recorded at commit 072adcf (before graph="auto", center_positions="auto") in float64, seed 0:
#: (parameter count, sum of the output, sum of its absolute values); energy models: the energy
BEFORE = {
    ("egnn", "twelve_body"): (116992, 7.238948405701345e-06, 0.005465035692536334),
    ("egnn", "nbody"): (117248, 8.566844559237995e-05, 0.0499222066765357),
    ("egnn", "molecules"): (117184, -1.434066890247071, 1.434066890247071),
    ("segnn", "twelve_body"): (147232, -0.002109331884427158, 0.09322824716006982),
    ("segnn", "nbody"): (147552, -0.013502411163686882, 0.11184302579758847),
    ("segnn", "molecules"): (147233, -0.027346610418586853, 0.027346610418586853),
}


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """The conformance suite's float64 batches (tests/test_conformance.py): (spec, batch) per task."""
    traj = D.simulate_polymer(D.PolymerConfig(n_frames=40, n_equilibrate=200))
    train, _ = D.split_trajectory(
        traj, history=2, split="chronological", train_fraction=0.8, seed=0, dtype=torch.float64
    )
    nb = D.nbody("test", n_test=6, n_pool=6, n_valid=6, cache_dir=tmp_path_factory.mktemp("cache"))
    return {
        "twelve_body": (task_spec("twelve_body", history=2), train.batch([0, 5, 9])),
        "nbody": (task_spec("nbody", delta_t=nb.delta_t), nb.batch([0, 1, 2, 3])),
        "molecules": (task_spec("molecules", species=("H", "C", "N", "O")), toy_molecules()),
    }


@pytest.mark.parametrize(("name", "task"), sorted(BEFORE))
def test_non_periodic_defaults_are_unchanged(name, task, batches):
    spec, batch = batches[task]
    torch.manual_seed(0)
    model = build_model(name, spec).double()
    (graph,) = _graphs(model)
    assert graph.kind == "full"
    out = model(batch)
    y = (out[K.ENERGY] if K.ENERGY in out else out[K.DISPLACEMENT]).detach()
    params, total, absolute = BEFORE[(name, task)]
    assert sum(p.numel() for p in model.parameters()) == params
    torch.testing.assert_close(float(y.sum()), total, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(float(y.abs().sum()), absolute, rtol=1e-9, atol=1e-15)
