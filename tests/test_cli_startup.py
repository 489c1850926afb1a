"""The CLI starts without torch (``--help``, ``--version``), and ``-v``/``-q`` set its one log handler.

"Fast" is checked in its machine-independent form: which modules a fresh interpreter has
loaded after the help path. Each check has a positive control, so a detector that never
sees torch cannot pass.
"""

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

import irrepnet
from irrepnet.cli import main

HEAVY = ("torch", "e3nn", "numpy", "matplotlib")
ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


HELP_PATH = """
import contextlib, io
from irrepnet.cli import build_parser, main
commands = list(build_parser()._subparsers._group_actions[0].choices)
assert len(commands) >= 8, commands
for argv in (["--help"], ["--version"], *([c, "--help"] for c in commands)):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit as e:
            assert e.code == 0, (argv, e.code)
"""


@pytest.mark.parametrize(
    "code, heavy",
    [
        ("import irrepnet", []),
        ("import irrepnet.cli", []),
        (HELP_PATH, []),
        ("import irrepnet.cli, numpy", ["numpy"]),  # control: the detector sees what was imported
        ("import irrepnet; irrepnet.TaskSpec", ["torch", "e3nn"]),  # control: the lazy API loads on use
    ],
    ids=["import-irrepnet", "import-cli", "help-paths", "control-numpy", "control-lazy-attribute"],
)
def test_help_path_imports_no_torch(code, heavy):
    loaded = _loaded_after(code)
    if heavy:
        assert set(heavy) <= set(loaded), loaded
    else:
        assert loaded == [], f"{loaded} imported at start: import them inside the commands that need them"


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == f"irrepnet {irrepnet.__version__}"
    assert re.fullmatch(r"irrepnet \d+\.\d+\.\d+\S*", out), out  # X.Y.Z (the package's one version source)


def test_version_of_the_installed_command():
    res = subprocess.run([sys.executable, "-m", "irrepnet", "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == f"irrepnet {irrepnet.__version__}"


def test_lazy_package_keeps_the_api():
    from irrepnet import TaskSpec, audit  # the PEP 562 path of "from X import name"

    assert irrepnet.audit is audit and irrepnet.TaskSpec is TaskSpec
    assert irrepnet.models.__name__ == "irrepnet.models"  # a submodule never imported explicitly here
    assert {"audit", "build_model", "IrrepsModule", "keys"} <= set(dir(irrepnet))
    assert set(irrepnet.__all__) <= set(dir(irrepnet)) and all(hasattr(irrepnet, n) for n in irrepnet.__all__)
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        irrepnet.no_such_thing  # noqa: B018


def test_residual_help_names_every_residual():
    """--residual has no choices= (they live beside torch code); its help must not drift from them."""
    from irrepnet.cli import build_parser
    from irrepnet.train.config import RESIDUALS

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    (action,) = [a for a in train._actions if a.dest == "residual"]
    assert set(RESIDUALS) - {"none"} <= {w.strip(",") for w in action.help.split()}


def test_bad_residual_is_a_one_line_error(tmp_path, capsys):
    code = main(["train", "--model", "mlp", "--out", str(tmp_path / "o"), "--residual", "constant_jerk"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("irrepnet: error:") and "constant_velocity" in err and "Traceback" not in err


# -- logging: -v / -q ----------------------------------------------------------------------------

PLUGIN = """
import logging
log = logging.getLogger("irrepnet.plugin_under_test")
log.debug("DEBUG-LINE")
log.info("INFO-LINE")
log.warning("WARNING-LINE")
"""


@pytest.mark.parametrize(
    "before, after, shown",
    [
        ([], [], {"INFO", "WARNING"}),
        (["-v"], [], {"DEBUG", "INFO", "WARNING"}),
        ([], ["-v"], {"DEBUG", "INFO", "WARNING"}),
        (["-q"], [], {"WARNING"}),
        ([], ["--quiet"], {"WARNING"}),
    ],
)
def test_verbosity_sets_the_level_of_the_irrepnet_logger(tmp_path, capsys, before, after, shown):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(PLUGIN)
    # audit without --model: the plugin (imported first) logs, then a one-line user error
    code = main([*before, "audit", "--import", str(plugin), *after])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert {lvl for lvl in ("DEBUG", "INFO", "WARNING") if f"{lvl}-LINE" in err} == shown
    assert "irrepnet: warning: WARNING-LINE" in err  # warnings read like the CLI's errors
    assert "irrepnet: error: give --model NAME" in err  # -q never hides an error


def test_one_handler_however_often_main_runs(tmp_path, capsys):
    for i in range(3):
        plugin = tmp_path / f"plugin{i}.py"
        plugin.write_text(PLUGIN)
        assert main(["audit", "--import", str(plugin)]) == 2
        err = capsys.readouterr().err
        assert err.count("INFO-LINE") == 1, err
    ours = [h for h in logging.getLogger("irrepnet").handlers if not isinstance(h, logging.NullHandler)]
    assert len(ours) == 1


def test_quiet_keeps_the_results(tmp_path, capsys):
    f = tmp_path / "chain.npz"
    assert main(["-q", "simulate", "polymer", "--out", str(f), "--frames", "16", "--beads", "4"]) == 0
    assert f"wrote {f}" in capsys.readouterr().out


def test_v_and_q_together_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["models", "-v", "-q"])
    assert e.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_every_subcommand_of_the_parser_has_a_command_and_back():
    from irrepnet.cli import COMMANDS, build_parser

    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert set(subcommands) == set(COMMANDS)
