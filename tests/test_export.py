"""Exported packages run without irrepnet and e3nn, and give the eager model's outputs.

Each test exports a model (fresh weights, wrapped in a
:class:`~irrepnet.train.normalization.NormalizedModel` with non-trivial scales so that the
normalisation is part of the program), then loads the package in a subprocess in which
importing irrepnet or e3nn raises, builds the graph with the package's own runtime, and
compares the outputs with the eager model's (which builds its own graph) on systems of
3, 9 and 20 atoms and on one batch of all three (different numbers of atoms, edges and
graphs than the export traced with).

Which families export (measured here with these tests; the report of the export task
lists the errors of the others): see ``ENERGY_FAMILIES`` and ``DISPLACEMENT_FAMILIES``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from irrepnet import keys as K
from irrepnet.export import ExportError, export_model
from irrepnet.interface import IrrepsModel
from irrepnet.registry import build_model
from irrepnet.tasks import task_spec
from irrepnet.train.normalization import NormalizedModel

#: python prologue of the subprocess: irrepnet and e3nn cannot be imported there
BLOCKER = """
import sys

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("irrepnet", "e3nn"):
            raise ImportError(f"{name} must not be needed to run an exported package")
        return None

sys.meta_path.insert(0, _Blocked())
"""

RUN = (
    BLOCKER
    + """
import importlib.util
import torch

runtime_file, package, cases_file, out_file = sys.argv[1:5]
spec = importlib.util.spec_from_file_location("package_runtime", runtime_file)
rt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rt)
model = rt.load(package)
outputs = [model(**case) for case in torch.load(cases_file)]
torch.save(outputs, out_file)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("irrepnet", "e3nn"))
assert not leaked, leaked
meta = model.metadata


def edge_count(case):
    batch = torch.repeat_interleave(torch.arange(len(case["num_nodes"])), torch.as_tensor(case["num_nodes"]))
    if meta["graph"]["kind"] == "none":
        return 0
    edges = rt.build_edges(meta, case["pos"], batch, case.get("cell"), case.get("pbc"))
    return int((edges[0] if meta.get("periodic") else edges).shape[1])


print("edges", [edge_count(case) for case in torch.load(cases_file)])
"""
)

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def normalized(model, task):
    """``model`` with the scales a training run would fit (made-up, not 1, so that they matter)."""
    if task.target == K.ENERGY:
        scales = {"outputs": {K.ENERGY: 1.7, K.FORCES: 1.7}, "atom_energies": [-13.6, -1030.0, -1485.0, -2040.0]}
    else:
        scales = {"outputs": {K.DISPLACEMENT: 0.03}, "length": 1.3}
        scales["inputs"] = {f: 0.05 for f in (K.VEL, K.VEL_HISTORY) if f in model.irreps_in}
    return NormalizedModel(model, scales).eval()


def cases(task, dtype, seed=1, periodic=False):
    """Systems of 1, 3, 9 and 20 atoms and a batch of 3, 9 and 20 (fixed-size tasks: 1, 2 and 3 graphs)."""
    gen = torch.Generator().manual_seed(seed)
    groups = [[task.num_nodes] * g for g in (1, 2, 3)] if task.num_nodes else [[1], [3], [9], [20], [3, 9, 20]]
    out = []
    for sizes in groups:
        n = sum(sizes)
        case = {"pos": torch.rand(n, 3, generator=gen, dtype=dtype) * 3.0 * (max(sizes) / 6) ** (1 / 3)}
        for name, irreps in task.inputs.items():
            if name == K.SPECIES_ONEHOT:
                index = torch.randint(0, irreps.dim, (n,), generator=gen)
                case[name] = torch.nn.functional.one_hot(index, irreps.dim).to(dtype)
            elif name == K.NODE_INDEX:
                case[name] = torch.cat([torch.arange(s) for s in sizes])
            elif name != K.POS:
                case[name] = 0.05 * torch.randn(n, irreps.dim, generator=gen, dtype=dtype)
        case["num_nodes"] = torch.tensor(sizes)
        if periodic:  # triclinic cells of side about 4 (several images within the cutoff 3.5), one open axis
            cell = 4.0 * torch.eye(3, dtype=dtype) + 0.5 * torch.randn(len(sizes), 3, 3, generator=gen, dtype=dtype)
            case.update(cell=cell, pbc=torch.tensor([[True, True, False]] * len(sizes)))
        out.append(case)
    return out


def run_package(tmp_path, package, data):
    """Outputs of the package on ``data``, computed in a subprocess without irrepnet and e3nn."""
    cases_file, out_file = tmp_path / "cases.pt", tmp_path / "outputs.pt"
    torch.save(data, cases_file)
    runtime_file = package.with_name(package.stem + "_runtime.py")
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(runtime_file), str(package), str(cases_file), str(out_file)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the checkout: nothing of irrepnet on the path but what the blocker refuses
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    edges = json.loads(proc.stdout.strip().splitlines()[-1].removeprefix("edges "))
    return torch.load(out_file), edges


def compare(model, package, tmp_path, task, dtype):
    """Run ``package`` on :func:`cases` in the subprocess; assert it gives ``model``'s outputs."""
    meta = json.loads(package.with_suffix(".json").read_text())
    data = cases(task, dtype, periodic=meta["periodic"])
    got, edges = run_package(tmp_path, package, data)
    for case, outs in zip(data, got):
        eager = model(dict(case))  # builds its own graph
        for field, value in zip(meta["outputs"], outs):
            ref = eager[field].detach()
            assert value.shape == ref.shape and value.dtype == dtype
            rel = float((value - ref).abs().max() / ref.abs().max().clamp(min=1e-30))
            sizes = case["num_nodes"].tolist()
            assert rel <= TOL[dtype], f"{meta['model']} {field} on sizes {sizes}: relative error {rel:.2e}"
    return meta, edges


