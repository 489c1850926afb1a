"""Checkpoints written atomically and read safely.

A checkpoint is written to a temporary file in the same folder, flushed to disk and
then renamed over the old one (``os.replace`` is atomic on POSIX and Windows), so a
crash or a kill mid-write leaves the previous checkpoint intact. It holds only
tensors and plain Python values, so it loads with ``torch.load(weights_only=True)``:
opening a checkpoint never runs code from the file.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

FORMAT = "irrepnet.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable irrepnet checkpoint."""


def save_atomic(obj: dict[str, Any], path) -> Path:
    """Write ``obj`` (tensors and plain values) to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **obj}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path, map_location="cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_atomic` (``weights_only=True``: no code is run)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt")) or ["best.pt"]
        files = " or ".join(str(path / name) for name in found)
        raise FileNotFoundError(f"checkpoint {path} is a folder; pass a checkpoint file in it: {files}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's refusal is seven lines and suggests the unsafe way
        what = re.search(r"GLOBAL (\S+)", str(exc))
        raise CheckpointError(
            f"{path} is refused: it holds Python objects ({what.group(1) if what else 'beyond tensors'}) that "
            "an irrepnet checkpoint never holds, and loading them could run code; it was not loaded"
        ) from None
    except Exception as exc:  # a truncated or foreign file: say so in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"{path} is not a readable irrepnet checkpoint ({type(exc).__name__}: {first})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an irrepnet checkpoint (no format tag {FORMAT!r})")
    if obj.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {obj.get('version')!r}; this irrepnet reads {VERSION}")
    return obj
