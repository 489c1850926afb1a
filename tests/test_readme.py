"""The README's Python examples run as written."""

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
