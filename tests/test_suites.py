"""irrepnet/suites: the packaged suite files, the name lookup and ``irrepnet bench --list-suites``."""

import pytest

from irrepnet import suites
from irrepnet.bench.suite import load_suite
from irrepnet.cli import main

# the suites the README, the tutorials and the committed results name
NAMED = ("quick", "dmol", "dmol-residual", "dmol-bonds", "dmol-force", "nbody", "molecules", "peers", "peers-nbody")


def test_the_suites_are_inside_the_package():
    """A wheel carries only the package: the suite files must be in it, not in the repository's benchmarks/."""
    import irrepnet

    package = irrepnet.__path__[0]
    listed = suites.list_suites()
    assert {s.name for s in listed} >= set(NAMED)
    for s in listed:
        assert str(s.path.resolve()).startswith(str(package)), s.path
        assert s.description and "\n" not in s.description, f"{s.name}: give [suite] a one-line description"


@pytest.mark.parametrize("name", [s.name for s in suites.list_suites()])
def test_every_packaged_suite_loads_by_name(name):
    suite = load_suite(name)
    assert suite.name == name and suite.file == str(suites.find_suite(name))


def test_a_suite_given_by_path_still_works(tmp_path, monkeypatch):
    text = suites.find_suite("quick").read_text().replace('name = "quick"', 'name = "mine"')
    (tmp_path / "mine.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    for given in ("mine.toml", "./mine.toml", str(tmp_path / "mine.toml")):
        assert load_suite(given).name == "mine"
    with pytest.raises(FileNotFoundError, match="suite file other.toml not found"):
        suites.find_suite("other.toml")
    with pytest.raises(FileNotFoundError, match="not found"):
        suites.find_suite("sub/quick")  # a folder in it: a path, never a packaged name


def test_a_folder_of_the_same_name_does_not_shadow_a_packaged_suite(tmp_path, monkeypatch):
    (tmp_path / "quick").mkdir()  # e.g. a run folder called quick
    monkeypatch.chdir(tmp_path)
    assert suites.find_suite("quick") == suites.SUITE_DIRS[0] / "quick.toml"


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match=r"no suite named 'quik'; known suites: .*quick.*--list-suites"):
        suites.find_suite("quik")


def test_bench_list_suites(capsys):
    assert main(["bench", "--list-suites"]) == 0
    out = capsys.readouterr().out
    assert f"suites in {suites.SUITE_DIRS[0]}" in out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    for name in NAMED:
        assert name in lines
    quick = next(s for s in suites.list_suites() if s.name == "quick")
    assert lines["quick"].split(None, 1)[1] == quick.description


def test_a_broken_suite_file_does_not_hide_the_others(tmp_path, monkeypatch):
    (tmp_path / "good.toml").write_text('[suite]\ndescription = "fine"\n')
    (tmp_path / "bad.toml").write_text("[suite\n")
    monkeypatch.setattr(suites, "SUITE_DIRS", (tmp_path,))
    found = {s.name: s.description for s in suites.list_suites()}
    assert found["good"] == "fine" and found["bad"].startswith("(not valid TOML")
    assert "good" in suites.format_suites(suites.list_suites())