def check_family(tmp_path, name, task, dtype=torch.float64, aoti=False):
    """Export ``name`` (fresh weights, normalised) for ``task`` and compare the package with eager."""
    torch.manual_seed(0)
    model = normalized(build_model(name, task), task).to(dtype)
    result = export_model(model, tmp_path / f"{name}.pt2", aoti=aoti, task=task, name=name, dtype=dtype)
    assert result.metadata["aoti"] == aoti and result.metadata["model"] == name
    _, edges = compare(model, result.path, tmp_path, task, dtype)
    return result, edges


def test_egnn_energy_package_runs_without_irrepnet(tmp_path):
    """The fast one: egnn on molecules, float32, ExportedProgram; 3/9/20 atoms and a batch of them."""
    result, edges = check_family(tmp_path, "egnn", task_spec("molecules"), dtype=torch.float32)
    assert result.metadata["inputs"] == ["pos", "species_onehot", "edge_index", "batch", "num_nodes"]
    assert result.metadata["outputs"] == ["energy", "forces"]
    assert result.metadata["species"] == ["H", "C", "N", "O"] and result.metadata["graph"]["kind"] == "full"
    assert edges == [0, 6, 72, 380, 458]  # full graphs: n (n - 1) per system


# --- every family (slow: make_fx of an e3nn network takes minutes on a loaded CPU) ---------
#: registered energy families that export (molecules task)
ENERGY_FAMILIES = ["e3nn-reference", "egnn", "mace", "se3-transformer", "segnn", "tfn"]
#: registered displacement families that export, on twelve_body (history 2) and nbody
DISPLACEMENT_FAMILIES = [
    "constant-acceleration",
    "constant-velocity",
    "e3nn-polynomial",
    "e3nn-reference",
    "egnn",
    "egnn-vel",
    "gnn",
    "mace",
    "mlp",
    "radial-field",
    "se3-transformer",
    "segnn",
    "tfn",
    "zero-displacement",
]


#: families whose export is checked in CI (pass 2, slow tests); the others trace for several minutes
#: each on a 2-core machine (e3nn-reference 373 s, segnn 288 s) and are marked ``heavy``: run them
#: with ``pytest -m heavy tests/test_export.py``. The export code they go through is the same.
CI_ENERGY = ("mace", "tfn")
CI_DISPLACEMENT = ("constant-acceleration", "egnn", "mace", "radial-field")


def _heavy_unless(names, name):
    return pytest.param(name, marks=()) if name in names else pytest.param(name, marks=pytest.mark.heavy)


