"""docs/generate_results.py: the documentation's results pages, generated from the committed results."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from irrepnet.bench.formatting import fmt_sci

pytestmark = pytest.mark.repo  # docs/ and benchmarks/results/ are not in the sdist

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _generator():
    spec = importlib.util.spec_from_file_location("generate_results", ROOT / "docs" / "generate_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    return out, _generator().generate(out)


def test_one_page_per_results_folder(pages):
    out, written = pages
    expected = sorted(p.parent.name for p in RESULTS.glob("*/results.json") if '"groups"' in p.read_text())
    assert len(expected) >= 10
    assert [p.stem for p in written] == expected
    scripts = [p.parent.name for p in RESULTS.glob("md-stability*/results.json")]
    assert scripts and not set(scripts) & {p.stem for p in written}  # md_stability's results are not a suite's
    assert not (out / "report.md").exists()  # write_report's file is renamed to the page, not left behind


def test_quick_page_has_every_row_of_the_committed_results(pages):
    out, _ = pages
    text = (out / "quick.md").read_text(encoding="utf-8")
    results = json.loads((RESULTS / "quick" / "results.json").read_text())
    rows = [r for g in results["groups"] for r in g["rows"] if r.get("status") == "ok"]
    assert len(rows) >= 10
    for r in rows:
        name = f"*{r['name']}* (baseline)" if r["kind"] == "baseline" else r["name"]
        line = next((ln for ln in text.splitlines() if ln.startswith(f"| {name} |")), None)
        assert line is not None, f"no table row for {r['name']} in quick.md"
        assert fmt_sci(r["metrics"]["test_mse"]) in line  # the row's own number, not just its name
    assert f"commit `{results['provenance']['commit'][:7]}`" in text
    assert results["provenance"]["machine"] in text
    assert "Paired comparisons" in text


def test_plots_are_copied_and_linked(pages):
    out, _ = pages
    text = (out / "quick.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(list((RESULTS / "quick" / "plots").glob("*.png")))
    for link in links:
        assert (out / link).is_file(), link


def test_generate_replaces_stale_pages(tmp_path):
    results_root = tmp_path / "results"
    (results_root / "quick").mkdir(parents=True)
    (results_root / "quick" / "results.json").write_bytes((RESULTS / "quick" / "results.json").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    (out / "gone.md").write_text("# a run that no longer exists\n")
    written = _generator().generate(out, results_root)
    assert [p.name for p in written] == ["quick.md"]
    assert sorted(p.name for p in out.glob("*.md")) == ["quick.md"]
