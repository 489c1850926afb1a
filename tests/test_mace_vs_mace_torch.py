"""benchmarks/mace_vs_mace_torch.py: its own logic, without mace-torch.

The refusal on unequal sizes, the one-line errors for a ``--python`` that is not a Python or
cannot import mace, and the parsing of the worker's result line, with fake workers standing
in for the mace-torch side. The real comparison needs a venv with mace-torch: the slow test
runs it when ``IRREPNET_MACE_TORCH_PYTHON`` names that venv's python.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from irrepnet.registry import module_available

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.repo,  # the script under test is benchmarks/mace_vs_mace_torch.py
    pytest.mark.skipif(
        importlib.util.find_spec("irrepnet.models.mace") is None, reason="irrepnet's mace is not in this checkout"
    ),
    pytest.mark.skipif(not module_available("ase"), reason="the molecules batch is labelled by ASE: pip install ase"),
]
#: a small model, so that building irrepnet's side takes a fraction of a second
SMALL = ["--channels", "4", "--max-ell", "1", "--correlation", "2", "--batch", "2", "--radial-neurons", "8"]

FAKE_WORKER = """
import json, os, sys
MARKER = "MACE_TORCH_WORKER_JSON"
print("cuequivariance or cuequivariance_torch is not available.")  # noise, as mace prints
versions = {"python": "3.11", "torch": "2.13.0+cpu", "e3nn": "0.4.4", "mace": "0.3.16"}
if "--probe" in sys.argv:
    print(MARKER, json.dumps({"versions": versions}))
    sys.exit(0)
config = json.load(open(sys.argv[sys.argv.index("--config") + 1]))
assert config["channels"] == 4 and config["correlation"] == 2, config
print(MARKER, json.dumps({"versions": versions, "parameters": int(os.environ["FAKE_PARAMETERS"]),
                          "blocks": {"radial MLP": 1}}), flush=True)
for line in sys.stdin:  # the served protocol: one answer per command
    command = line.split()[0]
    if command == "quit":
        break
    if os.environ.get("FAKE_CRASH"):
        sys.stderr.write("Traceback (most recent call last):\\nRuntimeError: out of memory\\n")
        sys.exit(3)
    print("a warning between answers")
    print(MARKER, json.dumps({"seconds": {"inference": 0.25, "train": 0.5}[command]}), flush=True)
"""


@pytest.fixture(autouse=True)
def _no_cli_log_handler():
    """These tests read the script's own stderr lines: a CLI log handler that an earlier in-process
    ``irrepnet`` call left on the ``irrepnet`` logger would add the data generator's INFO lines."""
    import logging

    from irrepnet.cli_logging import LOGGER, _StderrHandler

    logger = logging.getLogger(LOGGER)
    left = [h for h in logger.handlers if isinstance(h, _StderrHandler)]
    for h in left:
        logger.removeHandler(h)
    yield
    for h in left:
        logger.addHandler(h)


@pytest.fixture(scope="module")
def bench():
    path = ROOT / "benchmarks" / "mace_vs_mace_torch.py"
    spec = importlib.util.spec_from_file_location("mace_vs_mace_torch_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture
def fake_worker(tmp_path):
    path = tmp_path / "fake_worker.py"
    path.write_text(FAKE_WORKER)
    return path


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)  # main() sets --threads


def irrepnet_parameters(bench) -> int:
    """What irrepnet's side counts for SMALL, computed here independently of main()."""
    args = bench.parser().parse_args(["--python", "x", *SMALL])
    spec, _, edge_index, arrays, z_table = bench.make_batch(args.batch, args.cutoff, torch.float32)
    model = bench.build_irrepnet(bench.model_options(args, 1.0, z_table), spec)
    return sum(p.numel() for p in model.parameters())


