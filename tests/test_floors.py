"""The dependency floors in pyproject.toml are the versions CI's oldest-versions pass installs."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "check_floors.py"

pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="needs the repository's .ci folder (not in the sdist)")


def _checker():
    pytest.importorskip("packaging")
    spec = importlib.util.spec_from_file_location("check_floors", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_floor_is_pinned_in_the_lowest_versions_file():
    check = _checker()
    pins = check.read_pins(ROOT / ".ci" / "lowest-direct.txt")
    floors = check.read_floors(ROOT / "pyproject.toml")
    assert floors, "pyproject.toml declares no floors"
    # only the floor half: the installed versions are checked by CI's pass 3 itself
    mismatched = [p for p in check.problems(pins, floors) if "installed" not in p]
    assert mismatched == []


def test_a_floor_that_drifts_from_its_pin_is_reported():
    check = _checker()
    found = check.problems({"e3nn": "0.5.2"}, {"e3nn": "0.5.1", "numpy": "1.23.5"})
    assert any("e3nn" in p and ">=0.5.1" in p and "==0.5.2" in p for p in found)
    assert any("numpy" in p and "pins nothing" in p for p in found)
