"""The benchmark report: schema checks, CSV, report.md and plots from a fake run (tests/bench_fixtures.py)."""

import copy
import csv
import json
import re
from pathlib import Path

import matplotlib
import pytest
from bench_fixtures import COMMIT, synthetic_results

from irrepnet.bench import plots as P
from irrepnet.bench import report as R
from irrepnet.bench.schema import SchemaError, validate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tolerate_dependency_deprecations(warnings) -> None:
    """Deprecations that matplotlib's own code triggers in its dependencies stay warnings.

    matplotlib before 3.10.7 calls pyparsing's ``parseString``, which pyparsing 3.3 deprecates:
    on the dependency floor (``.ci/lowest-direct.txt``) every mathtext label warns. That is not
    a failure of irrepnet's plots, which is what the tests turn into errors.
    """
    warnings.filterwarnings("default", category=DeprecationWarning, module=r"(matplotlib|pyparsing)(\..*)?$")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The fake run and everything ``write_all`` made of it (built once: plots take ~2 s)."""
    root = tmp_path_factory.mktemp("bench")
    results = synthetic_results(root)
    backend = matplotlib.get_backend()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plot that fails is only a warning in write_all; here a failure
        _tolerate_dependency_deprecations(warnings)
        out = R.write_all(R.load_results(root / "results.json"), root)
    assert matplotlib.get_backend() == backend  # plotting changed nothing global
    return root, results, out


def _rows(results):
    return [(g, r) for g in results["groups"] for r in g["rows"]]


# ---------------------------------------------------------------------------- schema


def test_fixture_follows_the_schema(run):
    root, results, _ = run
    assert validate(copy.deepcopy(results)) == results
    assert R.load_results(root) == results  # a folder means its results.json
    statuses = {r["status"] for _, r in _rows(results)}
    assert statuses == {"ok", "skipped", "error"}


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda res: res["groups"][0]["rows"][3].pop("metrics"), "groups[0].rows[3]: missing key 'metrics'"),
        (
            lambda res: res["groups"][1]["rows"][2]["speed"].pop("train_step_ms"),
            "groups[1].rows[2].speed: missing key 'train_step_ms'",
        ),
        (lambda res: res.update(schema_version=4), "schema_version 4 is not supported"),
        (lambda res: res["groups"][0]["rows"][7].pop("reason"), "groups[0].rows[7]: status 'error' needs a 'reason'"),
        (lambda res: res["groups"][1].pop("zero_mse"), "groups[1]: missing key 'zero_mse'"),
    ],
)
def test_validate_names_the_path_of_the_problem(run, tmp_path, break_it, message):
    bad = copy.deepcopy(run[1])
    break_it(bad)
    with pytest.raises(SchemaError) as err:
        validate(bad)
    assert message in str(err.value)
    (tmp_path / "results.json").write_text(json.dumps(bad))
    with pytest.raises(SchemaError, match=re.escape(message)):
        R.load_results(tmp_path / "results.json")


# ---------------------------------------------------------------------------- CSV


def test_csv_has_one_line_per_row_and_full_precision(run):
    root, results, out = run
    with open(out["csv"], newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == len(_rows(results)) == 12
    header = list(lines[0].keys())
    assert header == R.csv_header(results)
    for col in (
        "group",
        "name",
        "kind",
        "status",
        "test_mse",
        "mse_vs_zero",
        "r2",
        "corr_com",
        "corr_last_y",
        "rollout_mse_k1",
        "rollout_mse_k50",
        "equiv_f32_worst_rel_error",
        "equiv_f32_passed",
        "train_step_ms",
        "infer_graphs_per_s",
        "peak_memory_mb",
        "epochs",
        "steps",
        "reason",
    ):
        assert col in header
    by_key = {(line["group"], line["name"]): line for line in lines}
    egnn = next(r for g, r in _rows(results) if g["id"] == "history-2" and r["name"] == "egnn")
    assert float(by_key["history-2", "egnn"]["test_mse"]) == egnn["metrics"]["test_mse"]
    assert float(by_key["history-2", "egnn"]["rollout_mse_k10"]) == egnn["rollout"]["mse"][2]
    assert float(by_key["history-2", "tfn"]["equiv_f32_worst_rel_error"]) == 2.0e-3  # claimed checks only
    assert by_key["history-2", "tfn"]["equiv_f32_passed"] == "False"
    assert by_key["history-2", "e3nn-reference"]["status"] == "error"
    assert "out of memory" in by_key["history-2", "e3nn-reference"]["reason"]
    assert by_key["nbody", "egnn"]["rollout_mse_k10"] == ""  # no rollout on nbody


# ---------------------------------------------------------------------------- report.md


def test_report_names_everything(run):
    root, results, out = run
    text = out["report"].read_text()
    assert text.startswith("# Benchmark: smoke")
    assert COMMIT[:7] in text and "(dirty)" in text and "2.13.0+cpu" in text and "0.6.0" in text
    assert "| model | symmetry | params | test MSE | MSE / zero | R² (dx) | rollout MSE @1 |" in text
    assert "per coordinate of the predicted displacement" in text  # units are stated
    for _, row in _rows(results):
        assert row["name"] in text
    assert "*constant_acceleration* (baseline)" in text and "*linear* (baseline)" in text
    assert "se3-transformer: **skipped**: needs a velocity history" in text
    assert "CUDA out of memory \\| tried" in text  # a '|' in a reason must not split a table cell
    assert "2.00e-03 ✗" in text  # tfn's failed float32 audit is visible


def _table(text, heading):
    """The main table under ``## heading`` as a list of {column: cell}."""
    section = text.split(f"## {heading}", 1)[1]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for ln in lines[2:]:
        if ln.startswith("| model"):  # the next table (correlations) begins
            break
        rows.append(dict(zip(header, (c.strip() for c in ln.strip("|").split(" | ")))))
    return rows


