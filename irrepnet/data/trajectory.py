"""Trajectory files in the dmol-book format: one npz with a single array ``arr``.

The 12-body task of the dmol-book chapter "Equivariant neural networks with e3nn"
(A. D. White, *Deep Learning for Molecules and Materials*, applied/e3nn_traj) reads
``data/paths.npz`` from the book's repository: ``arr`` of shape ``(T, N, 2)`` (2-D,
the chapter appends ``z = 0``). This module reads and writes that format and pads
2-D coordinates to 3-D, because every field of a batch is a 3-vector (``1o``).

The dmol file is CC BY-NC 3.0: irrepnet never ships it. Users download it
themselves; :func:`verify_dmol_file` checks that what they got is the file the
published numbers were measured on.

Shapes
------
file: ``arr (T, N, 2)`` or ``(T, N, 3)``, any float dtype.
returned / written: ``(T, N, 3)`` float64.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

#: sha256 of the dmol-book ``data/paths.npz`` (2048 frames, 12 beads, 2-D).
DMOL_SHA256 = "502d6085c40c3e5a0edaad076a54f418d12cf13a4eb00387fdba30de9b7aec3e"

#: where users get the dmol file; it is not redistributable, so we only point at it.
DMOL_SOURCE = (
    "the dmol-book GitHub repository (https://github.com/whitead/dmol-book), file "
    "`data/paths.npz`, licence CC BY-NC 3.0 (non-commercial; irrepnet does not "
    "redistribute it)"
)

ARRAY_KEY = "arr"


#: where :func:`find_dmol_file` looks when ``$IRREPNET_DMOL_FILE`` is unset: the
#: ``shared/data`` folder beside the repository checkout
DEFAULT_DMOL_LOCATION = Path(__file__).resolve().parents[3] / "shared" / "data" / "paths.npz"


def find_dmol_file() -> Path | None:
    """The dmol-book ``paths.npz`` if it can be found, else ``None`` (irrepnet never ships it).

    Looks at ``$IRREPNET_DMOL_FILE``, then :data:`DEFAULT_DMOL_LOCATION`. Only existence
    is checked here; loaders verify the content.
    """
    env = os.environ.get("IRREPNET_DMOL_FILE")
    path = Path(env) if env else DEFAULT_DMOL_LOCATION
    return path if path.is_file() else None


def file_sha256(path: PathLike) -> str:
    """Hex sha256 of a file, read in chunks so large files do not fill memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_dmol_file(path: PathLike) -> bool:
    """``True`` when ``path`` is byte-for-byte the dmol-book ``paths.npz``."""
    return file_sha256(path) == DMOL_SHA256


def verify_dmol_file(path: PathLike) -> str:
    """Check that ``path`` is the dmol-book ``paths.npz``; return its sha256.

    Raises
    ------
    FileNotFoundError
        the file does not exist (the message says where to download it).
    ValueError
        the hash differs: a truncated download, another version, or another file.
    """
    path = _existing(path)
    digest = file_sha256(path)
    if digest != DMOL_SHA256:
        raise ValueError(
            f"{path} is not the dmol-book paths.npz: its sha256 is {digest}, expected "
            f"{DMOL_SHA256}. Re-download it from {DMOL_SOURCE}, or pass expect_dmol=False "
            "if this is deliberately another trajectory."
        )
    return digest


def _existing(path: PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"trajectory file not found: {p}. The 12-body trajectory is {DMOL_SOURCE}; "
            "download it and pass its path, or use irrepnet.data.simulate_polymer() "
            "to generate a similar trajectory."
        )
    if p.is_dir():
        raise FileNotFoundError(f"{p} is a directory; pass the path of the .npz file itself")
    return p


def check_trajectory(arr: np.ndarray, name: str = "trajectory") -> np.ndarray:
    """Validate a ``(T, N, 2|3)`` array and return it as ``(T, N, 3)`` float64.

    2-D coordinates get a zero ``z`` column, as in the dmol-book chapter.

    Raises
    ------
    ValueError
        wrong number of dimensions, last dimension not 2 or 3, non-numeric dtype,
        NaN or Inf values, fewer than 2 frames (no target exists) or no particles.
    """
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must have shape (T, N, 2) or (T, N, 3) (frames, particles, coordinates), "
            f"got {arr.ndim} dimensions with shape {arr.shape}"
        )
    T, N, D = arr.shape
    if D not in (2, 3):
        raise ValueError(f"{name} last dimension must be 2 (x, y) or 3 (x, y, z) coordinates, got shape {arr.shape}")
    if T < 2:
        raise ValueError(
            f"{name} has T={T} frame(s); at least 2 are needed (a sample at frame t needs frame t+1 as its target)"
        )
    if N < 1:
        raise ValueError(f"{name} has no particles (shape {arr.shape})")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad_frames = np.unique(np.nonzero(~finite)[0])
        raise ValueError(
            f"{name} contains {int((~finite).sum())} NaN or Inf values (first bad frames: "
            f"{bad_frames[:5].tolist()}); clean or truncate the trajectory before loading it"
        )
    if D == 2:
        arr = np.concatenate([arr, np.zeros((T, N, 1))], axis=-1)
    return np.ascontiguousarray(arr)


