"""A missing optional package: one line that names the install command, exit status 2, no traceback.

Each package is made to fail to import (``sys.modules[name] = None`` makes ``import name``
raise ImportError, and ``find_spec`` report it absent), whether or not it is installed
here. The library raises :class:`~irrepnet.optional.MissingDependencyError` (an
ImportError); the peers, chosen by model name, keep the registry's ConfigError.
"""

import sys

import pytest
import torch

from irrepnet.cli import main
from irrepnet.optional import MissingDependencyError, require


def block(monkeypatch, *modules):
    """Make ``import M`` fail for each module and every submodule already imported."""
    for m in modules:
        for name in [m, *(k for k in list(sys.modules) if k.startswith(m + "."))]:
            monkeypatch.setitem(sys.modules, name, None)


def one_line_error(capsys, argv) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("irrepnet: error:"), err
    return lines[0]


@pytest.fixture
def fresh_backend_caches():
    """The compiled backends' imports are cached (functools.cache): forget them around a test."""
    from irrepnet import scatter
    from irrepnet.graph import _common

    scatter._torch_scatter.cache_clear()
    _common.backend_module.cache_clear()
    yield
    scatter._torch_scatter.cache_clear()
    _common.backend_module.cache_clear()


# -- ASE: the molecules task -----------------------------------------------------------------------


def test_molecules_without_ase(monkeypatch, capsys, tmp_path):
    block(monkeypatch, "ase")
    monkeypatch.setenv("IRREPNET_CACHE", str(tmp_path))  # a cache hit must not hide the check
    line = one_line_error(capsys, ["audit", "--model", "egnn", "--task", "molecules"])
    assert "the molecules task" in line and "ASE" in line and line.endswith("pip install 'irrepnet[molecules]')")
    from irrepnet.data.molecules import molecules

    with pytest.raises(MissingDependencyError, match="pip install ase") as e:
        molecules("test", n_test=2, cache_dir=tmp_path)
    assert e.value.package == "ase" and e.value.install == "pip install ase"
    assert isinstance(e.value, ImportError)  # code that caught ImportError still does


# -- peers: egnn-pytorch, se3-transformer-pytorch ------------------------------------------------


@pytest.mark.parametrize(
    "model, module", [("egnn-pytorch", "egnn_pytorch"), ("se3-transformer-pytorch", "se3_transformer_pytorch")]
)
def test_peer_models_without_their_package(monkeypatch, capsys, model, module):
    block(monkeypatch, module)
    line = one_line_error(capsys, ["audit", "--model", model, "--task", "nbody"])
    assert f"model '{model}' needs {module}" in line and line.endswith("pip install 'irrepnet[peers]'")
    from irrepnet.registry import ConfigError, build_model
    from irrepnet.tasks import task_spec

    with pytest.raises(ConfigError, match=r"pip install 'irrepnet\[peers\]'"):
        build_model(model, task_spec("nbody"))


# -- torch-scatter and torch-cluster / vesin, when asked for by name --------------------------------


def test_scatter_backend_asked_for_but_missing(monkeypatch, capsys, fresh_backend_caches):
    block(monkeypatch, "torch_scatter")
    monkeypatch.setenv("IRREPNET_SCATTER_BACKEND", "torch_scatter")
    line = one_line_error(capsys, ["audit", "--model", "egnn", "--task", "nbody"])
    assert "scatter backend 'torch_scatter'" in line and "pip install --no-build-isolation torch-scatter" in line
    from irrepnet.scatter import segment_sum

    with pytest.raises(MissingDependencyError) as e:
        segment_sum(torch.ones(3, 2), torch.tensor([0, 0, 1]), 2)
    assert e.value.package == "torch-scatter" and e.value.install == "pip install --no-build-isolation torch-scatter"
    monkeypatch.setenv("IRREPNET_SCATTER_BACKEND", "auto")  # not asked for by name: no error, PyTorch's ops
    assert segment_sum(torch.ones(3, 2), torch.tensor([0, 0, 1]), 2).tolist() == [[2.0, 2.0], [1.0, 1.0]]


def test_unknown_scatter_backend_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("IRREPNET_SCATTER_BACKEND", "torchscatter")
    line = one_line_error(capsys, ["audit", "--model", "egnn", "--task", "nbody"])
    assert "unknown scatter backend 'torchscatter'" in line and "torch_scatter" in line


@pytest.mark.parametrize(
    "backend, package, install",
    [
        ("torch_cluster", "torch-cluster", "pip install --no-build-isolation torch-cluster"),
        ("vesin", "vesin-torch", "pip install vesin-torch"),
    ],
)
def test_graph_backend_asked_for_but_missing(monkeypatch, fresh_backend_caches, backend, package, install):
    """No CLI option names a neighbour-search backend: the library's error is what users see."""
    block(monkeypatch, "torch_cluster", "vesin_torch")
    from irrepnet.graph import knn_graph, radius_graph

    pos = torch.randn(6, 3)
    calls = [lambda: radius_graph(pos, 1.0, backend=backend)]
    if backend == "torch_cluster":
        calls.append(lambda: knn_graph(pos, 2, backend=backend))
    for call in calls:
        with pytest.raises(MissingDependencyError, match=install) as e:
            call()
        assert e.value.package == package and e.value.install == install
        assert "\n" not in str(e.value)
    assert radius_graph(pos, 1.0).shape[0] == 2  # "auto" still works, with PyTorch


# -- tensorboard ----------------------------------------------------------------------------------------


def test_train_tensorboard_without_the_package(monkeypatch, capsys, tmp_path):
    block(monkeypatch, "tensorboard", "torch.utils.tensorboard")
    out = tmp_path / "run"
    argv = ["train", "--model", "mlp", "--out", str(out), "--tensorboard", str(tmp_path / "tb")]
    line = one_line_error(capsys, argv)
    assert "tensorboard" in line and line.endswith("pip install tensorboard")
    assert not out.exists()  # refused before anything was loaded or written
    from irrepnet.train.tensorboard_log import summary_writer_class

    with pytest.raises(MissingDependencyError, match="pip install tensorboard") as e:
        summary_writer_class(tmp_path / "tb")
    assert e.value.package == "tensorboard"


# -- the helper itself -------------------------------------------------------------------------------


def test_require_imports_or_names_the_install(monkeypatch):
    assert require("json", feature="x") is sys.modules["json"]
    block(monkeypatch, "some_pkg")
    with pytest.raises(MissingDependencyError) as e:
        require("some_pkg.sub", feature="the frobnicator")
    msg = str(e.value)
    assert msg.startswith("the frobnicator needs some-pkg, which is not installed")
    assert msg.endswith("install it with: pip install some-pkg") and "\n" not in msg
    assert (e.value.package, e.value.install, e.value.name) == ("some-pkg", "pip install some-pkg", "some-pkg")