@pytest.mark.slow
@pytest.mark.parametrize("name", [_heavy_unless(CI_ENERGY, n) for n in ENERGY_FAMILIES if n != "egnn"])
def test_energy_families_export(tmp_path, name):
    result, edges = check_family(tmp_path, name, task_spec("molecules"))
    assert len(set(edges)) == len(edges)  # graphs of different edge counts, an isolated atom among them


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["twelve_body", "nbody"])
@pytest.mark.parametrize("name", [_heavy_unless(CI_DISPLACEMENT, n) for n in DISPLACEMENT_FAMILIES])
def test_displacement_families_export(tmp_path, name, task_name):
    task = task_spec(task_name, history=2) if task_name == "twelve_body" else task_spec(task_name)
    if name == "constant-acceleration" and task_name == "nbody":
        pytest.skip("nbody has no velocity history")
    result, _ = check_family(tmp_path, name, task)
    assert result.metadata["outputs"] == ["displacement"] and result.metadata["num_nodes"] == task.num_nodes


@pytest.mark.slow
@pytest.mark.parametrize("name", ["egnn", pytest.param("tfn", marks=pytest.mark.heavy)])  # tfn: 884 s
def test_aoti_packages_run_without_irrepnet(tmp_path, name):
    """AOTInductor: the compiled package, float32, on the same systems (minutes per compile)."""
    result, _ = check_family(tmp_path, name, task_spec("molecules"), dtype=torch.float32, aoti=True)
    assert result.compile_s > 0


@pytest.mark.slow
def test_the_cli_exports_a_trained_checkpoint(tmp_path, tiny_task):
    """``irrepnet export`` on a checkpoint of a short run: the package equals ``load_trained``'s model."""
    from conftest import small

    from irrepnet.cli import main
    from irrepnet.train import load_trained, train_registered

    train_registered("egnn", tiny_task, small(epochs=1), {"hidden": 16, "layers": 2}, out_dir=tmp_path / "run")
    checkpoint, package = tmp_path / "run" / "best.pt", tmp_path / "egnn.pt2"
    assert main(["export", str(checkpoint), "--out", str(package), "--no-aoti", "--dtype", "float64"]) == 0
    model, _ = load_trained(checkpoint)
    meta, _ = compare(model.double(), package, tmp_path, tiny_task.spec, torch.float64)
    assert meta["graph"]["kind"] == "full" and meta["num_nodes"] == 12 and meta["dtype"] == "float64"


# --- what cannot be exported says so in one line --------------------------------------------
class ReadsAValue(IrrepsModel):
    """Scales positions by a number read on the host: a size or branch the program cannot trace."""

    def __init__(self):
        super().__init__({K.POS: "1o"}, {K.DISPLACEMENT: "1o"}, symmetry="E(3)")
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, data):
        return {K.DISPLACEMENT: self.w * data[K.POS] * float(data[K.POS].norm())}


def test_a_model_that_reads_values_is_refused_in_one_line(tmp_path):
    with pytest.raises(ExportError) as err:
        export_model(ReadsAValue(), tmp_path / "x.pt2", aoti=False, name="reads-a-value")
    message = str(err.value)
    assert message.startswith("model family 'reads-a-value' cannot be exported: ") and "\n" not in message
    assert not (tmp_path / "x.pt2").exists()


def test_the_cli_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    import irrepnet.export
    from irrepnet.cli import main

    def refuse(*args, **kwargs):
        raise ExportError("model family 'x' cannot be exported: why")

    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.pt2")]) == 2
    assert "not found" in capsys.readouterr().err
    monkeypatch.setattr(irrepnet.export, "export_model", refuse)
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.pt2")]) == 2
    assert capsys.readouterr().err == "irrepnet: error: model family 'x' cannot be exported: why\n"


@pytest.mark.slow
def test_a_periodic_package_reads_cells_and_shifts(tmp_path):
    """A small tfn with ``periodic=True``: its own periodic graph in eager, the runtime's in the package."""
    task = task_spec("molecules")
    torch.manual_seed(0)
    model = build_model("tfn", task, layers=1, hidden_irreps="8x0e + 4x1o", lmax=1).double().eval()
    result = export_model(model, tmp_path / "tfn.pt2", aoti=False, task=task, name="tfn", periodic=True)
    assert result.metadata["inputs"][-2:] == ["cell", "edge_cell_shift"] and result.metadata["periodic"]
    _, edges = compare(model, result.path, tmp_path, task, torch.float64)
    assert edges[0] > 0  # one atom in a cell smaller than the cutoff sees its own images


def test_a_full_graph_family_is_refused_periodic(tmp_path):
    model = build_model("egnn", task_spec("molecules"))
    with pytest.raises(ExportError, match="cannot be exported periodic: it builds a full graph"):
        export_model(model, tmp_path / "x.pt2", aoti=False, name="egnn", periodic=True)