def test_worker_output_is_the_last_marker_line(bench):
    text = "\n".join(
        [
            "cuequivariance or cuequivariance_torch is not available.",
            'MACE_TORCH_WORKER_JSON {"parameters": 1}',
            "some warning",
            'MACE_TORCH_WORKER_JSON {"parameters": 90032, "train_step": {"median": 0.15}}',
            "",
        ]
    )
    assert bench.parse_worker_output(text) == {"parameters": 90032, "train_step": {"median": 0.15}}
    with pytest.raises(bench.WorkerError, match=r"printed no MACE_TORCH_WORKER_JSON line \(its last output: a \| b\)"):
        bench.parse_worker_output("a\nb\n")
    with pytest.raises(bench.WorkerError, match="is not JSON"):
        bench.parse_worker_output("MACE_TORCH_WORKER_JSON {parameters: 1}")
    with pytest.raises(bench.WorkerError, match="holds a list"):
        bench.parse_worker_output("MACE_TORCH_WORKER_JSON [1, 2]")


def test_size_mismatch_within_one_percent_passes_and_beyond_names_the_blocks(bench):
    assert bench.size_mismatch(80_856, 80_816, {}, {}) is None  # +0.05 %
    assert bench.size_mismatch(1010, 1000, {}, {}) is None  # exactly 1 %
    line = bench.size_mismatch(
        80_856, 90_032, {"product basis": 5_376, "skip": 8_192}, {"product basis": 14_592, "skip": 8_192}
    )
    assert "\n" not in line
    assert "80,856" in line and "90,032" in line and "-10.2 %" in line
    assert "product basis 5,376 vs 14,592" in line and "--original-basis" in line
    assert "skip 8,192" not in line  # equal blocks are not blamed


def test_a_path_that_is_not_a_python_is_refused_in_one_line(bench, tmp_path):
    with pytest.raises(bench.WorkerError, match="no such file") as missing:
        bench.check_python(str(tmp_path / "nope" / "python"))
    assert "python3 -m venv" in str(missing.value)
    shell = tmp_path / "not-python"
    shell.write_text("#!/bin/sh\necho hello\n")
    shell.chmod(0o755)
    with pytest.raises(bench.WorkerError, match="is not a Python interpreter") as exc:
        bench.check_python(str(shell))
    assert "\n" not in str(exc.value)
    text = tmp_path / "notes.txt"
    text.write_text("not a program\n")  # not executable: the OSError path
    with pytest.raises(bench.WorkerError, match="is not a Python interpreter"):
        bench.check_python(str(text))


@pytest.mark.skipif(module_available("mace"), reason="this interpreter has mace; the test needs one without")
def test_a_python_without_mace_is_told_how_to_make_the_venv(bench, capsys):
    with pytest.raises(bench.WorkerError) as exc:
        bench.check_python(sys.executable)
    message = str(exc.value)
    assert message.startswith(f"mace is not importable by {sys.executable} (ModuleNotFoundError")
    assert "python3 -m venv" in message and "mace-torch==0.3.16" in message
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1" in message and "\n" not in message
    assert bench.main(["--python", sys.executable, *SMALL]) == 1  # and main() says so, in one line
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: mace is not importable") and "\n" not in err


