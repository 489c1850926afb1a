"""A model that raises must not end the benchmark: its row is an error, the others finish, ``--resume`` redoes it.

The model ``flaky`` (radial field underneath) raises a ``RuntimeError`` in the phase that
:data:`FLAKY` names: while it is built, trained, scored (``metrics.predict``) or audited
(the float64 pass of the audit, the only float64 call the bench makes of a model), and
works when :data:`FLAKY` is ``None``.
"""

import logging
import sys

import pytest
import torch

from irrepnet.bench import load_suite, run_suite
from irrepnet.bench.failures import RowsFailed, one_line
from irrepnet.bench.progress import UnitProgress, duration
from irrepnet.bench.report import load_results, write_all
from irrepnet.cli import main
from irrepnet.models.egnn import RadialFieldConfig, build_radial_field
from irrepnet.registry import register_model, unregister_model

FLAKY = {"phase": None}
MESSAGE = "flaky model fails in {}"

SUITE = """
[suite]
name = "flaky"
task = "twelve_body"
models = ["mlp", "flaky"]
rollout_horizons = [1]
rollout_starts = 2
audit_trials = 1
bootstrap_resamples = 100

[train]
epochs = 2
steps_per_epoch = 2
batch_size = 8
progress = false

[[variant]]
id = "h2"
history = 2

[models.flaky]
config = { hidden = 8, layers = 1 }

[models.mlp]
config = { hidden = 8 }
"""


def _fail_in(phase: str) -> None:
    if FLAKY["phase"] == phase:
        raise RuntimeError(MESSAGE.format(phase))


