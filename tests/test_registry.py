from dataclasses import dataclass

import pytest

from irrepnet import keys as K
from irrepnet.interface import IrrepsModel, Symmetry, TaskSpec
from irrepnet.registry import (ConfigError, UnknownModelError, build_model, get_model_entry, list_models,
                               register_model, unregister_model)

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
