"""Ablation rows: ``[models.ALIAS] model = "NAME"`` builds a registered model under another row name."""

from __future__ import annotations

import pytest

from irrepnet.bench import load_suite, run_suite
from irrepnet.registry import ConfigError, UnknownModelError

SUITE = """
[suite]
name = "aliases"
models = ["radial-field", "radial-field-wide"]
seeds = [0]
rollout_horizons = [1]
rollout_starts = 2
audit_trials = 1

[train]
epochs = 1
steps_per_epoch = 2
batch_size = 8
progress = false

[models.radial-field]
config = { hidden = 8, layers = 1 }

[models.radial-field-wide]
model = "radial-field"
config = { hidden = 24, layers = 1 }
"""


def test_an_alias_row_is_the_registered_model_at_its_own_config(tmp_path):
    f = tmp_path / "aliases.toml"
    f.write_text(SUITE)
    suite = load_suite(str(f))
    assert suite.model_names() == ["radial-field", "radial-field-wide"]
    assert suite.registered_name("radial-field-wide") == "radial-field"
    results = run_suite(suite, tmp_path / "out", report=False)
    rows = {r["name"]: r for r in results["groups"][0]["rows"] if r["kind"] == "model"}
    assert set(rows) == {"radial-field", "radial-field-wide"}
    assert rows["radial-field"]["config"]["hidden"] == 8 and rows["radial-field-wide"]["config"]["hidden"] == 24
    assert rows["radial-field-wide"]["parameters"] > rows["radial-field"]["parameters"]


@pytest.mark.parametrize(
    "table, message",
    [
        ('[models.mine]\nmodel = "no-such-model"\n', "no-such-model"),
        ("[models.mine]\nmodel = 3\n", "must be the name of a registered model"),
        ('[models.egnn]\nmodel = "mlp"\n', "is a registered model itself"),
    ],
)
def test_bad_aliases_are_clear_errors(tmp_path, table, message):
    f = tmp_path / "bad.toml"
    f.write_text('[suite]\nname = "x"\n' + table)
    with pytest.raises((ConfigError, UnknownModelError), match=message):
        load_suite(str(f))
