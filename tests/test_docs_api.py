"""The documentation's API-page generator (docs/_ext/irrepnet_api.py), without a Sphinx build.

The full build (`make docs`, with -W) runs in CI; these check the pieces whose mistakes
would not show as a warning there: which names are public, where each is documented,
and the rewriting of the docstrings' plain-text tables.
"""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the docs extra (pip install -e '.[docs]') is not installed")

EXT = Path(__file__).resolve().parents[1] / "docs" / "_ext" / "irrepnet_api.py"


@pytest.fixture(scope="module")
def ext():
    spec = importlib.util.spec_from_file_location("irrepnet_api_under_test", EXT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def api(ext):
    return ext.ApiMap()


def test_public_modules_skip_private_ones(ext):
    modules = ext.public_modules()
    assert {"irrepnet", "irrepnet.interface", "irrepnet.nn", "irrepnet.models.egnn"} <= set(modules)
    assert not [m for m in modules if any(part.startswith("_") for part in m.split("."))]


def test_each_object_is_documented_once_at_its_shallowest_public_home(api):
    import irrepnet
    from irrepnet.train import Trainer

    # re-exported at the top level, documented where it is defined
    assert api.home[id(irrepnet.IrrepsModule)] == "irrepnet.interface.IrrepsModule"
    # defined in irrepnet.train.loop, documented where users import it from
    assert api.home[id(Trainer)] == "irrepnet.train.Trainer"
    # a private module's function is documented at its public package
    from irrepnet.graph import radius_graph

    assert api.home[id(radius_graph)] == "irrepnet.graph.radius_graph"
    assert len(set(api.home.values())) == len(api.home)


def test_public_names_follow_all_when_a_module_has_one(ext):
    import irrepnet.graph

    assert ext.public_names("irrepnet.graph") == list(irrepnet.graph.__all__)
    # without __all__: what the module defines, constants included, never a private name
    names = ext.public_names("irrepnet.keys")
    assert "POS" in names and not [n for n in names if n.startswith("_")]


def test_alias_lookup_maps_another_path_to_the_home(ext, api, monkeypatch):
    monkeypatch.setattr(ext, "_API", api)
    obj, rest = ext._lookup("irrepnet.train.loop.Trainer.fit")
    assert api.home[id(obj)] == "irrepnet.train.Trainer" and rest == ["fit"]
    assert ext._lookup("irrepnet.train.loop.NoSuchName") is None


def test_plain_tables_become_definition_lists(ext):
    lines = [
        "Keys:",
        "",
        "``schema``            the name",
        "``schema_version``    ``3``; older versions",
        "                      still load",
        "",
        "After.",
    ]
    ext._plain_tables(None, "module", "m", None, None, lines)
    assert lines[2:8] == [
        "``schema``",
        "   the name",
        "``schema_version``",
        "   ``3``; older versions",
        "   still load",
        "",
    ]
    assert lines[-1] == "After."


def test_plain_tables_leave_bordered_tables_and_paragraphs_alone(ext):
    table = ["", "======  =====", "``a``   one", "``b``   two", "======  =====", ""]
    paragraph = ["", "``x`` is a literal at the start", "of a paragraph.", ""]
    for lines in (table, paragraph):
        before = list(lines)
        ext._plain_tables(None, "module", "m", None, None, lines)
        assert lines == before


def test_summaries_lose_their_roles(ext):
    text = "The :class:`ModelEntry` of x; raises :class:`~irrepnet.registry.UnknownModelError`."
    assert ext._summary_text(text) == "The ``ModelEntry`` of x; raises ``UnknownModelError``."
