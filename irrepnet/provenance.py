"""Where a published number came from: the commit, the machine and the software.

Every result the project publishes (``benchmarks/results/``, the README tables)
carries :func:`provenance`, so a reader can tell which code on which machine
produced it.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path


def _git(args, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(path: Path | None = None) -> dict[str, object]:
    """``{"commit", "dirty", "dirty_files"}`` of the checkout holding ``path`` (this package by default).

    ``dirty_files`` lists tracked files with uncommitted changes, so a result made from
    a dirty tree says which files differed from ``commit``.
    """
    cwd = Path(path) if path else Path(__file__).resolve().parent
    sha = _git(["rev-parse", "HEAD"], cwd)
    if sha is None:
        return {"commit": None, "dirty": None, "dirty_files": []}
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    # porcelain lines are "XY path"; _git stripped the first line's leading space, so split on whitespace
    changed = [line.split(None, 1)[1] for line in (status or "").splitlines() if line.strip()]
    return {"commit": sha, "dirty": bool(changed), "dirty_files": changed}


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` or :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> str:
    """One line naming the hardware, e.g. ``"Intel(R) Xeon(R) Processor, 2 cores"`` or the GPU's name."""
    import torch

    text = f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        text = f"{torch.cuda.get_device_name(torch.device(device))} (host: {text})"
    return text


def provenance(device: str = "cpu") -> dict[str, object]:
    """Commit, machine, software versions and the time, as a JSON-ready dict."""
    import e3nn
    import torch

    from . import __version__

    info = {
        "irrepnet": __version__,
        **git_commit(),
        "machine": machine(device),
        "device": str(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "e3nn": e3nn.__version__,
        "torch_threads": torch.get_num_threads(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    try:
        info["load_average"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info
