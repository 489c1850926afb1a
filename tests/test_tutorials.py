"""The tutorial notebooks: each runs top to bottom, and its committed form is in sync, small and executed.

The execution tests (marker ``notebook``; deselect with ``-m 'not notebook'``) run each
``tutorials/*.ipynb`` with nbclient in a ``python3`` kernel, working directory
``tutorials/``, ``MPLBACKEND=Agg``. The kernel runs this interpreter: a ``python3``
kernelspec for ``sys.executable`` is put first on ``$JUPYTER_PATH`` for the test (see
``own_python_kernel`` in ``tutorials/run_notebooks.py``), so a user-level kernelspec that
points at another Python cannot make the notebooks run without irrepnet.
Notebooks listed in ``TIME_LIMITS`` must also finish within their limit (kernel start included).
"""

import importlib.util
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("jupytext")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
if not (TUTORIALS / "run_notebooks.py").is_file():  # an unpacked sdist ships tests, not tutorials
    pytest.skip("the tutorials are in the repository, not in the sdist", allow_module_level=True)
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
MAX_BYTES = 300 * 1024
CELL_TIMEOUT = 600
#: wall-clock limits (s) of whole-notebook execution, checked by test_notebook_runs; the
#: tutorials promise "under 3 minutes on a 2-core CPU" (tutorials/README.md)
TIME_LIMITS = {"05_molecules_egnn": 180, "06_your_data_md_export": 180}


def _load_runner():
    spec = importlib.util.spec_from_file_location("irrepnet_tutorials_runner", TUTORIALS / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load_runner()
ids = [p.stem for p in NOTEBOOKS]


def test_every_tutorial_has_its_pair():
    assert NOTEBOOKS, f"no notebooks in {TUTORIALS}"
    sources = runner.sources(TUTORIALS)
    assert {p.stem for p in sources} == {p.stem for p in NOTEBOOKS}, (
        "each tutorials/NN_name.py needs its executed NN_name.ipynb and vice versa; "
        "run `python tutorials/run_notebooks.py NN`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_in_sync_with_source(path):
    problems = runner.check_sync(runner.source_of(path))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_is_small(path):
    size = path.stat().st_size
    assert size < MAX_BYTES, (
        f"{path.name} is {size / 1024:.0f} KB (limit {MAX_BYTES // 1024} KB): "
        "fewer or smaller figures (dpi ~70), shorter printed output"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_is_committed_executed(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    unexecuted = [i + 1 for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unexecuted, (
        f"{path.name}: code cells {unexecuted} have not been executed; "
        f"run `python tutorials/run_notebooks.py {path.stem[:2]}`"
    )
    errors = [i + 1 for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.outputs)]
    assert not errors, f"{path.name}: code cells {errors} were committed with an error output"


def test_kernel_runs_this_interpreter():
    from jupyter_client.kernelspec import KernelSpecManager

    with runner.own_python_kernel() as name:
        spec = KernelSpecManager().get_kernel_spec(name)
    assert spec.argv[0] == sys.executable
    assert spec.argv[1:3] == ["-m", "ipykernel_launcher"]


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_runs(path, monkeypatch):
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        with runner.own_python_kernel() as kernel:
            runner.execute(nb, cwd=TUTORIALS, timeout=CELL_TIMEOUT, kernel_name=kernel)
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{runner.plain(str(exc))}", pytrace=False)
    elapsed = time.perf_counter() - start  # kernel start included, as a reader would wait for it
    limit = TIME_LIMITS.get(path.stem)
    if limit is not None:
        assert elapsed < limit, (
            f"{path.name} took {elapsed:.0f} s to execute (limit {limit} s): "
            "shrink its default budget (the FULL flag keeps the full-size run)"
        )
