"""Check the oldest-versions environment of CI's pass 3 against pyproject.toml.

``python .ci/check_floors.py .ci/lowest-direct.txt`` fails (exit 1, one line per problem)
when a pin in the constraints file is not the floor (``>=``) that pyproject.toml declares
for that dependency, when a direct dependency has a floor but no pin, or when the installed
version differs from the pin. Run inside the environment that was installed with the
constraints, so that "tested at its floor" means what it says.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier  # one '==' per line
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def read_floors(pyproject: Path) -> dict[str, str]:
    floors = {}
    for line in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue  # e.g. tomli on Python < 3.11
        lower = [s.version for s in req.specifier if s.operator == ">="]
        if lower:
            floors[canonicalize_name(req.name)] = lower[0]
    return floors


def problems(pins: dict[str, str], floors: dict[str, str]) -> list[str]:
    out = []
    for name, floor in sorted(floors.items()):
        if name not in pins:
            out.append(f"{name}: pyproject.toml has the floor >={floor} but the constraints file pins nothing")
        elif Version(pins[name]) != Version(floor):
            out.append(f"{name}: pyproject.toml says >={floor} but the constraints file tests =={pins[name]}")
    for name, pin in sorted(pins.items()):
        try:
            got = version(name)
        except PackageNotFoundError:
            out.append(f"{name}: pinned =={pin} but not installed")
            continue
        if Version(Version(got).base_version) != Version(pin):  # 2.13.0+cpu is 2.13.0
            out.append(f"{name}: pinned =={pin} but {got} is installed")
    return out


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    pins = read_pins(Path(argv[0]) if argv else root / ".ci" / "lowest-direct.txt")
    found = problems(pins, read_floors(root / "pyproject.toml"))
    for line in found:
        print(f"check_floors: {line}", file=sys.stderr)
    if not found:
        print("check_floors: " + ", ".join(f"{n}=={v}" for n, v in sorted(pins.items())) + " installed; floors agree")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
