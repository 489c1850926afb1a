"""What data a task was loaded from, as plain values a checkpoint can keep.

A checkpoint that does not know its data invites two silent mistakes (issue 25): a
``--resume`` on another file mixes two data sets and picks its best epoch by comparing
validation losses across them, and an audit of a trained model runs on the default
trajectory instead of the one it was trained on. So :func:`irrepnet.tasks.load_task`
describes its data here, the training loop stores the description in every checkpoint,
and resuming or auditing compares it with the data at hand.

An identity is a dict of plain values:

``kind``
    ``"file"`` (a trajectory file), ``"folder"`` (qm9's raw files), ``"reference"``
    (the shipped reference trajectory) or ``"generated"`` (a simulator or generator).
``path``, ``abspath``
    the path as the user gave it and where it was then; ``None`` without a file.
``size``, ``sha256``
    the bytes: of the file; of the folder's files (sizes summed, sha256 of their
    sha256s); for generated data ``sha256`` is that of the generator's config and seeds
    (``generator``), written as canonical JSON, and ``size`` is ``None``.
``load``
    the :func:`~irrepnet.tasks.load_task` arguments that load the same data again
    (``data``, and the split sizes of generated tasks); the task's own options
    (history, bonds, target) are in the checkpoint's task record.

Two identities are the same data when their ``sha256`` agree: a file that was
moved or copied is still the same data, a file rewritten in place is not.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .trajectory import file_sha256

#: identity kinds whose data is a path the user gave (and that can go missing)
PATH_KINDS = ("file", "folder")


def _canonical_sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def file_identity(path, *, load: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Identity of the data file ``path`` (as given); ``load`` defaults to ``{"data": path}``."""
    p = Path(path)
    return {
        "kind": "file",
        "path": str(path),
        "abspath": str(p.resolve()),
        "size": p.stat().st_size,
        "sha256": file_sha256(p),
        "load": dict(load) if load is not None else {"data": str(path)},
    }


def folder_identity(path, files: Iterable, *, load: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Identity of the folder ``path`` (as given) through the ``files`` in it that are read."""
    p = Path(path)
    files = sorted(Path(f) for f in files)
    digests = {f.name: file_sha256(f) for f in files}
    return {
        "kind": "folder",
        "path": str(path),
        "abspath": str(p.resolve()),
        "size": sum(f.stat().st_size for f in files),
        "sha256": _canonical_sha256(digests),
        "files": digests,
        "load": dict(load) if load is not None else {"data": str(path)},
    }


def reference_identity(path, sha256: str) -> dict[str, Any]:
    """Identity of the shipped reference file at ``path`` (pinned by ``sha256``, verified when it loads)."""
    return {
        "kind": "reference",
        "path": None,
        "abspath": str(Path(path).resolve()),
        "size": Path(path).stat().st_size,
        "sha256": sha256,
        "load": {"data": None},
    }


def generated_identity(generator: Mapping[str, Any], *, load: Mapping[str, Any]) -> dict[str, Any]:
    """Identity of generated data: ``generator`` holds every config value and seed that makes it."""
    generator = json.loads(json.dumps(generator, sort_keys=True, default=str))  # plain values only
    return {
        "kind": "generated",
        "path": None,
        "abspath": None,
        "size": None,
        "sha256": _canonical_sha256(generator),
        "generator": generator,
        "load": dict(load),
    }


def describe(identity: Mapping[str, Any] | None) -> str:
    """A short phrase naming the data of ``identity``, for one-line messages."""
    if not identity:
        return "unrecorded data"
    short = str(identity.get("sha256", ""))[:12]
    kind = identity.get("kind")
    if kind in PATH_KINDS:
        return f"{identity['path']} (sha256 {short}..., {identity['size']} bytes)"
    if kind == "reference":
        return f"the shipped reference trajectory (sha256 {short}...)"
    generator = identity.get("generator", {})
    name = generator.get("name", "generated data")
    return f"{name} (generator config and seeds sha256 {short}...)"


def same_data(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two identities describe the same bytes (or the same generator config and seeds)."""
    return a.get("sha256") == b.get("sha256")


def data_option(identity: Mapping[str, Any]) -> str:
    """How the user names this data again on the command line: ``--data PATH``, or no ``--data``."""
    data = identity.get("load", {}).get("data")
    return f"--data {data}" if data is not None else "no --data"


def recorded_location(identity: Mapping[str, Any]) -> str | None:
    """The ``data`` argument that reloads the recorded data: the absolute path it had if
    it is still there (a relative path may name another file from another folder), else
    the path as given; for the reference and generated data, their recorded ``data``.

    Raises
    ------
    FileNotFoundError
        the recorded file or folder is gone from both places.
    """
    data = identity.get("load", {}).get("data")
    if identity.get("kind") not in PATH_KINDS:
        return data
    for candidate in (identity.get("abspath"), identity.get("path")):
        if candidate and os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(f"the recorded data {identity.get('path')} no longer exists; pass --data with that data")


def split_generator(name: str, splits: Mapping[str, Any], **config: Any) -> dict[str, Any]:
    """The generator record of generated ``splits`` (``{"train": dataset, ...}``): ``name``,
    ``config`` and each split's size and ``seed`` attribute."""
    return {
        "name": name,
        **config,
        "splits": {s: {"n": len(ds), "seed": getattr(ds, "seed", None)} for s, ds in splits.items()},
    }
