"""On-disk cache of generated arrays, keyed by a hash of everything that made them.

Simulated datasets are deterministic functions of their parameters, so the cache
key is a sha256 of the parameters (as canonical JSON, together with the name and a
format version): two calls with any parameter different never share a file, and
a stale file from an older generator is never read once the version is bumped.
Each file also stores its parameters, which are compared on load.

Files are written atomically (a temporary file in the same directory, then
``os.replace``), so parallel runs and interrupted runs never leave a partial file
under the final name; an unreadable file is regenerated.

Directory: ``cache_dir`` argument, else ``$IRREPNET_CACHE``, else ``~/.cache/irrepnet``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

ENV_VAR = "IRREPNET_CACHE"
_PARAMS_KEY = "__params__"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``cache_dir``, else ``$IRREPNET_CACHE``, else ``~/.cache/irrepnet``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "irrepnet"


def canonical_params(params: Mapping) -> str:
    """Canonical JSON of ``params`` (sorted keys, floats by ``repr``) for hashing."""

    def norm(v):
        if isinstance(v, Mapping):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        if isinstance(v, (np.integer, np.floating, np.bool_)):
            return v.item()
        if isinstance(v, float):
            return repr(v)  # keeps 1e-3 and 0.001 equal and inf/nan representable
        if v is None or isinstance(v, (bool, int, str)):
            return v
        raise TypeError(f"cache parameter of type {type(v).__name__} cannot be hashed reliably: {v!r}")

    return json.dumps(norm(params), sort_keys=True, separators=(",", ":"))


def cache_path(name: str, params: Mapping, cache_dir=None) -> Path:
    """File that holds the arrays of ``name`` generated with ``params``."""
    digest = hashlib.sha256(f"{name}\n{canonical_params(params)}".encode()).hexdigest()[:20]
    return cache_root(cache_dir) / f"{name}-{digest}.npz"


def _read(path: Path, params_json: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            stored = str(f[_PARAMS_KEY]) if _PARAMS_KEY in f.files else None
            if stored != params_json:
                warnings.warn(f"cache file {path} holds other parameters (hash collision?); regenerating", stacklevel=2)
                return None
            return {k: f[k] for k in f.files if k != _PARAMS_KEY}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        warnings.warn(f"cache file {path} is unreadable ({type(e).__name__}: {e}); regenerating it", stacklevel=2)
        return None


def _write_atomic(path: Path, arrays: Mapping[str, np.ndarray], params_json: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **{_PARAMS_KEY: np.array(params_json)})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def cached_arrays(
    name: str,
    params: Mapping,
    generate: Callable[[], Mapping[str, np.ndarray]],
    *,
    cache_dir=None,
    use_cache: bool = True,
) -> dict[str, np.ndarray]:
    """Return ``generate()``, reading it from / writing it to the cache.

    Parameters
    ----------
    name : str
        dataset family, part of the file name (e.g. ``"nbody-charged"``).
    params : mapping
        every parameter ``generate`` depends on (JSON-able scalars, lists, dicts).
    generate : callable
        builds the arrays; called only on a cache miss.
    cache_dir : path, optional
    use_cache : bool
        ``False``: neither read nor write the cache.
    """
    if not use_cache:
        return dict(generate())
    params_json = canonical_params(params)
    path = cache_path(name, params, cache_dir)
    if path.exists():
        arrays = _read(path, params_json)
        if arrays is not None:
            return arrays
    arrays = {k: np.asarray(v) for k, v in generate().items()}
    if _PARAMS_KEY in arrays:
        raise ValueError(f"array name {_PARAMS_KEY!r} is reserved by the cache")
    _write_atomic(path, arrays, params_json)
    return arrays