#: suffixes always read as numpy files (a ``.npy`` is refused as not an ``.npz``, not sent to ASE)
NUMPY_SUFFIXES = (".npz", ".npy")


def load_trajectory(path: PathLike, *, expect_dmol: bool = False, time_step: float | None = None) -> np.ndarray:
    """Load a trajectory file: the dmol-book ``.npz`` format, or any file ``ase.io`` reads.

    Parameters
    ----------
    path : str or PathLike
        an ``.npz`` holding the key ``arr`` of shape ``(T, N, 2)`` or ``(T, N, 3)``; any
        other file (``.extxyz``, ``.xyz``, ``.traj``, a LAMMPS dump...) is read with ASE,
        every frame in order (:func:`irrepnet.data.ase_io.load_ase_trajectory`; needs
        ``pip install 'irrepnet[ase]'``).
    expect_dmol : bool
        if ``True``, first check that the file is the dmol-book ``paths.npz``
        (sha256 :data:`DMOL_SHA256`) and raise ``ValueError`` if it is not.
    time_step : float, optional
        ASE files only: checked (> 0) but not needed, since the positions are returned alone.

    Returns
    -------
    numpy.ndarray
        ``(T, N, 3)`` float64 positions; 2-D files are padded with ``z = 0``.

    Raises
    ------
    FileNotFoundError
        the file does not exist; the message says where to download the dmol file.
    ValueError
        not an npz archive, no ``arr`` key (the message lists the keys present), an ASE
        file whose atom count or atomic numbers change between frames,
        an array that :func:`check_trajectory` rejects, one without motion (every frame
        the same) or with coordinates beyond :data:`MAX_COORDINATE`.
    """
    p = _existing(path)
    if expect_dmol:
        verify_dmol_file(p)
    if p.suffix.lower() not in NUMPY_SUFFIXES and not zipfile.is_zipfile(p):
        from .ase_io import load_ase_trajectory  # ASE is optional: imported only for its files

        return load_ase_trajectory(p, time_step=time_step, velocities=False).positions
    if not zipfile.is_zipfile(p):
        raise ValueError(
            f"{p} is not an .npz archive (numpy.savez format); trajectory files hold one "
            f"array under the key {ARRAY_KEY!r}, write them with irrepnet.data.save_trajectory"
        )
    try:
        with np.load(p, allow_pickle=False) as f:
            keys = list(f.files)
            if ARRAY_KEY not in keys:
                raise ValueError(
                    f"{p} has no array {ARRAY_KEY!r}; it has keys {keys}. Trajectory files hold "
                    f"the (T, N, 2|3) positions under {ARRAY_KEY!r}: np.savez(path, arr=positions)"
                )
            arr = f[ARRAY_KEY]
    except (zipfile.BadZipFile, OSError, EOFError) as e:  # corrupt archive or member
        raise ValueError(f"{p} is not a readable .npz archive ({type(e).__name__}: {e})") from None
    arr = check_trajectory(arr, name=f"{p}[{ARRAY_KEY!r}]")
    _check_usable(arr, p)
    return arr


#: largest coordinate accepted from a file: float32 squares of distances overflow (3.4e38) near 1e19
MAX_COORDINATE = 1e15


def _check_usable(arr: np.ndarray, p: Path) -> None:
    """Refuse a file that would train on nothing or overflow, before any training is spent on it."""
    if np.array_equal(arr, np.broadcast_to(arr[:1], arr.shape)):
        raise ValueError(
            f"{p} has no motion: all {arr.shape[0]} frames hold the same positions, so there is no "
            "displacement to learn or score; give a trajectory whose frames differ"
        )
    largest = float(np.abs(arr).max())
    if largest > MAX_COORDINATE:
        raise ValueError(
            f"{p} has coordinates up to {largest:.3g}: squared distances overflow float32 beyond about "
            f"1e19; give positions in a unit where they stay below {MAX_COORDINATE:.0e} (for example "
            "divided by the bond length)"
        )


def save_trajectory(path: PathLike, arr: np.ndarray, *, overwrite: bool = False, compressed: bool = False) -> Path:
    """Write ``arr`` as a dmol-format trajectory file (``np.savez(path, arr=arr)``).

    The array is checked and written as given (2-D stays 2-D), so a file written
    here loads back with :func:`load_trajectory` unchanged after 3-D padding.
    The write is atomic (temporary file, then ``os.replace``) so an interrupted
    run never leaves a half-written file under the final name.

    Parameters
    ----------
    path : str or PathLike
        destination; ``.npz`` is appended if missing, as numpy does.
    arr : numpy.ndarray
        ``(T, N, 2)`` or ``(T, N, 3)``.
    overwrite : bool
        replace an existing file; otherwise refuse with ``FileExistsError``.
    compressed : bool
        ``np.savez_compressed`` instead of ``np.savez``.

    Returns
    -------
    pathlib.Path
        the path written.
    """
    p = Path(path).expanduser()
    if p.suffix != ".npz":
        p = p.with_name(p.name + ".npz")
    arr = np.asarray(arr)
    check_trajectory(arr, name="array to save")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} already exists; pass overwrite=True to replace it")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(f, **{ARRAY_KEY: arr})
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
