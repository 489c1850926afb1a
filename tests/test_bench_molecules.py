"""The benchmark harness on the energy task (molecules): results, reference row, intervals, report, shards, errors.

A tiny suite (two models, two seeds, one epoch, 24/8/10 molecules) runs once per module;
the tests read what it wrote. The dataset needs ASE (``pip install ase``).
"""

import copy
import csv
import json

import numpy as np
import pytest
import torch

from irrepnet import keys as K
from irrepnet.bench import SchemaError, adhoc_suite, load_suite, run_suite, validate
from irrepnet.bench.report import csv_header, load_results
from irrepnet.bench.shard import merge_shards
from irrepnet.bench.suite import Suite
from irrepnet.registry import ConfigError, get_model_entry, list_models, module_available

needs_ase = pytest.mark.skipif(not module_available("ase"), reason="the EMT dataset needs ASE: pip install ase")

ENERGY_MODELS = ["egnn", "tfn", "segnn", "se3-transformer", "e3nn-reference"]
TINY_MOL = """
[suite]
name = "tiny-mol"
task = "molecules"
models = ["egnn", "tfn"]
seeds = [0, 1]
audit_trials = 1
bootstrap_resamples = 200
n_train = 24
n_valid = 8
n_test = 10

[train]
epochs = 1
batch_size = 8
progress = false
energy_weight = 1.0
force_weight = 1.0

[models.egnn]
config = { hidden = 8, layers = 1 }

[models.tfn]
config = { hidden_irreps = "4x0e + 4x0o + 2x1e + 2x1o", lmax = 1, layers = 1 }
"""
#: what must match between a merged and an unsharded run (timings differ)
SAME = ("name", "status", "parameters", "metrics", "intervals", "comparisons", "train", "config")


@pytest.fixture(scope="module")
def mol(tmp_path_factory):
    """``(root, out, results, log lines)`` of the tiny suite; the dataset cache in a temporary folder."""
    root = tmp_path_factory.mktemp("bench-mol")
    (root / "tiny-mol.toml").write_text(TINY_MOL)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    lines = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IRREPNET_CACHE", str(root / "cache"))
        results = run_suite(load_suite(str(root / "tiny-mol.toml")), root / "out", log=lines.append)
        yield root, root / "out", results, lines
    torch.set_num_threads(threads)


def _rows(results):
    return {r["name"]: r for r in results["groups"][0]["rows"]}


def _task():
    from irrepnet.tasks import load_task

    return load_task("molecules", n_train=24, n_valid=8, n_test=10)


# --- results -------------------------------------------------------------------------------
@needs_ase
def test_energy_results_follow_the_schema_without_displacement_fields(mol):
    _, out, _, lines = mol
    on_disk = load_results(out / "results.json")
    assert on_disk["schema_version"] == 3 and on_disk["suite"]["sizes"] == {"n_train": 24, "n_valid": 8, "n_test": 10}
    group = on_disk["groups"][0]
    assert (
        group["id"] == "molecules"
        and group["target"] == "energy"
        and group["sizes"] == {"train": 24, "valid": 8, "test": 10}
    )
    assert not {"zero_mse", "rollout_horizons", "residual", "target_valid_mse"} & set(group)
    assert [r["name"] for r in group["rows"]] == ["atom energies", "egnn", "tfn"]
    for row in group["rows"]:
        assert row["status"] == "ok" and row["rollout"] is None and "test_mse" not in row["metrics"]
    for name in ("egnn", "tfn"):
        row = _rows(on_disk)[name]
        assert [s["seed"] for s in row["seeds"]] == [0, 1] and row["speed"]["time_to_target_s"] is None
        assert row["speed"]["infer_latency_ms"] > 0 and row["training"]["steps"] == 3
    assert group["budget"]["equal_steps"] and group["budget"]["steps"] == 3
    assert any("egnn seed 1: test MAE energy" in ln for ln in lines)


@needs_ase
def test_model_metrics_are_the_test_errors_of_the_kept_checkpoint(mol):
    from irrepnet import metrics as M
    from irrepnet.train import load_trained

    _, out, results, _ = mol
    task, egnn = _task(), _rows(results)["egnn"]
    for rec in egnn["seeds"]:
        model, _ = load_trained(out / rec["artifacts"]["checkpoint"])
        want = M.energy_force_errors(model, task.test)
        for key in ("energy_mae", "energy_rmse", "energy_per_atom_mae", "forces_mae", "forces_rmse"):
            assert rec["metrics"][key] == pytest.approx(want[key], rel=1e-6), key
        log = [json.loads(ln) for ln in (out / rec["artifacts"]["log"]).read_text().splitlines()]
        best = next(r for r in log if r["epoch"] == rec["training"]["best_epoch"])
        assert rec["metrics"]["valid_forces_mae"] == best["valid_forces_mae"]
    seeds = [rec["metrics"]["forces_mae"] for rec in egnn["seeds"]]
    assert seeds[0] != seeds[1] and egnn["metrics"]["forces_mae"] == pytest.approx(np.mean(seeds))
    assert egnn["metrics_std"]["forces_mae"] == pytest.approx(np.std(seeds, ddof=1))


