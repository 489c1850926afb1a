"""The benchmark harness end to end on a tiny suite: results, resume, report, errors."""

import json
import logging

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


def _run_toml(folder, name: str, text: str, log):
    """Write ``text`` as suite file ``folder/name`` and run it into ``folder/out``."""
    suite_file = folder / name
    suite_file.write_text(text)
    out = folder / "out"
    return out, run_suite(load_suite(str(suite_file)), out, log=log)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    lines = []
    out, results = _run_toml(tmp_path_factory.mktemp("bench"), "tiny.toml", TINY, lines.append)
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


def test_resume_keeps_finished_rows(tiny_run, caplog):
    out, results, _ = tiny_run
    with caplog.at_level(logging.INFO, logger="irrepnet.bench"):
        again = run_suite(load_suite(str(out.parent / "tiny.toml")), out, resume=True, report=False)
    kept = [r for r in caplog.records if "finished earlier, kept" in r.getMessage()]
    assert kept and all(r.name == "irrepnet.bench.runner" for r in kept)  # progress goes through logging
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


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("[suite]\nname='x'\nmodel=['mlp']\n", ConfigError, "did you mean 'models'"),
        ("[suite]\nname='x'\n[train]\nepoch=3\n", ConfigError, "did you mean 'epochs'"),
        ("[suite]\nname='x'\nmodels=['egn']\n", UnknownModelError, "Did you mean 'egnn'"),
        ("[suite]\nname='x'\n[models.mlp]\nconfig={hiden=3}\n", ConfigError, "no config option"),
        ("[suite]\nname='x'\ntask='moon'\n", ConfigError, "unknown task"),
    ],
)
def test_bad_suites_are_clear_errors(tmp_path, text, error, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(error, match=message):
        load_suite(str(f)).model_names()


def test_shipped_suites_parse():
    for name in ("quick", "dmol", "dmol-residual", "dmol-residual-long", "nbody", "peers", "peers-nbody"):
        suite = load_suite(name)
        assert suite.model_names(), name
        assert find_suite(name).name == f"{name}.toml"
    with pytest.raises(FileNotFoundError, match="known suites"):
        find_suite("quik")


# --- schema 2: seeds, grids, residual variants, intervals and paired comparisons -----------
TINY_V2 = """
[suite]
name = "tiny2"
task = "twelve_body"
models = ["radial-field", "mlp"]
seeds = [0, 1]
rollout_horizons = [1, 3]
rollout_starts = 4
audit_trials = 1
bootstrap_block = 10
bootstrap_resamples = 200

[train]
epochs = 2
steps_per_epoch = 2
batch_size = 8
progress = false

[tune]
lr = [1e-3, 3e-3]
steps = 2
configs = { radial-field = [{ hidden = 8 }, { hidden = 12 }] }

[[variant]]
id = "h2"
history = 2

[[variant]]
id = "h2-ca"
history = 2
train = { residual = "constant_acceleration", start_at_baseline = true, input_noise = 0.05 }

[models.radial-field]
config = { layers = 1 }
"""


@pytest.fixture(scope="module")
def tiny_v2(tmp_path_factory):
    return _run_toml(tmp_path_factory.mktemp("bench2"), "tiny2.toml", TINY_V2, lambda _: None)


def test_rows_aggregate_seeds_and_keep_every_seed(tiny_v2):
    out, results = tiny_v2
    assert results["schema_version"] == 3 and results["suite"]["seeds"] == [0, 1]
    group = results["groups"][0]
    rows = {r["name"]: r for r in group["rows"]}
    rf = rows["radial-field"]
    assert [s["seed"] for s in rf["seeds"]] == [0, 1]
    per_seed = [s["metrics"]["test_mse"] for s in rf["seeds"]]
    assert per_seed[0] != per_seed[1]  # the seeds really differ
    assert rf["metrics"]["test_mse"] == pytest.approx(sum(per_seed) / 2)
    assert rf["metrics_std"]["test_mse"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2**0.5)
    for rec in rf["seeds"]:
        assert (out / rec["artifacts"]["log"]).exists() and (out / rec["artifacts"]["predictions"]).exists()
        assert f"seed-{rec['seed']}" in rec["artifacts"]["checkpoint"]
        assert len(rec["rollout"]["mse_per_start"]) == len(rec["rollout"]["starts"])


def test_grid_is_chosen_on_validation_and_recorded(tiny_v2):
    _, results = tiny_v2
    rf = {r["name"]: r for r in results["groups"][0]["rows"]}["radial-field"]
    trials = rf["tuning"]["trials"]
    assert len(trials) == 4 and {t["lr"] for t in trials} == {1e-3, 3e-3}
    best = min(trials, key=lambda t: t["valid_mse"])
    assert rf["tuning"]["chosen"] == {"lr": best["lr"], "config": best["config"]}
    assert rf["train"]["lr"] == best["lr"] and rf["config"]["hidden"] == best["config"]["hidden"]
    assert rf["config"]["layers"] == 1  # the suite's own override survives the grid


def test_every_figure_has_an_interval_and_comparisons_are_paired(tiny_v2):
    _, results = tiny_v2
    group = results["groups"][0]
    assert group["bootstrap"]["block_length"] == 10 and group["bootstrap"]["n_units"] == group["sizes"]["test"]
    assert group["budget"]["equal_steps"] and group["budget"]["steps"] == 4
    for row in group["rows"]:
        iv = row["intervals"]["test_mse"]
        assert iv["lo"] <= row["metrics"]["test_mse"] <= iv["hi"]
        assert set(row["intervals"]["rollout"]) == {"1", "3"}
        assert row["intervals"]["mse_vs_zero"]["value"] == pytest.approx(row["metrics"]["mse_vs_zero"])
    mlp = {r["name"]: r for r in group["rows"]}["mlp"]
    cmp = mlp["comparisons"]["best_baseline"]
    assert cmp["other"] == "constant-acceleration" and cmp["verdict"] == "higher"  # 4 steps cannot beat it
    assert cmp["lo"] <= cmp["ratio"] <= cmp["hi"]
    assert mlp["comparisons"]["best_other_model"]["other"] == "radial-field"
    assert set(mlp["comparisons"]["rollout"]["3"]) == {"zero-displacement", "constant-velocity"}


def test_residual_variant_is_recorded_and_starts_at_its_baseline(tiny_v2):
    _, results = tiny_v2
    group = results["groups"][1]
    assert group["residual"] == "constant_acceleration" and group["input_noise"] == 0.05
    assert group["start_at_baseline"] is True
    ca = {r["name"]: r for r in group["rows"]}["constant-acceleration"]["metrics"]["test_mse"]
    for row in group["rows"]:
        if row["kind"] == "model":
            assert row["train"]["residual"] == "constant_acceleration"
            # two steps from the baseline with a tiny gate: still close to constant acceleration
            assert row["metrics"]["test_mse"] == pytest.approx(ca, rel=0.5)


def test_v2_report_says_how_sure_it_is(tiny_v2):
    out, results = tiny_v2
    text = (out / "report.md").read_text()
    assert "test MSE [95% CI]" in text and "seed std" in text
    assert "Paired comparisons" in text and "is worse than constant-acceleration" in text
    assert "residual: constant_acceleration" in text and "input noise" in text
    assert "Grid chosen on the validation split" in text
    from irrepnet.bench.summary import summary_markdown

    assert "[95% CI]" in summary_markdown(results)


def test_v2_resume_keeps_every_seed(tiny_v2, caplog):
    out, results = tiny_v2
    suite = load_suite(str(out.parent / "tiny2.toml"))
    with caplog.at_level(logging.INFO, logger="irrepnet.bench"):
        again = run_suite(suite, out, resume=True, report=False)
    kept = [r.getMessage() for r in caplog.records if "finished earlier, kept" in r.getMessage()]
    assert len(kept) == 4  # 2 models x 2 variants
    assert kept[0] == "[1-2/8] radial-field: finished earlier, kept"  # both seeds of the row, counted as units
    models = lambda res: [r for r in res["groups"][0]["rows"] if r["kind"] == "model"]  # noqa: E731
    assert models(again) == models(results)  # kept as they were, seeds, intervals and comparisons included


@pytest.mark.parametrize(
    "text, message",
    [
        ("[suite]\nname='x'\nseeds=[0, 0]\n", "seeds must be distinct"),
        ("[suite]\nname='x'\n[tune]\nlr=[0.0]\n", "learning rates > 0"),
        ("[suite]\nname='x'\n[tune]\nlrs=[1e-3]\n", "did you mean 'lr'"),
        ("[suite]\nname='x'\n[tune]\nconfigs={mlp=[{hiden=3}]}\n", "no config option"),
        ("[suite]\nname='x'\n[[variant]]\nid='a'\ntrain={residual='verlet'}\n", "residual must be one of"),
        ("[suite]\nname='x'\nseeds=[0, 1]\n[train]\nseed=3\n", "not both"),
    ],
)
def test_bad_v2_suites_are_clear_errors(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_suite(str(f))


def test_v2_csv_has_intervals_and_verdicts(tiny_v2):
    import csv

    out, results = tiny_v2
    with open(out / "results.csv", newline="") as fh:
        lines = list(csv.DictReader(fh))
    mlp = next(r for r in lines if r["name"] == "mlp" and r["group"] == "h2")
    row = next(r for r in results["groups"][0]["rows"] if r["name"] == "mlp")
    assert mlp["n_seeds"] == "2" and mlp["residual"] == "none"
    assert float(mlp["test_mse_lo"]) == row["intervals"]["test_mse"]["lo"]
    assert mlp["vs_best_baseline"] == "constant-acceleration" and mlp["vs_best_baseline_verdict"] == "higher"


@pytest.mark.repo
def test_frame_error_breakdown_script(tiny_v2):
    """benchmarks/frame_errors.py reads the per-frame errors a bench run leaves behind."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "frame_errors.py"
    spec = importlib.util.spec_from_file_location("frame_errors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, results = tiny_v2
    table = module.frame_table(out, "h2", "constant-acceleration", 3)
    assert "its 3 hardest of 410 test frames" in table
    ca_line = next(ln for ln in table.splitlines() if ln.startswith("| constant-acceleration |"))
    assert ca_line.endswith("| 1.000 | 1.000 | 1.000 |")  # the reference against itself
    assert "| mlp | 2 |" in table
    assert module.main([str(out), "--group", "nope"]) == 2


@pytest.mark.repo
def test_training_options_script(tiny_run, tmp_path):
    """benchmarks/training_options.py: runs that differ in training options, paired on the same test frames."""
    import importlib.util
    import shutil
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "training_options.py"
    spec = importlib.util.spec_from_file_location("training_options", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ref_out, ref_results, _ = tiny_run
    ema_out = tmp_path / "ema"
    ema_results = run_suite(
        load_suite(str(ref_out.parent / "tiny.toml")),
        ema_out,
        models=["radial-field"],
        extra_train={"ema_decay": 0.9},
        log=lambda _: None,
    )
    module.main(["--model", "radial-field", str(ref_out), str(ema_out), "--out", str(tmp_path / "t.md")])
    lines = (tmp_path / "t.md").read_text().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| (reference) | 0 | 2 |")
    assert lines[3].startswith("| ema_decay = 0.9 | 0 | 2 |")
    ref_mse, ema_mse = (
        next(r for r in res["groups"][0]["rows"] if r["name"] == "radial-field")["metrics"]["test_mse"]
        for res in (ref_results, ema_results)
    )
    assert f"| {ema_mse / ref_mse:.3f} [" in lines[3]  # the paired ratio's point value is the ratio of the MSEs
    # another test set is refused, not compared
    other = tmp_path / "other"
    shutil.copytree(ema_out, other)
    results = json.loads((other / "results.json").read_text())
    results["groups"][0]["data"] = "another trajectory"
    (other / "results.json").write_text(json.dumps(results))
    with pytest.raises(SystemExit, match="a paired comparison needs the same test set"):
        module.main(["--model", "radial-field", str(ref_out), str(other)])
