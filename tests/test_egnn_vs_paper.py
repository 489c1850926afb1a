"""benchmarks/egnn_vs_paper.py: the hint, the error paths, and a run on a stand-in of the paper's code.

The real comparison runs only where a checkout of github.com/vgsatorras/egnn is found:
``$IRREPNET_EGNN_REPO``, or ``egnn-paper`` next to this repository's folder.
"""

import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.repo  # the script under test is benchmarks/egnn_vs_paper.py

# A stand-in for the paper's n_body_system/model.py: EGNN_vel with the paper's constructor
# signature and forward call, importing models.gcl like the real one. One flat parameter
# of the real model's size (134,020 at hidden 64, 4 layers, 1 node and 2 edge features).
FAKE_GCL = "SCALE = 0.5\n"
FAKE_MODEL = """
import torch
from torch import nn
from models.gcl import SCALE


class EGNN_vel(nn.Module):
    def __init__(self, in_node_nf, in_edge_nf, hidden_nf, device='cpu', act_fn=nn.SiLU(), n_layers=4,
                 coords_weight=1.0, recurrent=False, norm_diff=False, tanh=False):
        super().__init__()
        self.w = nn.Parameter(torch.zeros({size}))

    def forward(self, h, x, edges, vel, edge_attr):
        x += SCALE * vel * (1 + self.w[:1]) + 0 * h.sum() + 0 * edge_attr.sum()
        return x
"""


@pytest.fixture(scope="module")
def bench():
    path = ROOT / "benchmarks" / "egnn_vs_paper.py"
    spec = importlib.util.spec_from_file_location("egnn_vs_paper", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The benchmark sets torch's thread count; the other tests keep theirs."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def fake_repo(tmp_path: Path, size: int) -> Path:
    repo = tmp_path / f"egnn-{size}"
    (repo / "models").mkdir(parents=True)
    (repo / "n_body_system").mkdir()
    (repo / "models" / "__init__.py").write_text("")
    (repo / "models" / "gcl.py").write_text(FAKE_GCL)
    (repo / "n_body_system" / "__init__.py").write_text("")
    (repo / "n_body_system" / "model.py").write_text(FAKE_MODEL.replace("{size}", str(size)))
    return repo


def test_without_a_repo_prints_how_to_get_it(bench, monkeypatch, capsys):
    monkeypatch.delenv(bench.ENV_VAR, raising=False)
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "git clone https://github.com/vgsatorras/egnn" in out and "--egnn-repo" in out


def test_a_path_without_the_model_file_is_an_error(bench, tmp_path, capsys):
    assert bench.main(["--egnn-repo", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "n_body_system" / "model.py") in err and "not found" in err


def test_paper_edges_follow_get_edges(bench):
    """The index pattern of the paper's NBodyDataset.preprocess + get_edges, written out as loops."""
    rows, cols = [], []
    for g in range(3):
        for i in range(5):
            for j in range(5):
                if i != j:
                    rows.append(i + 5 * g)
                    cols.append(j + 5 * g)
    got = bench.paper_edges(3, 5)
    assert got[0].tolist() == rows and got[1].tolist() == cols


def test_different_sizes_abort(bench, tmp_path, capsys):
    repo = fake_repo(tmp_path, 1000)
    assert bench.main(["--egnn-repo", str(repo), "--batch-size", "4", "--repeats", "1", "--warmup", "0"]) == 1
    err = capsys.readouterr().err
    assert "parameter counts differ" in err and "134,020" in err and "1,000" in err


def test_run_on_a_stand_in(bench, tmp_path, monkeypatch, capsys):
    """The whole path, --compile included, against a stand-in of the right size."""
    compiled = types.ModuleType("irrepnet.compile")
    compiled.compile_model = lambda model: model  # stands in for torch.compile
    monkeypatch.setitem(sys.modules, "irrepnet.compile", compiled)
    repo, out = fake_repo(tmp_path, 134020), tmp_path / "result.json"
    argv = [
        "--egnn-repo",
        str(repo),
        "--batch-size",
        "4",
        "--repeats",
        "2",
        "--warmup",
        "1",
        "--json",
        str(out),
        "--compile",
    ]
    assert bench.main(argv) == 0
    text = capsys.readouterr().out
    assert "paper EGNN_vel 134,020" in text and "same-function check skipped" in text
    result = json.loads(out.read_text())
    assert set(result["models"]) == {"paper", "irrepnet", "irrepnet (compiled)"}
    assert result["parameters"] == {"irrepnet": 134020, "paper": 134020} and result["threads"] == 1
    assert result["models"]["paper"]["train_ratio"] == 1.0 and result["models"]["irrepnet"]["infer_s"] > 0
    assert result["provenance"]["torch_threads"] == 1 and len(result["paper_repo"]["model_py_sha256"]) == 64


def _paper_checkout():
    for candidate in (os.environ.get("IRREPNET_EGNN_REPO"), ROOT.parent / "egnn-paper"):
        if candidate and (Path(candidate) / "n_body_system" / "model.py").is_file():
            return Path(candidate)
    return None


@pytest.mark.skipif(
    _paper_checkout() is None, reason="no checkout of github.com/vgsatorras/egnn ($IRREPNET_EGNN_REPO or ../egnn-paper)"
)
def test_against_the_papers_code(bench, tmp_path, capsys):
    out = tmp_path / "result.json"
    argv = [
        "--egnn-repo",
        str(_paper_checkout()),
        "--batch-size",
        "10",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--json",
        str(out),
    ]
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["parameters"] == {"irrepnet": 134020, "paper": 134020}
    assert result["same_function"]["checked"] and result["same_function"]["same"], result["same_function"]