@needs_ase
def test_reference_row_is_least_squares_atom_energies_with_zero_forces(mol):
    _, _, results, _ = mol
    task = _task()
    train, test = task.train.arrays(), task.test.arrays()

    def counts(arrays):
        onehot = arrays[K.SPECIES_ONEHOT].numpy()
        return np.stack([onehot[arrays[K.BATCH].numpy() == g].sum(0) for g in range(len(arrays[K.NUM_NODES]))])

    mu, *_ = np.linalg.lstsq(counts(train), train[K.TARGET_ENERGY].numpy().ravel(), rcond=None)
    ref = _rows(results)["atom energies"]
    assert ref["kind"] == "baseline" and ref["parameters"] == 4 and ref["seeds"] == []
    assert list(ref["config"]["atom_energies"].values()) == pytest.approx(list(mu))
    energy = test[K.TARGET_ENERGY].numpy().ravel()
    assert ref["metrics"]["energy_mae"] == pytest.approx(np.abs(counts(test) @ mu - energy).mean())
    assert ref["metrics"]["forces_mae"] == pytest.approx(np.abs(test[K.TARGET_FORCES].numpy()).mean())
    assert results["groups"][0]["reference"]["atom_energies"] == ref["config"]["atom_energies"]


@needs_ase
def test_intervals_and_paired_ratios_are_over_the_test_molecules(mol):
    _, _, results, _ = mol
    group, rows = results["groups"][0], _rows(results)
    assert group["bootstrap"]["n_units"] == 10 and group["bootstrap"]["block_length"] == 1
    ref = rows["atom energies"]["metrics"]
    for row in group["rows"]:
        for key in ("energy_mae", "energy_per_atom_mae", "forces_mae"):
            iv = row["intervals"][key]
            assert iv["value"] == pytest.approx(row["metrics"][key]) and iv["lo"] <= iv["value"] <= iv["hi"], key
    for name, other in (("egnn", "tfn"), ("tfn", "egnn")):
        row = rows[name]
        for key in ("energy_mae", "forces_mae"):
            ratio = row["intervals"][f"{key}_vs_reference"]
            assert ratio["value"] == pytest.approx(row["metrics"][key] / ref[key])
            assert ratio["lo"] <= ratio["value"] <= ratio["hi"]
            comp = row["comparisons"][key]
            assert comp["reference"]["other"] == "atom energies" and comp["best_other_model"]["other"] == other
            assert comp["reference"]["ratio"] == pytest.approx(ratio["value"])
        assert row["intervals"]["energy_mae"]["n_seeds"] == 2


@needs_ase
def test_trained_energy_models_are_audited_in_float32_and_float64(mol):
    _, _, results, _ = mol
    for name in ("egnn", "tfn"):
        eq = _rows(results)[name]["equivariance"]
        assert set(eq) == {"float32", "float64"}
        for dtype, tol in (("float32", 1e-4), ("float64", 1e-9)):
            checks = eq[dtype]["checks"]
            assert set(checks) == {"rotation", "reflection", "translation", "permutation"}
            assert eq[dtype]["passed"] and all(c["claimed"] and c["rel_error"] <= tol for c in checks.values())
    assert _rows(results)["atom energies"]["equivariance"] is None


# --- report, CSV, summary, plots --------------------------------------------------------------
@needs_ase
def test_report_csv_summary_and_plots_have_the_energy_columns(mol):
    from irrepnet.bench.summary import summary_markdown

    _, out, results, _ = mol
    report = (out / "report.md").read_text()
    header = "| model | params | seeds | energy MAE eV [95% CI] | forces MAE eV/Å [95% CI] | energy/atom MAE eV |"
    assert header in report
    assert "*atom energies* (reference)" in report and "audit f64" in report and "infer ms (1 molecule)" in report
    assert "MSE / zero" not in report and "rollout" not in report.lower()
    assert "on forces MAE" in report and "on energy MAE" in report  # paired verdicts
    egnn = _rows(results)["egnn"]
    with open(out / "results.csv", newline="") as fh:
        lines = {r["name"]: r for r in csv.DictReader(fh)}
    assert float(lines["egnn"]["forces_mae"]) == egnn["metrics"]["forces_mae"]
    assert float(lines["egnn"]["energy_mae_vs_reference"]) == egnn["intervals"]["energy_mae_vs_reference"]["value"]
    assert lines["egnn"]["test_mse"] == "" and lines["atom energies"]["kind"] == "baseline"
    summary = summary_markdown(results)
    assert "energy × ref [95% CI]" in summary and "atom energies" in summary and "MSE" not in summary
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert plots == ["energy_curves-molecules.png"]  # the displacement plots do not apply


def test_displacement_results_get_no_energy_columns_or_plots(tmp_path):
    from bench_fixtures import synthetic_results

    from irrepnet.bench.plots import plot_energy_curves

    results = synthetic_results(tmp_path)
    assert "energy_mae" not in csv_header(results)
    assert plot_energy_curves(results, tmp_path, tmp_path / "plots") == {}


