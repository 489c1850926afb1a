"""The benchmark suites that ship with irrepnet, and how ``--suite NAME`` finds a suite file.

The suite files (``quick.toml``, ``dmol.toml``, ``nbody.toml``, ``molecules.toml``, ...) are
package data, so ``irrepnet bench --suite quick`` works from any folder after ``pip install``;
their format is described in :mod:`irrepnet.bench.suite`. A suite of one's own is given by
its path (``--suite ./my-suite.toml``). A bare name resolves only to the packaged files, so
that a file or folder of the same name in the working directory cannot shadow them.

This module reads TOML and nothing else (no torch), so that listing the suites
(``irrepnet bench --list-suites``) stays fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 floor
    import tomli as tomllib

#: folders searched for ``--suite NAME``, in order: the suites installed with the package
#: (this folder, wherever pip put it)
SUITE_DIRS: tuple[Path, ...] = (Path(__file__).resolve().parent,)


@dataclass(frozen=True)
class SuiteInfo:
    """A suite found by name: its name, the one-line ``description`` of its ``[suite]`` table, its file."""

    name: str
    description: str
    path: Path


def _description(path: Path) -> str:
    try:
        with path.open("rb") as f:
            head = tomllib.load(f).get("suite", {})
    except tomllib.TOMLDecodeError as exc:
        # one broken file must not hide the others from the listing; loading it says more
        return f"(not valid TOML: {exc})"
    return str(head.get("description", "")) if isinstance(head, dict) else ""


def list_suites() -> list[SuiteInfo]:
    """Every suite that ``--suite NAME`` can find, sorted by name; the first folder of :data:`SUITE_DIRS` wins."""
    found: dict[str, SuiteInfo] = {}
    for folder in SUITE_DIRS:
        for path in sorted(folder.glob("*.toml")):
            found.setdefault(path.stem, SuiteInfo(path.stem, _description(path), path))
    return [found[name] for name in sorted(found)]


def find_suite(name_or_path: str) -> Path:
    """Path of a suite given as a file or a name (``quick`` -> the packaged ``quick.toml``).

    A ``.toml`` name, an existing file or a name with a folder in it is a path; anything
    else is looked up in :data:`SUITE_DIRS`. Raises ``FileNotFoundError`` with the known
    names when neither finds it.
    """
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.is_file() or len(p.parts) > 1:
        if not p.is_file():
            raise FileNotFoundError(f"suite file {p} not found")
        return p
    for folder in SUITE_DIRS:
        candidate = folder / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    known = [s.name for s in list_suites()]
    raise FileNotFoundError(
        f"no suite named {name_or_path!r}; known suites: {', '.join(known) or 'none found'}; "
        "or pass the path of a .toml file (irrepnet bench --list-suites describes them)"
    )


def format_suites(suites: list[SuiteInfo]) -> str:
    """The text of ``irrepnet bench --list-suites``: per folder, each suite's name and description."""
    if not suites:
        return "no suites found in " + ", ".join(str(d) for d in SUITE_DIRS)
    width = max(len(s.name) for s in suites)
    lines: list[str] = []
    for folder in dict.fromkeys(s.path.parent for s in suites):
        lines.append(f"suites in {folder} (irrepnet bench --suite NAME):")
        lines += [f"  {s.name:<{width}}  {s.description}" for s in suites if s.path.parent == folder]
    return "\n".join(lines)