def test_unequal_sizes_are_refused_with_exit_2(bench, fake_worker, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FAKE_PARAMETERS", str(2 * irrepnet_parameters(bench)))
    code = bench.main(["--python", sys.executable, "--worker", fake_worker, *SMALL, "--out", tmp_path / "out"])
    assert code == bench.REFUSED == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("refusing to compare: irrepnet's mace has ")
    assert len(captured.err.strip().splitlines()) == 1
    assert "-50.0 %" in captured.err and "radial MLP" in captured.err  # the block the fake reports differs
    assert not (tmp_path / "out").exists()  # nothing timed, nothing written


def test_equal_sizes_are_timed_and_the_ratio_comes_from_both_sides(bench, fake_worker, monkeypatch, capsys, tmp_path):
    ours = irrepnet_parameters(bench)
    monkeypatch.setenv("FAKE_PARAMETERS", str(ours + 1))
    out = tmp_path / "out"
    argv = ["--python", sys.executable, "--worker", fake_worker, *SMALL, "--repeats", "2", "--warmup", "1"]
    assert bench.main([*argv, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert f"parameters: irrepnet mace {ours:,}, mace-torch MACE {ours + 1:,}" in printed
    result = json.loads((out / "mace_vs_mace_torch.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["mace_vs_mace_torch.json", "mace_vs_mace_torch.md"]
    assert result["irrepnet"]["parameters"] == ours and result["mace_torch"]["parameters"] == ours + 1
    for kind in ("inference", "train_step"):
        mine = result["irrepnet"][kind]
        assert len(mine["all"]) == 2 and mine["min"] <= mine["median"] <= mine["max"]
        fake = {"inference": 0.25, "train_step": 0.5}[kind]  # what the fake answers each call
        assert result["mace_torch"][kind]["all"] == [fake, fake]
        assert result["ratio"][kind] == pytest.approx(mine["median"] / fake)
    assert result["batch"]["graphs"] == 2 and result["batch"]["edges"] > 0
    assert result["options"]["avg_num_neighbors"] == pytest.approx(result["batch"]["edges"] / result["batch"]["nodes"])
    md = (out / "mace_vs_mace_torch.md").read_text()
    assert "| ratio irrepnet / mace-torch |" in md and "e3nn 0.4.4" in md and result["provenance"]["commit"] in md


def test_a_worker_that_dies_while_timing_is_reported_in_one_line(bench, fake_worker, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_PARAMETERS", str(irrepnet_parameters(bench)))
    monkeypatch.setenv("FAKE_CRASH", "1")
    assert bench.main(["--python", sys.executable, "--worker", fake_worker, *SMALL, "--repeats", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: the mace-torch worker failed (exit 3): RuntimeError: out of memory"


def test_the_batch_export_holds_the_same_graph_the_model_builds(bench):
    args = bench.parser().parse_args(["--python", "x", *SMALL, "--batch", "5"])
    spec, batch, edge_index, arrays, z_table = bench.make_batch(args.batch, args.cutoff, torch.float64)
    assert z_table == [1, 6, 7, 8]
    assert set(arrays["atomic_numbers"].tolist()) <= set(z_table)
    assert arrays["num_nodes"].sum() == arrays["positions"].shape[0] == len(arrays["atomic_numbers"])
    # the edges are exactly the pairs closer than the cutoff within a molecule, from an independent count
    pos, sizes = torch.as_tensor(arrays["positions"]), arrays["num_nodes"].tolist()
    expected, start = set(), 0
    for n in sizes:
        d = torch.cdist(pos[start : start + n], pos[start : start + n])
        expected |= {(start + j, start + i) for i in range(n) for j in range(n) if i != j and d[i, j] < args.cutoff}
        start += n
    assert set(map(tuple, arrays["edge_index"].T.tolist())) == expected
    assert arrays["shifts"].shape == (len(expected), 3) and not arrays["shifts"].any()
    model = bench.build_irrepnet(bench.model_options(args, 3.0, z_table), spec)
    prepared = bench.graph_prepared(model, batch, edge_index)  # raises if the model's own graph differed
    assert model.to(torch.float64)(prepared)["forces"].shape == (len(arrays["positions"]), 3)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("IRREPNET_MACE_TORCH_PYTHON"),
    reason="set IRREPNET_MACE_TORCH_PYTHON to the python of a venv with mace-torch (see the script's docstring)",
)
def test_against_the_real_mace_torch(bench, capsys, tmp_path):
    python = os.environ["IRREPNET_MACE_TORCH_PYTHON"]
    # big enough that irrepnet's few extra weights (Bessel frequencies, a constant input) stay under 1 %
    size = ["--channels", "8", "--max-ell", "2", "--correlation", "2", "--batch", "2", "--radial-neurons", "16"]
    assert bench.main(["--python", python, *size, "--repeats", "2", "--warmup", "1", "--out", tmp_path]) == 0
    result = json.loads((tmp_path / "mace_vs_mace_torch.json").read_text())
    assert result["mace_torch"]["versions"]["e3nn"].startswith("0.4")
    assert result["mace_torch"]["blocks"]["radial MLP"] == result["irrepnet"]["blocks"]["radial MLP"]
