"""Data-parallel training: ``torchrun --nproc-per-node 2 -m irrepnet train`` (gloo, CPU) takes the
same steps as one process on the same global batch, and resumes under torchrun."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from irrepnet.train import distributed

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [
    "train",
    "--model",
    "radial-field",
    "--task",
    "twelve_body",
    "--history",
    "2",
    "--dtype",
    "float64",
    "--set",
    "progress=false",
    "--threads",
    "1",
    "--model-set",
    "hidden=8",
    "--model-set",
    "layers=1",
    "--set",
    "warmup_steps=2",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _irrepnet(*args, ranks: int = 1, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if ranks > 1:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            str(ranks),
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(_free_port()),
            "-m",
            "irrepnet",
            *args,
        ]
    else:
        cmd = [sys.executable, "-m", "irrepnet", *args]
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def _weights(path: Path):
    return torch.load(path, weights_only=True)["model_state"]


def _max_difference(a: Path, b: Path) -> float:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def test_two_ranks_equal_one_process(tmp_path):
    args = [*TRAIN, "--batch-size", "10", "--epochs", "2", "--set", "steps_per_epoch=3"]
    two = _irrepnet(*args, "--out", "two", ranks=2, cwd=tmp_path)
    _irrepnet(*args, "--out", "one", cwd=tmp_path)
    assert "on 2 ranks (DistributedDataParallel)" in two.stdout
    assert two.stdout.count("done:") == 1  # rank 0 alone reports and writes
    assert _max_difference(tmp_path / "one" / "last.pt", tmp_path / "two" / "last.pt") < 1e-10
    one_log = (tmp_path / "one" / "log.jsonl").read_text().splitlines()
    two_log = (tmp_path / "two" / "log.jsonl").read_text().splitlines()
    assert len(one_log) == len(two_log) == 2  # epochs 1 and 2 ...
    for a, b in zip(one_log, two_log):  # ... and the same losses
        ra, rb = json.loads(a), json.loads(b)
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-9, abs=0)
        assert ra["valid_loss"] == pytest.approx(rb["valid_loss"], rel=1e-9)
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["ranks"] == 2


def test_uneven_parts_and_resume_under_torchrun(tmp_path):
    # a global batch of 7 splits 4 + 3; the loss weights make it one process's step all the same.
    # Resumed at an epoch's end with more epochs: a constant learning rate (cosine follows the total).
    args = [*TRAIN, "--batch-size", "7", "--set", "steps_per_epoch=3", "--set", "schedule=constant"]
    _irrepnet(*args, "--epochs", "1", "--out", "two", ranks=2, cwd=tmp_path)
    _irrepnet(*args, "--epochs", "2", "--out", "two", "--resume", ranks=2, cwd=tmp_path)
    _irrepnet(*args, "--epochs", "2", "--out", "one", cwd=tmp_path)
    assert _max_difference(tmp_path / "one" / "last.pt", tmp_path / "two" / "last.pt") < 1e-10


def test_local_part_covers_the_batch():
    idx = torch.arange(7)
    parts = [distributed.local_part(idx, distributed.DistributedContext(r, 3)) for r in range(3)]
    assert torch.equal(torch.cat(parts), idx) and [len(p) for p in parts] == [3, 2, 2]
    assert distributed.local_part(idx) is idx  # one process: the whole batch


def test_bench_under_torchrun_gives_one_process_rows(tmp_path):
    args = [
        "bench",
        "--task",
        "twelve_body",
        "--models",
        "radial-field,mlp",
        "--epochs",
        "1",
        "--max-steps",
        "4",
        "--batch-size",
        "10",
        "--dtype",
        "float64",
        "--set",
        "progress=false",
        "--threads",
        "1",
    ]
    two = _irrepnet(*args, "--out", "two", ranks=2, cwd=tmp_path)
    _irrepnet(*args, "--out", "one", cwd=tmp_path)
    assert two.stdout.count("wrote ") == 1
    rows = {}
    for run in ("one", "two"):
        res = json.loads((tmp_path / run / "results.json").read_text())
        rows[run] = {r["name"]: r for r in res["groups"][0]["rows"]}
    assert rows["one"].keys() == rows["two"].keys()
    for name, row in rows["one"].items():
        other = rows["two"][name]
        assert other["metrics"]["test_mse"] == pytest.approx(row["metrics"]["test_mse"], rel=1e-9), name
        for key in ("lo", "hi"):
            assert other["intervals"]["test_mse"][key] == pytest.approx(row["intervals"]["test_mse"][key], rel=1e-9)


def test_the_unrolled_loss_is_refused_under_torchrun(monkeypatch):
    from irrepnet.registry import ConfigError
    from irrepnet.tasks import load_task
    from irrepnet.train import TrainConfig, make_trainer

    monkeypatch.setattr(distributed, "current", lambda: distributed.DistributedContext(0, 2))
    task = load_task("twelve_body", history=2)
    with pytest.raises(ConfigError, match="not supported under torchrun"):
        make_trainer("radial-field", task, TrainConfig(unroll_steps=2, progress=False), {"hidden": 8, "layers": 1})
