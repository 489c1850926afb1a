"""The README: its Python examples run as written, its results table is the committed run's, and its links work
where a package index shows it (no relative links; the source paths it names exist)."""

import re
from pathlib import Path

import pytest

from irrepnet.registry import list_models, unregister_model

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_example_runs(i, capsys):
    before = set(list_models())
    try:
        exec(compile(BLOCKS[i], f"README.md block {i}", "exec"), {})
    finally:
        for name in set(list_models()) - before:
            unregister_model(name)


SUMMARIES = re.findall(r"<!-- summary:(\S+) -->\n(.*?)<!-- /summary -->", README.read_text(), flags=re.S)


@pytest.mark.repo
@pytest.mark.parametrize("name, block", SUMMARIES, ids=[n for n, _ in SUMMARIES])
def test_readme_results_tables_match_the_committed_results(name, block):
    """Every results table in the README is the summary of a committed results.json, unedited."""
    from irrepnet.bench.report import load_results
    from irrepnet.bench.summary import summary_markdown

    results = load_results(README.parent / "benchmarks" / "results" / name / "results.json")
    assert block.strip() == summary_markdown(results).strip()


# ---------------------------------------------------------------------------- a front door

TEXT = README.read_text()
ROOT = README.parent
# [text](target) and ![alt](target), and HTML src/href, wherever they are
LINKS = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)", TEXT) + re.findall(r"(?:src|href)=\"([^\"]+)\"", TEXT)
# paths of the source named in code spans, e.g. `docs/guide/cli.md` or `tutorials/*.ipynb`
SOURCE_PATHS = sorted(
    {
        p
        for p in re.findall(r"`((?:docs|benchmarks|irrepnet|tests|tutorials|scripts)/[^`\s]*)`", TEXT)
        if "_build" not in p
    }
    | {name for name in re.findall(r"`([A-Z]+(?:\.md|\.cff)?)`", TEXT) if name in ("LICENSE", "CHANGELOG.md")}
)


def test_readme_is_a_front_door():
    """At most about 250 lines: the details live in the docs, not on the package index's project page."""
    assert len(TEXT.splitlines()) <= 260


@pytest.mark.parametrize("target", LINKS)
def test_readme_links_work_on_a_package_index(target):
    """A package index shows the README without the repository beside it: relative links and images break there."""
    assert target.startswith("https://"), f"{target!r}: link absolutely, or name the file as `path` in the source"


def test_readme_links_are_checked():
    assert "https://e3nn.org" in LINKS  # the link pattern finds links (a pattern that finds none would pass anything)


@pytest.mark.repo  # docs/, benchmarks/ and tutorials/ are not in the sdist
@pytest.mark.parametrize("path", SOURCE_PATHS)
def test_paths_named_in_the_readme_exist(path):
    """Every file or folder the README points into (`docs/guide/cli.md` in the source, ...) is there."""
    assert list(ROOT.glob(path.rstrip("/"))), f"README names {path!r}, which is not in the repository"


def test_readme_names_the_docs_pages():
    docs = {p for p in SOURCE_PATHS if p.startswith("docs/")}
    assert len(docs) >= 6, docs
