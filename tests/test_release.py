"""The release files agree with the package: one version, a licence, a changelog entry, citation metadata."""

import re
import sys
from pathlib import Path

import pytest

import irrepnet

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(), reason="reads the source tree's release files")


def test_the_version_has_one_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "irrepnet.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", irrepnet.__version__)


def test_citation_and_changelog_name_the_version():
    cff = (ROOT / "CITATION.cff").read_text()
    assert re.search(r"^cff-version: 1\.2\.0$", cff, flags=re.M)
    assert re.search(rf'^version: "{re.escape(irrepnet.__version__)}"$', cff, flags=re.M), "CITATION.cff: bump version"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    released = re.findall(r"^## \[(\d[^\]]*)\] - (\d{4}-\d\d-\d\d)$", changelog, flags=re.M)
    assert released and released[0][0] == irrepnet.__version__, "CHANGELOG.md: the newest release is the package's"
    assert re.search(rf'^date-released: "{released[0][1]}"$', cff, flags=re.M), "CITATION.cff: the release's date"


def test_licence_matches_the_metadata():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the irrepnet authors" in text
    assert not any(c.startswith("License ::") for c in project.get("classifiers", [])), "SPDX expression only"