def test_report_numbers_match_the_json(run):
    _, results, out = run
    text = out["report"].read_text()
    table = _table(text, "history-2")
    names = [r["model"] for r in table]
    # baselines first (file order), then models best first
    assert names == [
        "*zero* (baseline)",
        "*constant_velocity* (baseline)",
        "*constant_acceleration* (baseline)",
        "egnn",
        "tfn",
        "mlp",
    ]
    group = results["groups"][0]
    for cells in table:
        name = cells["model"].replace(" (baseline)", "").strip("*")
        row = next(r for r in group["rows"] if r["name"] == name)
        assert float(cells["test MSE"]) == pytest.approx(row["metrics"]["test_mse"], rel=5e-3)
        assert float(cells["rollout MSE @50"]) == pytest.approx(row["rollout"]["mse"][-1], rel=5e-3)
    assert table[3]["test MSE"] == "3.10e-09" and table[3]["params"] == "116,992"
    assert table[0]["train step ms"] == "–"  # baselines are not trained
    nbody = _table(text, "nbody")
    assert "rollout MSE @1" not in nbody[0]  # no rollout columns without horizons


def test_summary_is_computed_from_the_data(run):
    _, results, out = run
    text = out["report"].read_text()
    assert "2 of 3 trained models beat the zero-displacement baseline" in text and "not: mlp" in text
    ratio = 5.6e-9 / 3.1e-9
    assert "Best model: **egnn**, test MSE 3.10e-09, vs the best baseline *constant_acceleration*" in text
    assert f"{ratio:#.3g}× lower" in text
    # change the data, the sentence follows
    worse = copy.deepcopy(results["groups"][0])
    for row in worse["rows"]:
        if row["kind"] == "model" and row["status"] == "ok":
            row["metrics"]["test_mse"] *= 1e4
            row["metrics"]["mse_vs_zero"] *= 1e4
    lines = R.summary_sentences(worse)
    assert lines[0].startswith("None of the 3 trained models beats")
    assert "no model beats the best baseline" in lines[1]


def test_correlation_table_only_for_twelve_body(run):
    text = run[2]["report"].read_text()
    assert text.count("| model | centre of mass | particle 0 | particle 6 (x) | last particle (y) |") == 1
    assert text.index("centre of mass |") < text.index("## nbody")


def test_image_links_point_to_existing_files(run):
    root, _, out = run
    text = out["report"].read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(out["plots"]) == 8
    for link in links:
        assert not Path(link).is_absolute() and (root / link).is_file()


# ---------------------------------------------------------------------------- plots


def test_plots_are_small_pngs_and_skip_what_has_no_data(run):
    _, _, out = run
    assert set(out["plots"]) == {
        "loss/history-2",
        "parity/history-2",
        "trajectory/history-2",
        "rollout/history-2",
        "accuracy_time/history-2",
        "loss/nbody",
        "parity/nbody",
        "accuracy_time/nbody",
    }
    for path in out["plots"].values():
        data = Path(path).read_bytes()
        assert data[:8] == PNG_MAGIC and 2_000 < len(data) < 200_000


def test_missing_artifacts_do_not_crash(tmp_path):
    results = synthetic_results(tmp_path)
    for path in tmp_path.glob("runs/**/*"):  # every log and npz gone
        if path.is_file():
            path.unlink()
    results["finished"] = None  # a run still going
    results["groups"][1]["rows"] = [r for r in results["groups"][1]["rows"] if r["kind"] == "baseline"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _tolerate_dependency_deprecations(warnings)
        out = R.write_all(results, tmp_path / "report", results_dir=tmp_path)
    # only the plots drawn from results.json itself remain
    assert set(out["plots"]) == {"rollout/history-2", "accuracy_time/history-2"}
    text = out["report"].read_text()
    assert "**not finished**" in text
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (tmp_path / "report" / link).is_file()


def test_a_truncated_npz_counts_as_missing(tmp_path):
    results = synthetic_results(tmp_path)
    group = results["groups"][1]
    npz = tmp_path / group["rows"][2]["artifacts"]["predictions"]
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="cannot read"):
        assert P.load_predictions(tmp_path, group["rows"][2]) is None


def test_formatting():
    assert R.fmt_sci(2.43e-5) == "2.43e-05" and R.fmt_sci(None) == "–"
    assert R.fmt_sig(0.0068) == "0.00680" and R.fmt_sig(1.0) == "1.00"
    assert R.fmt_near_one(0.9998724) == "0.99987" and R.fmt_near_one(-0.235) == "-0.235"
    assert R.fmt_plain(4512.3) == "4512" and R.fmt_plain(8.5) == "8.50" and R.fmt_plain(None) == "–"
    assert R.table_horizons([1, 5, 10, 50, 100]) == [1, 10, 100] and R.table_horizons([]) == []