# --- resume and shards -----------------------------------------------------------------------
@needs_ase
def test_resume_keeps_every_seed(mol):
    root, out, results, _ = mol
    lines = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IRREPNET_CACHE", str(root / "cache"))
        again = run_suite(load_suite(str(root / "tiny-mol.toml")), out, resume=True, log=lines.append, report=False)
    assert sum("finished earlier, kept" in ln for ln in lines) == 2
    assert again["groups"][0]["rows"] == results["groups"][0]["rows"]


@needs_ase
def test_merged_shards_equal_an_unsharded_run(mol):
    root, _, whole, _ = mol
    suite = load_suite(str(root / "tiny-mol.toml"))
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IRREPNET_CACHE", str(root / "cache"))
        for i in (1, 2):
            run_suite(suite, root / f"part-{i}", log=lambda _: None, shard=(i, 2), report=False)
    merged = merge_shards(root / "merged", [root / "part-2", root / "part-1"])
    gm, gw = merged["groups"][0], whole["groups"][0]
    assert gm["target"] == "energy" and [r["name"] for r in gm["rows"]] == [r["name"] for r in gw["rows"]]
    for rm, rw in zip(gm["rows"], gw["rows"]):
        for key in SAME:
            assert rm.get(key) == rw.get(key), (rm["name"], key)
    assert gm["bootstrap"] == gw["bootstrap"] and (root / "merged" / "report.md").exists()


# --- suites: what is refused, and why ------------------------------------------------------------
@pytest.mark.parametrize(
    "text, message",
    [
        ("[suite]\nname='x'\nn_test=5\n", "task 'twelve_body' has fixed splits: drop n_test"),
        ("[suite]\nname='x'\ntask='nbody'\nn_valid=5\n", "drop n_valid"),
        ("[suite]\nname='x'\ntask='molecules'\nn_test=1\n", "n_test must be an integer >= 2"),
        ("[suite]\nname='x'\ntask='molecules'\nn_train='many'\n", "n_train must be an integer >= 1"),
        ("[suite]\nname='x'\ntask='molecules'\nrollout_horizons=[1]\n", "rollout_horizons apply to trajectory tasks"),
        ("[suite]\nname='x'\ntask='molecules'\ntarget_valid_ratio=0.1\n", "no time-to-target"),
        ("[suite]\nname='x'\ntask='molecules'\ndata='required'\n", "generates its data"),
        ("[suite]\nname='x'\ntask='molecules'\n[[variant]]\nid='h2'\nhistory=2\n", "drop history and bonds"),
        (
            "[suite]\nname='x'\ntask='molecules'\n[train]\nresidual='constant_velocity'\n",
            r"\[train\]: residual apply to displacement tasks",
        ),
        (
            "[suite]\nname='x'\ntask='molecules'\n[models.egnn]\ntrain={input_noise=0.1}\n",
            r"\[models.egnn\] train: input_noise",
        ),
        ("[suite]\nname='x'\ntask='molecules'\n[train]\nenergy_weight=-1\n", "energy_weight must be a number >= 0"),
    ],
)
def test_bad_energy_suites_say_what_to_change(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_suite(str(f))


def test_star_means_the_energy_models_and_the_variant_is_named_by_the_task():
    suite = Suite(name="m", task="molecules")
    assert suite.model_names() == [n for n in list_models(peers=False) if get_model_entry(n).energy]
    assert set(ENERGY_MODELS) <= set(suite.model_names())
    assert [v.id for v in suite.variants] == ["molecules"]
    assert [v.id for v in adhoc_suite("molecules", ["egnn"]).variants] == ["molecules"]


def test_shipped_molecules_suite_gives_every_energy_model_the_same_budget():
    suite = load_suite("molecules")
    assert suite.task == "molecules" and suite.model_names() == ENERGY_MODELS and suite.seeds == [0, 1, 2]
    assert not any(over.get("train") for over in suite.model_overrides.values())  # equal budgets
    assert {"energy_weight", "force_weight", "epochs", "batch_size"} <= set(suite.train)
    assert suite.sizes == {}  # the task's default sizes
    budgets = {n: suite.train_config_for(n) for n in suite.model_names()}
    assert len({(c.epochs, c.batch_size, c.max_steps, c.steps_per_epoch) for c in budgets.values()}) == 1


# --- the schema of energy groups --------------------------------------------------------------------
@needs_ase
@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda res: res["groups"][0].pop("reference"), "groups[0]: missing key 'reference'"),
        (
            lambda res: res["groups"][0]["rows"][1]["metrics"].pop("forces_mae"),
            "groups[0].rows[1].metrics: missing key 'forces_mae'",
        ),
        (lambda res: res.update(schema_version=2), "energy groups need schema_version 3"),
        (lambda res: res["groups"][0].update(target="charge"), "target 'charge' not in"),
    ],
)
def test_schema_names_what_an_energy_group_lacks(mol, break_it, message):
    bad = copy.deepcopy(mol[2])
    break_it(bad)
    with pytest.raises(SchemaError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(bad)
