from dataclasses import dataclass

import pytest

from irrepnet import keys as K
from irrepnet.bench.suite import Suite
from irrepnet.interface import IrrepsModel, Symmetry, TaskSpec
from irrepnet.registry import (
    ConfigError,
    UnknownModelError,
    build_model,
    get_model_entry,
    list_models,
    register_model,
    unavailable_reason,
    unregister_model,
)
from irrepnet.tasks import task_spec

TASK = TaskSpec("toy", {K.POS: "1o"}, K.DISPLACEMENT)


@dataclass
class ToyConfig:
    scale: float = 1.0


class Toy(IrrepsModel):
    symmetry = Symmetry.E3

    def __init__(self, scale):
        super().__init__({K.POS: "1o"}, {K.DISPLACEMENT: "1o"})
        self.scale = scale

    def forward(self, data):
        return {K.DISPLACEMENT: 0 * self.scale * data[K.POS]}


@pytest.fixture
def toy_registered():
    @register_model("toy-model", config=ToyConfig, description="a toy")
    def build(config, task):
        return Toy(config.scale)

    yield "toy-model"
    unregister_model("toy-model")


def test_register_and_build_with_overrides(toy_registered):
    assert "toy-model" in list_models()
    m = build_model("toy-model", TASK, scale=3.0)
    assert isinstance(m, Toy) and m.scale == 3.0
    assert build_model("toy-model", TASK, {"scale": 2.0}).scale == 2.0
    assert get_model_entry("toy-model").description == "a toy"


def test_unknown_config_key(toy_registered):
    with pytest.raises(ConfigError, match=r"no config option\(s\) \['hiden'\].*scale"):
        build_model("toy-model", TASK, hiden=3)


def test_unknown_model_suggests_close_names(toy_registered):
    with pytest.raises(UnknownModelError, match="unknown model 'toy-modle'.*Did you mean 'toy-model'"):
        build_model("toy-modle", TASK)


def test_duplicate_name_and_bad_config_rejected(toy_registered):
    with pytest.raises(ValueError, match="already registered"):
        register_model("toy-model", config=ToyConfig)(lambda c, t: Toy(1.0))
    with pytest.raises(TypeError, match="dataclass"):
        register_model("other", config=dict)


def test_builder_must_return_a_model():
    @register_model("not-a-model", config=ToyConfig)
    def build(config, task):
        return object()

    try:
        with pytest.raises(TypeError, match="not an IrrepsModel"):
            build_model("not-a-model", TASK)
    finally:
        unregister_model("not-a-model")


# --- optional models: peers without their packages -------------------------------------

PEERS = ("egnn-pytorch", "se3-transformer-pytorch")


@pytest.fixture
def peers_not_installed(monkeypatch):
    """As if ``irrepnet[peers]`` were not installed, whether it is or not."""
    from irrepnet import registry

    real = registry.module_available
    monkeypatch.setattr(
        registry, "module_available", lambda m: m not in ("egnn_pytorch", "se3_transformer_pytorch") and real(m)
    )


def test_peers_are_registered_as_optional_peers():
    for name in PEERS:
        entry = get_model_entry(name)
        assert entry.peer and entry.extra == "peers" and entry.requires
        assert entry.install_command == "pip install 'irrepnet[peers]'"
    assert set(PEERS) <= set(list_models())
    assert not set(PEERS) & set(list_models(peers=False))


@pytest.mark.parametrize("name", PEERS)
def test_building_a_peer_without_its_package_says_how_to_install_it(name, peers_not_installed):
    assert not get_model_entry(name).available
    assert "pip install 'irrepnet[peers]'" in unavailable_reason(name)
    with pytest.raises(
        ConfigError,
        match=rf"model '{name}' needs \w+, which is not installed: "
        r"pip install 'irrepnet\[peers\]'",
    ):
        build_model(name, task_spec("twelve_body", history=2))
    assert name in list_models()  # still listed, and still configurable (suites load)
    get_model_entry(name).make_config({"dim": 8})


def test_a_model_needing_a_missing_module_without_an_extra():
    @register_model("toy-optional", config=ToyConfig, requires=("no_such_module_for_irrepnet",))
    def build(config, task):
        return Toy(config.scale)

    try:
        assert unavailable_reason("toy-optional") == (
            "model 'toy-optional' needs no_such_module_for_irrepnet, which "
            "is not installed: pip install no-such-module-for-irrepnet"
        )
        with pytest.raises(ConfigError, match="not installed"):
            build_model("toy-optional", TASK)
        assert not get_model_entry("toy-optional").peer and "toy-optional" in list_models(peers=False)
    finally:
        unregister_model("toy-optional")
    assert unavailable_reason("egnn") is None and get_model_entry("egnn").available


@pytest.mark.parametrize("installed", [True, False])
def test_suite_star_never_expands_to_peers(installed, monkeypatch):
    from irrepnet import registry

    if not installed:
        monkeypatch.setattr(registry, "module_available", lambda m: False)
    star = Suite("s", models=["*"]).model_names()
    assert "egnn" in star and not set(PEERS) & set(star)
    named = Suite("s", models=["egnn", *PEERS]).model_names()
    assert named == ["egnn", *PEERS]  # named, they are trained (or skipped, saying why, without the package)


def test_conformance_skips_a_peer_without_its_package(peers_not_installed):
    from test_conformance import _build

    with pytest.raises(pytest.skip.Exception, match=r"pip install 'irrepnet\[peers\]'"):
        _build("egnn-pytorch", task_spec("twelve_body", history=2))


def test_peer_suites_load_without_the_packages(peers_not_installed):
    from irrepnet.bench.suite import load_suite

    for suite in ("peers", "peers-nbody"):
        assert load_suite(suite).model_names() == ["egnn", "egnn-pytorch", "se3-transformer", "se3-transformer-pytorch"]
