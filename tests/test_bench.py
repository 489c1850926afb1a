"""The benchmark harness end to end on a tiny suite: results, resume, report, errors."""

import json

import pytest

from irrepnet.bench import SchemaError, load_suite, run_suite, validate
from irrepnet.bench.report import load_results
from irrepnet.bench.suite import find_suite
from irrepnet.registry import ConfigError, UnknownModelError

TINY = """
[suite]
name = "tiny"
task = "twelve_body"
models = ["radial-field", "mlp", "constant-velocity"]
rollout_horizons = [1, 3]
rollout_starts = 2
audit_trials = 1

[train]
epochs = 2
steps_per_epoch = 2
batch_size = 8
progress = false

[[variant]]
id = "h2"
history = 2

[models.radial-field]
config = { hidden = 8, layers = 1 }
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    suite_file = folder / "tiny.toml"
    suite_file.write_text(TINY)
    out = folder / "out"
    lines = []
    results = run_suite(load_suite(str(suite_file)), out, log=lines.append)
    return out, results, lines


def test_results_follow_the_schema(tiny_run):
    out, results, _ = tiny_run
    on_disk = load_results(out / "results.json")
    assert on_disk["finished"] and on_disk["provenance"]["machine"]
    group = on_disk["groups"][0]
    names = [r["name"] for r in group["rows"]]
    assert names[:3] == ["zero-displacement", "constant-velocity", "constant-acceleration"]
    assert {"radial-field", "mlp"} <= set(names)
    assert names.count("constant-velocity") == 1  # a baseline listed as a model is not run twice


def test_rows_carry_accuracy_speed_rollout_and_audit(tiny_run):
    out, results, _ = tiny_run
    group = results["groups"][0]
    rows = {r["name"]: r for r in group["rows"]}
    zero = rows["zero-displacement"]["metrics"]
    assert zero["mse_vs_zero"] == pytest.approx(1.0) and zero["test_mse"] == pytest.approx(group["zero_mse"])
    rf = rows["radial-field"]
    assert rf["status"] == "ok" and rf["symmetry"] == "E(3)" and rf["parameters"] > 0
    assert rf["training"]["steps"] == 4 and rf["speed"]["train_step_ms"] is None or rf["speed"]["epoch_s"] > 0
    assert rf["speed"]["infer_graphs_per_s"] > 0 and rf["speed"]["peak_memory_mb"] > 0
    assert rf["rollout"]["horizons"] == [1, 3] and len(rf["rollout"]["mse"]) == 2
    assert rf["equivariance"]["float64"]["passed"] and rf["equivariance"]["float32"]["passed"]
    mlp = rows["mlp"]
    assert mlp["symmetry"] == "none"
    assert mlp["equivariance"]["float64"]["checks"]["rotation"]["rel_error"] > 1e-3  # the audit bites
    # constant velocity rolled out k steps: error grows with the horizon
    cv = rows["constant-velocity"]["rollout"]["mse"]
    assert cv[1] > cv[0] > 0
    for name in ("log", "checkpoint", "predictions"):
        assert (out / rf["artifacts"][name]).exists()


def test_report_csv_and_plots_are_written(tiny_run):
    out, results, _ = tiny_run
    report = (out / "report.md").read_text()
    assert "radial-field" in report and "zero-displacement" in report
    assert results["provenance"]["commit"] is None or results["provenance"]["commit"][:7] in report
    csv_lines = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + len(results["groups"][0]["rows"])
    assert list((out / "plots").glob("*.png"))


def test_resume_keeps_finished_rows(tiny_run):
    out, results, _ = tiny_run
    lines = []
    again = run_suite(load_suite(str(out.parent / "tiny.toml")), out, resume=True, log=lines.append, report=False)
    assert any("finished earlier, kept" in ln for ln in lines)
    first = {r["name"]: r["metrics"]["test_mse"] for r in results["groups"][0]["rows"]}
    second = {r["name"]: r["metrics"]["test_mse"] for r in again["groups"][0]["rows"]}
    assert first == second


def test_schema_rejects_other_versions(tiny_run):
    out, _, _ = tiny_run
    res = json.loads((out / "results.json").read_text())
    res["schema_version"] = 99
    with pytest.raises(SchemaError, match="schema_version"):
        validate(res)


def test_dmol_suite_needs_its_data(tmp_path):
    with pytest.raises(ValueError, match="--data"):
        run_suite(load_suite("dmol"), tmp_path)


@pytest.mark.parametrize("text, error, message", [
    ("[suite]\nname='x'\nmodel=['mlp']\n", ConfigError, "did you mean 'models'"),
    ("[suite]\nname='x'\n[train]\nepoch=3\n", ConfigError, "did you mean 'epochs'"),
    ("[suite]\nname='x'\nmodels=['egn']\n", UnknownModelError, "Did you mean 'egnn'"),
    ("[suite]\nname='x'\n[models.mlp]\nconfig={hiden=3}\n", ConfigError, "no config option"),
    ("[suite]\nname='x'\ntask='moon'\n", ConfigError, "unknown task"),
])
def test_bad_suites_are_clear_errors(tmp_path, text, error, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(error, match=message):
        load_suite(str(f)).model_names()


def test_shipped_suites_parse():
    for name in ("quick", "dmol", "nbody"):
        suite = load_suite(name)
        assert suite.model_names(), name
        assert find_suite(name).name == f"{name}.toml"
    with pytest.raises(FileNotFoundError, match="known suites"):
        find_suite("quik")
