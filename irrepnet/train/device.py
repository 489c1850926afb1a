"""Device choice and memory measurement.

``auto`` picks CUDA, then Apple's MPS, then the CPU. Peak memory is the CUDA
allocator's peak on a GPU and the process's peak resident set size on the CPU
(reset between measurements through ``/proc/self/clear_refs`` where Linux allows it).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``torch.device`` for ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``), with a clear error when absent."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here; use --device cpu or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} requested but MPS is not available here; use --device cpu or auto")
    return dev


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory measurement (best effort on the CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # "5" resets the peak RSS (VmHWM) of this process; Linux >= 4.0
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """``(megabytes, kind)``: CUDA allocator peak (``"cuda"``) or process peak RSS (``"rss"``)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda"
    hwm = _vm_hwm_mb()
    if hwm is not None:
        return hwm, "rss"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak / 2**20 if sys.platform == "darwin" else peak / 1024.0), "rss"


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
