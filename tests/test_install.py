"""irrepnet outside its clone: the wheel in a fresh virtual environment, used from another folder.

What a new user does after ``pip install``: list the suites, run one by name, run the
README's library example. Everything here runs with the fresh environment's own
interpreter, from a temporary folder, with no ``PYTHONPATH``: nothing of the repository
can be imported by accident, so a file missing from the wheel (a suite, the reference
trajectory) fails here as it would for the user.

torch is not downloaded: the fresh environment gets the exact version installed here,
which pip takes from its cache or a local wheel. A CUDA build is never reinstalled
(gigabytes); the test skips there, and where that exact version cannot be installed.
"""

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: what building the wheel reads: the package and what pyproject.toml names
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "irrepnet")

pytestmark = pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(), reason="builds the wheel from a source tree")


def readme_example(text: str) -> str:
    """The README's library example: the first python block after the heading that says "ten lines"
    (the first python block of the README if no heading says so)."""
    after = re.split(r"^#+ [^\n]*ten lines[^\n]*$", text, maxsplit=1, flags=re.M | re.I)[-1]
    blocks = re.findall(r"```python\n(.*?)```", after, flags=re.S)
    assert blocks, "README.md has no ```python block to run"
    return blocks[0]


def test_readme_example_is_found():
    text = "# x\n```python\nfirst\n```\n## The library in ten lines\n\n```python\nsecond\n```\n"
    assert readme_example(text) == "second\n"
    assert readme_example("```python\nonly\n```") == "only\n"


def _run(cmd, cwd, env, timeout=900):
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    )
    return res.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel built from this tree and the installed torch; its bin/ folder."""
    import torch

    if torch.version.cuda is not None:
        pytest.skip(f"torch {torch.__version__} is a CUDA build: the test will not download it again")
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a clean copy: an in-tree build/ could carry stale modules into the wheel
    src.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["MPLBACKEND"] = "Agg"
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", tmp / "dist", src], tmp, env)
    (wheel,) = (tmp / "dist").glob("irrepnet-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp, env)
    bin_ = venv / ("Scripts" if os.name == "nt" else "bin")
    pip = [bin_ / "python", "-m", "pip", "install", "--quiet"]
    res = subprocess.run(
        [str(c) for c in [*pip, f"torch=={torch.__version__}"]], capture_output=True, text=True, env=env
    )
    if res.returncode != 0:
        pytest.skip(f"torch=={torch.__version__} cannot be installed here without a download: {res.stderr[-300:]}")
    _run([*pip, wheel], tmp, env)
    print(f"built and installed in {time.perf_counter() - t0:.0f} s")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return bin_, elsewhere, env


@pytest.mark.slow
def test_the_installed_package_is_the_one_used(installed):
    bin_, cwd, env = installed
    out = _run(
        [bin_ / "python", "-c", "import irrepnet; print(irrepnet.__file__); print(irrepnet.__version__)"], cwd, env
    )
    where, version = out.split()
    assert Path(where).is_relative_to(bin_.parent) and not Path(where).is_relative_to(ROOT)
    from irrepnet import __version__

    assert version == __version__


@pytest.mark.slow
def test_list_suites_from_the_wheel(installed):
    bin_, cwd, env = installed
    out = _run([bin_ / "irrepnet", "bench", "--list-suites"], cwd, env)
    names = {line.split()[0] for line in out.splitlines()[1:]}
    assert {"quick", "dmol", "nbody", "molecules"} <= names, out
    folder = out.splitlines()[0].removeprefix("suites in ").split(" (")[0]
    assert Path(folder).is_relative_to(bin_.parent), f"suites not read from the installed package: {folder}"


@pytest.mark.slow
def test_a_suite_by_name_writes_its_run_folder(installed):
    """The quick suite by name, cut to one model and four steps: the harness end to end from the wheel."""
    bin_, cwd, env = installed
    cmd = [bin_ / "irrepnet", "bench", "--suite", "quick", "--models", "mlp", "--epochs", "1", "--max-steps", "4"]
    _run([*cmd, "--out", "run"], cwd, env)
    run = cwd / "run"
    for name in ("results.json", "results.csv", "report.md"):
        assert (run / name).is_file(), name
    import json

    results = json.loads((run / "results.json").read_text())
    assert results["suite"]["name"] == "quick" and "polymer12.npz" in results["groups"][0]["data"]


@pytest.mark.slow
def test_the_readme_example_runs(installed):
    bin_, cwd, env = installed
    (cwd / "example.py").write_text(readme_example(README.read_text()))
    out = _run([bin_ / "python", "example.py"], cwd, env)
    assert "rotation" in out and "permutation" in out  # the audit it prints at the end


@pytest.mark.slow
def test_the_sdist_tests_collect(installed, tmp_path):
    """An unpacked sdist carries its tests with conftest.py and their helper modules: they collect
    (the tests that need the repository's benchmarks/ or tutorials/ skip there)."""
    pytest.importorskip("build", reason="builds the sdist with the build package (pip install build)")
    bin_, _, env = installed
    src = tmp_path / "src"
    src.mkdir()
    for name in (*BUILD_INPUTS, "CHANGELOG.md", "CITATION.cff", "tests"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "build", "--sdist", "--outdir", tmp_path / "dist", src], tmp_path, env)
    (sdist,) = (tmp_path / "dist").glob("irrepnet-*.tar.gz")
    with tarfile.open(sdist) as tar:
        # the "data" filter (no absolute paths, links out, devices) where this Python has it
        tar.extractall(tmp_path / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    for name in ("LICENSE", "CHANGELOG.md", "CITATION.cff", "tests/conftest.py", "tests/bench_fixtures.py"):
        assert (unpacked / name).is_file(), f"{name} is not in the sdist"
    _run([bin_ / "python", "-m", "pip", "install", "--quiet", "pytest"], tmp_path, env)
    out = _run(
        [bin_ / "python", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"], unpacked, env
    )
    assert re.search(r"\d+ tests collected", out) and "error" not in out.splitlines()[-1], out[-2000:]
