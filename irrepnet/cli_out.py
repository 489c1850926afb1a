"""Output folders of the ``irrepnet`` commands: new, resumed or replaced only when asked, and locked.

A run never overwrites an earlier one unless ``--overwrite`` says so, and two runs never
share a folder (:mod:`irrepnet.runlock`). Standard library only at import time.
"""

from __future__ import annotations

from pathlib import Path


def fresh_dir(path: Path) -> Path:
    """``path`` if unused, else ``path-1``, ``path-2``...: a run never overwrites an earlier one."""
    if not path.exists() or not any(path.iterdir()):
        return path
    i = 1
    while (path.parent / f"{path.name}-{i}").exists():
        i += 1
    return path.parent / f"{path.name}-{i}"


def lock_out(path: Path) -> None:
    """Take ``--out``'s run lock (:mod:`irrepnet.runlock`; again: a no-op); the CLI's ``main`` releases it.

    Under torchrun rank 0 takes it, and a refusal ends every rank.
    """
    from .runlock import FolderLocked, RunLock
    from .train import distributed

    ctx = distributed.current()
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"--out {path} is a file, not a folder; give a folder path for --out")
    refused = None
    if ctx.is_main:
        try:
            RunLock(path).acquire()
        except FileExistsError as exc:
            refused = exc
    if ctx.any(refused is not None):
        raise refused or FolderLocked(f"--out {path} is in use by another run (see rank 0's error)")


def prepare_out(path: Path, *, resume: bool, overwrite: bool, what: str) -> Path:
    """The output folder of a run: locked, then new, resumed, or replaced only when asked.

    The lock (:mod:`irrepnet.runlock`) comes first, so that of two runs started together
    into one folder the second stops here, before it can replace or write anything; ``main``
    releases it when the command ends. Under torchrun rank 0 takes it and every rank checks
    the folder (so that a refusal ends all of them alike) before rank 0 alone replaces or
    creates it.
    """
    import shutil

    from .runlock import LOCK_NAME
    from .train import distributed

    ctx = distributed.current()
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other; pick one")
    lock_out(path)
    others = [p for p in path.iterdir() if p.name != LOCK_NAME]
    replace = False
    if others:
        if resume:
            return path
        if not overwrite:
            raise FileExistsError(
                f"{path} already holds a {what}; pass --resume to continue it, --overwrite to "
                f"replace it, or choose another --out"
            )
        replace = True
    elif resume:
        raise FileNotFoundError(f"nothing to resume in {path}; run without --resume first")
    ctx.barrier()
    if ctx.is_main and replace:
        for item in others:  # everything but the lock
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    ctx.barrier()
    return path