def _inside(function: str, file_end: str) -> bool:
    """Whether ``function`` of a file ending in ``file_end`` is on the call stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == function and frame.f_code.co_filename.endswith(file_end):
            return True
        frame = frame.f_back
    return False


def _flaky_forward(self, data):
    if self.training:
        _fail_in("train")
    elif _inside("predict", "metrics.py"):
        _fail_in("score")
    if data["pos"].dtype == torch.float64:
        _fail_in("audit")
    return super(type(self), self).forward(data)


@pytest.fixture(scope="module", autouse=True)
def flaky_model():
    @register_model("flaky", config=RadialFieldConfig, description="radial field that raises on request")
    def build_flaky(config, task):
        _fail_in("build")
        model = build_radial_field(config, task)
        model.__class__ = type("Flaky", (type(model),), {"forward": _flaky_forward})
        return model

    yield
    unregister_model("flaky")
    FLAKY["phase"] = None


def _write(folder) -> str:
    (folder / "flaky.toml").write_text(SUITE)
    return str(folder / "flaky.toml")


def _rows(results):
    return {r["name"]: r for r in results["groups"][0]["rows"]}


def _run(folder, caplog, **kw):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="irrepnet.bench"):
        try:
            return run_suite(load_suite(str(folder / "flaky.toml")), folder / "out", report=False, **kw), None
        except RowsFailed as exc:
            return exc.results, str(exc)


@pytest.mark.parametrize("phase", ["build", "train", "score", "audit"])
def test_a_failing_model_is_an_error_row_and_resume_reruns_only_it(tmp_path, caplog, phase):
    (tmp_path / "flaky.toml").write_text(SUITE)
    FLAKY["phase"] = phase
    results, final = _run(tmp_path, caplog)
    out = tmp_path / "out"
    rows = _rows(results)
    flaky = rows["flaky"]
    assert flaky["status"] == "error"
    assert f"RuntimeError: {MESSAGE.format(phase)}" in flaky["reason"]
    note = flaky["errors"][0]
    assert note["phase"] == phase and note["error"] == f"RuntimeError: {MESSAGE.format(phase)}"
    traceback_text = (out / note["traceback"]).read_text()
    assert "Traceback" in traceback_text and MESSAGE.format(phase) in traceback_text
    expected_folder = "h2/flaky" if phase == "build" else "h2/flaky/seed-0"
    assert note["traceback"] == f"{expected_folder}/error.txt"
    # every other row finished, and the file on disk says the same
    assert all(r["status"] == "ok" for name, r in rows.items() if name != "flaky")
    assert rows["mlp"]["metrics"]["test_mse"] > 0 and rows["mlp"]["seeds"]
    assert load_results(out / "results.json")["groups"][0]["rows"][-1]["status"] == "error"
    assert final.startswith("1 of ") and "rows failed (h2/flaky)" in final and "--resume" in final
    assert any(r.levelno == logging.ERROR and MESSAGE.format(phase) in r.getMessage() for r in caplog.records)

    mlp_seed = out / "h2" / "mlp" / "seed-0" / "seed.json"
    mlp_written = mlp_seed.stat().st_mtime_ns
    FLAKY["phase"] = None
    again, final = _run(tmp_path, caplog, resume=True)
    assert final is None
    lines = [r.getMessage() for r in caplog.records]
    assert "[1/2] mlp: finished earlier, kept" in lines  # the finished row is not touched
    assert "[2/2] flaky seed 0: training" in lines
    assert mlp_seed.stat().st_mtime_ns == mlp_written
    kept = lambda row: {k: v for k, v in row.items() if k != "comparisons"}  # noqa: E731
    assert kept(_rows(again)["mlp"]) == kept(rows["mlp"])  # its comparisons now include the repaired model
    fixed = _rows(again)["flaky"]
    assert fixed["status"] == "ok" and fixed["training"]["steps"] == 4 and "errors" not in fixed
    assert not (out / note["traceback"]).exists()  # no stale traceback beside a finished unit


def test_report_and_plots_show_the_failed_row(tmp_path, caplog):
    (tmp_path / "flaky.toml").write_text(SUITE)
    FLAKY["phase"] = "train"
    results, _ = _run(tmp_path, caplog)
    paths = write_all(results, tmp_path / "out")
    report = paths["report"].read_text()
    message = MESSAGE.format("train")
    assert (
        f"- flaky: **failed**: RuntimeError: {message} (seed 0, train; traceback in h2/flaky/seed-0/error.txt)"
        in report
    )
    assert paths["plots"]  # the other rows are drawn; the failed one has nothing to draw and is skipped


def test_the_command_exits_non_zero_with_the_final_line(tmp_path, capsys):
    (tmp_path / "flaky.toml").write_text(SUITE)
    FLAKY["phase"] = "build"
    code = main(["bench", "--suite", str(tmp_path / "flaky.toml"), "--models", "flaky", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0
    assert f"1 of 4 rows failed (h2/flaky); see {tmp_path / 'o' / 'report.md'}" in err
    assert "Traceback" not in err
    assert (tmp_path / "o" / "results.json").exists() and (tmp_path / "o" / "report.md").exists()


def test_an_interrupt_still_stops_the_run(tmp_path, monkeypatch):
    (tmp_path / "flaky.toml").write_text(SUITE)
    FLAKY["phase"] = None

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("irrepnet.bench.runner.make_trainer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_suite(load_suite(str(tmp_path / "flaky.toml")), tmp_path / "out", report=False)


def test_one_line_messages():
    assert one_line(RuntimeError("two\n  lines")) == "RuntimeError: two lines"
    assert one_line(KeyError()) == "KeyError"
    assert len(one_line(ValueError("x" * 1000))) == 300


def test_progress_lines_and_eta():
    now = [0.0]
    progress = UnitProgress(4, clock=lambda: now[0])
    assert progress.skip("egnn seed 0") == "[1/4] egnn seed 0: finished earlier, kept"
    assert progress.start("egnn seed 1") == "[2/4] egnn seed 1: training"
    now[0] = 10.0
    assert (
        progress.finish("test MSE 1e-3")
        == "[2/4] egnn seed 1: test MSE 1e-3; took 10.0 s; ETA 20.0 s (2 units left, 10.0 s each)"
    )
    progress.start("tfn seed 0")
    now[0] = 40.0
    line = progress.finish("FAILED while in train: RuntimeError: x")
    assert line.endswith("took 30.0 s; ETA 20.0 s (1 unit left, 20.0 s each)")  # the kept unit is not in the mean
    assert progress.skip("tfn seed 1", why="skipped") == "[4/4] tfn seed 1: skipped"
    assert progress.eta() == "all 4 units done"
    assert UnitProgress(1).skip("mlp") == "[1/1] mlp: finished earlier, kept"
    one = UnitProgress(1, clock=lambda: 0.0)
    one.start("mlp seed 0")
    assert one.finish("ok") == "[1/1] mlp seed 0: ok; took 0.0 s; all 1 unit done"
    assert [duration(s) for s in (4.25, 185, 7620)] == ["4.2 s", "3 min 05 s", "2 h 07 min"]


def test_a_failing_baseline_is_an_error_row_too(tmp_path, monkeypatch):
    from irrepnet.bench import groups

    suite = load_suite(_write(tmp_path))
    group = groups.prepare_group(suite, suite.variants[0], None, 0.1)
    real = groups.evaluate

    def evaluate(model, group, suite, run_dir, *args):
        if run_dir.name == "constant-velocity":
            raise ZeroDivisionError("no velocity")
        return real(model, group, suite, run_dir, *args)

    monkeypatch.setattr(groups, "evaluate", evaluate)
    rows = {r["name"]: r for r in groups.baseline_rows(group, suite, tmp_path / "out")}
    assert rows["constant-velocity"]["status"] == "error"
    assert rows["constant-velocity"]["reason"].startswith("ZeroDivisionError: no velocity (score; traceback in ")
    assert (tmp_path / "out" / rows["constant-velocity"]["errors"][0]["traceback"]).is_file()
    assert rows["zero-displacement"]["status"] == rows["constant-acceleration"]["status"] == "ok"


def test_the_schema_checks_the_failure_notes(tmp_path):
    from bench_fixtures import synthetic_results

    from irrepnet.bench import SchemaError, validate

    results = synthetic_results(tmp_path)
    failed = next(r for r in results["groups"][0]["rows"] if r["status"] == "error")
    failed["errors"] = [{"seed": 0, "phase": "train", "error": "RuntimeError: x", "traceback": "a/error.txt"}]
    validate(results)
    del failed["errors"][0]["phase"]
    with pytest.raises(SchemaError, match=r"rows\[7\]\.errors\[0\]: missing key 'phase'"):
        validate(results)
