"""One run per output folder: irrepnet.runlock and the commands that take it (issue 25, item 3)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from irrepnet.cli import main
from irrepnet.runlock import LOCK_NAME, FolderLocked, RunLock

_HOLD = (
    "import sys, time\n"
    "from irrepnet.runlock import RunLock\n"
    "RunLock(sys.argv[1]).acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock of ``tmp_path / 'out'`` (stdlib only: starts fast)."""
    folder = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(folder: Path, pid: int, host: str | None = None, started: str = "2026-01-01 00:00:00 UTC") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "host": host or socket.gethostname(), "started": started}
    (folder / LOCK_NAME).write_text(json.dumps(record))


def test_second_lock_is_refused_naming_the_holder(holder):
    folder, proc = holder
    with pytest.raises(FolderLocked, match=rf"in use by another run \(pid {proc.pid} on {socket.gethostname()}"):
        RunLock(folder).acquire()


def test_lock_is_released_on_exit_and_on_sigterm(tmp_path, holder):
    folder, proc = holder
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == -signal.SIGTERM  # ends as SIGTERM would, after releasing
    assert not (folder / LOCK_NAME).exists()
    with RunLock(folder) as lock:
        assert (folder / LOCK_NAME).exists() and lock.held
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (folder / LOCK_NAME).exists()


def test_refused_or_released_run_leaves_no_folder_it_made(tmp_path):
    folder = tmp_path / "new" / "out"
    RunLock(folder).acquire().release()
    assert not folder.exists()


def test_stale_lock_of_a_dead_pid_is_taken_over_with_a_notice(tmp_path, caplog):
    folder = tmp_path / "out"
    pid = _dead_pid()
    _write_lock(folder, pid)
    with caplog.at_level("WARNING", logger="irrepnet.runlock"), RunLock(folder):
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert [r.getMessage() for r in caplog.records] == [
        f"--out {folder}: taking over the stale lock of a run that is gone (pid {pid} on {socket.gethostname()}, "
        "since 2026-01-01 00:00:00 UTC)"
    ]


def test_killed_holder_leaves_a_stale_lock_that_is_taken_over(holder):
    folder, proc = holder
    proc.kill()  # SIGKILL: no chance to release
    proc.wait()
    assert (folder / LOCK_NAME).exists()
    with RunLock(folder):
        pass


@pytest.mark.parametrize("pid", [os.getppid(), os.getpid()], ids=["taken-before-this-boot", "our-own"])
def test_lock_whose_pid_is_reused_is_stale(tmp_path, pid):
    # the pid is alive, but the lock dates from before this host booted (2000), or names this
    # very process, which does not hold it: not the run that took it
    folder = tmp_path / "out"
    _write_lock(folder, pid, started="2000-01-01 00:00:00 UTC")
    with RunLock(folder):
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_lock_of_another_host_is_honoured_with_the_way_out(tmp_path):
    folder = tmp_path / "out"
    _write_lock(folder, _dead_pid(), host="elsewhere")
    with pytest.raises(FolderLocked, match=rf"pid \d+ on elsewhere.*if that run is gone, delete {folder / LOCK_NAME}"):
        RunLock(folder).acquire()


def test_out_naming_a_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("x")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        RunLock(path).acquire()


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--model", "egnn", "--max-steps", "1"],
        ["bench", "--task", "twelve_body", "--models", "egnn", "--max-steps", "1"],
    ],
    ids=["train", "bench"],
)
def test_cli_refuses_a_folder_in_use(holder, capsys, argv):
    folder, proc = holder
    assert main([*argv, "--out", str(folder)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"irrepnet: error: --out {folder} is in use by another run (pid {proc.pid} on ")
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]  # nothing written beside it


def test_report_merge_refuses_a_folder_in_use(holder, capsys, tmp_path):
    folder, proc = holder
    assert main(["report", str(folder), "--merge", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"irrepnet: error: the merge folder {folder} is in use by another run (pid {proc.pid}")


def _together(argvs: list[list[str]], cwd: Path) -> list[tuple[int, int, str]]:
    """``(pid, exit status, stderr)`` of CLI processes started together."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "irrepnet", *a], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for a in argvs
    ]
    return [(p.pid, p.wait(timeout=600), p.communicate()[1].decode()) for p in procs]


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--model", "radial-field", "--max-steps", "2", "--out", "run"],
        [
            "bench",
            "--task",
            "twelve_body",
            "--models",
            "radial-field",
            "--max-steps",
            "2",
            "--seed",
            "0",
            "--out",
            "run",
        ],
    ],
    ids=["train", "bench"],
)
def test_two_runs_started_together_one_runs(tmp_path, argv):
    runs = _together([argv, argv], tmp_path)
    assert sorted(rc for _, rc, _ in runs) == [0, 2], [err for *_, err in runs]
    (winner, _, _), (_, _, err) = sorted(runs, key=lambda r: r[1])
    first = [line for line in err.splitlines() if line.startswith("irrepnet:")][0]
    assert first.startswith(f"irrepnet: error: --out run is in use by another run (pid {winner} on ")
    assert not (tmp_path / "run" / LOCK_NAME).exists()  # released by the winner
