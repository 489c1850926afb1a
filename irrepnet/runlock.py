"""One run per output folder: an exclusive lock file in ``--out``.

Two runs writing into one folder lose each other's results without an error (one
``results.json`` wins, ``log.jsonl`` interleaves two models), so ``train``, ``bench`` and
``report --merge`` take :class:`RunLock` on their folder before writing anything there.

The lock is the file ``LOCK_NAME`` (``.irrepnet.lock``), created atomically (``O_CREAT | O_EXCL``: of two
runs started together exactly one creates it) and holding the owner's pid, host, start
time and command. It is removed when the run ends: on return, on an exception, on
SIGTERM (which otherwise ends Python without running ``finally`` clauses) and at exit.

A lock whose owner is gone (``kill -9``, a power cut) is *stale*. On the same host a
dead pid proves it (as does a lock older than the host's last boot, whose pid may have been
given to another process since), and the lock is taken over with a one-line notice; a lock of another
host cannot be checked from here, so it is honoured and the error says how to clear it.

Standard library only, so that the CLI can use it before importing torch.
"""

from __future__ import annotations

import atexit
import calendar
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LOCK_NAME", "FolderLocked", "Holder", "RunLock", "release_all"]

LOCK_NAME = ".irrepnet.lock"  # hidden: listings of a results folder show the results

logger = logging.getLogger(__name__)

# a competitor that has created the file but not yet written it: how long to wait for its record
_WRITE_GRACE_S = 2.0


class FolderLocked(FileExistsError):
    """The output folder is in use by another run (a FileExistsError: the CLI's exit status 2)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: what the lock file records."""

    pid: int
    host: str
    started: str  # UTC, ISO 8601 to the second
    command: str = ""

    def describe(self) -> str:
        """``pid P on HOST, since TIME``: how an error names the holder."""
        return f"pid {self.pid} on {self.host}, since {self.started}"

    def is_alive(self) -> bool | None:
        """Whether the run that took the lock still runs: ``None`` (unknown) for another host.

        On this host a dead pid says no, and so does a lock taken before the host last
        booted (a live pid then belongs to another process that got the same number).
        """
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)  # signal 0: existence check only
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            pass
        boot = _boot_time()
        try:
            locked = calendar.timegm(time.strptime(self.started, "%Y-%m-%d %H:%M:%S UTC"))
        except ValueError:
            return True
        # taken before this host last booted: the process now under that pid only reuses the number
        return boot is None or locked >= boot - 60


def _boot_time() -> float | None:
    """When this host booted (seconds since the epoch), where ``/proc`` tells (Linux); else ``None``."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _read_holder(path: Path) -> Holder | None:
    """The lock's record, or ``None`` while it is empty or unreadable."""
    try:
        rec = json.loads(path.read_text())
        return Holder(int(rec["pid"]), str(rec["host"]), str(rec["started"]), str(rec.get("command", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


_held: list[RunLock] = []  # this process's locks, for release_all
_sigterm_guarded = False


def release_all() -> None:
    """Release every lock this process holds (the CLI calls it when a command ends)."""
    for lock in list(_held):
        lock.release()


atexit.register(release_all)


def _on_sigterm(signum, frame) -> None:
    release_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)  # then end as SIGTERM's default would


def _guard_sigterm() -> None:
    """SIGTERM's default action ends Python at once, past every ``finally``: release the locks first.

    Only where SIGTERM has its default action; a handler that someone installed returns
    into the program, whose ``finally`` clauses then release. Training installs its own for
    the time it trains (checkpoint, then a clean exit) and restores this one after.
    """
    global _sigterm_guarded
    if _sigterm_guarded or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_guarded = True


def _unguard_sigterm() -> None:
    global _sigterm_guarded
    if _sigterm_guarded and threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _sigterm_guarded = False


class RunLock:
    """The lock of one output folder.

    Parameters
    ----------
    folder
        The output folder; made (with its parents) by :meth:`acquire` if missing, and
        removed again by :meth:`release` if it was made here and is still empty.
    option
        How the user named the folder, for the error message (``--out``).
    """

    def __init__(self, folder: Path | str, option: str = "--out"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.option = option
        self.held = False
        self._made_folder = False

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`FolderLocked` naming its holder."""
        for other in _held:
            if other.folder.resolve() == self.folder.resolve():
                return other  # this process holds it already
        if self.folder.exists() and not self.folder.is_dir():
            raise FileExistsError(f"{self.option} {self.folder} is a file, not a folder; give a folder path")
        if not self.folder.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._made_folder = True
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "command": " ".join(["irrepnet", *sys.argv[1:]])[:500],
        }
        for _ in range(5):  # each pass either creates the lock, takes over a stale one, or raises
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._handle_existing()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(record))
            self.held = True
            _held.append(self)
            _guard_sigterm()
            return self
        raise FolderLocked(f"{self.option} {self.folder}: could not take its lock {self.path}; try again")

    def _handle_existing(self) -> None:
        holder = _read_holder(self.path)
        deadline = time.monotonic() + _WRITE_GRACE_S
        while holder is None and self.path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # created by a competitor a moment ago, record not written yet
            holder = _read_holder(self.path)
        if not self.path.exists():
            return  # released meanwhile: try again
        if holder is None:
            raise FolderLocked(
                f"{self.option} {self.folder} holds an unreadable lock {self.path}; if no run uses "
                f"this folder, delete that file"
            )
        alive = holder.is_alive()
        if alive is False or holder.pid == os.getpid():  # our pid, yet not in _held: a run before us had it
            self._take_over(holder)
            return
        where = "" if alive else f"; if that run is gone, delete {self.path}"
        raise FolderLocked(
            f"{self.option} {self.folder} is in use by another run ({holder.describe()}){where}; "
            f"wait for it to finish or choose another {self.option}"
        )

    def _take_over(self, stale: Holder) -> None:
        # Move the stale file aside under a name of our own before deleting it: two runs that
        # both found it stale must not delete the fresh lock that one of them has just made.
        aside = self.path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another run took it over first
        if _read_holder(aside) != stale:  # moved a fresh lock: put it back, then report it
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            os.remove(aside)
            return
        os.remove(aside)
        logger.warning(
            "%s %s: taking over the stale lock of a run that is gone (%s)", self.option, self.folder, stale.describe()
        )

    def release(self) -> None:
        """Remove the lock if this run holds it (idempotent)."""
        if not self.held:
            return
        self.held = False
        if self in _held:
            _held.remove(self)
        holder = _read_holder(self.path)
        if holder is not None and holder.pid == os.getpid():
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        if self._made_folder:
            try:
                self.folder.rmdir()  # only if empty: a refused run leaves nothing behind
            except OSError:
                pass
        if not _held:
            _unguard_sigterm()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def others(self) -> list[Path]:
        """What the folder holds besides the lock."""
        return [p for p in self.folder.iterdir() if p.name != LOCK_NAME]
