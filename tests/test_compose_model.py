"""A new architecture composed from irrepnet's layers and registered in under 30 lines.

The block between the ``--- composed model ---`` markers is all a user writes: a
config, a builder that chains the shared layers (graph, spherical harmonics, radial
embedding, one tensor-product convolution, a gate, a vector head) into a
:class:`~irrepnet.interface.SequentialModel`, and the registration. The tests then
put it through the shared conformance suite, unchanged, on both tasks.
"""

import inspect
from pathlib import Path

import pytest
import test_conformance as conformance
import torch

from irrepnet.registry import list_models, unregister_model

# isort: split
# --- composed model ---
from dataclasses import dataclass

from irrepnet import SequentialModel, register_model
from irrepnet import keys as K
from irrepnet import nn as L


@dataclass
class OneConvConfig:
    hidden: str = "8x0e + 8x1o + 4x2e"
    lmax: int = 2
    r_max: float = 3.5
    n_basis: int = 8


def build_one_conv(cfg: OneConvConfig, task):
    inputs, sh, gate = L.NodeInputs(task.inputs), L.SphericalHarmonicsEdgeAttrs(cfg.lmax), L.Gate(cfg.hidden)
    graph, radial = L.GraphConstruction("radius", r=cfg.r_max), L.RadialEmbedding(cfg.n_basis, cfg.r_max)
    features_in, features_out = inputs.irreps_out[K.NODE_FEATURES], gate.irreps_in[K.NODE_FEATURES]
    conv = L.TensorProductConv(features_in, features_out, sh.sh_irreps, cfg.n_basis, normalization="mean")
    head = L.VectorHead(gate.irreps_out[K.NODE_FEATURES], K.DISPLACEMENT)
    layers = [inputs, graph, sh, radial, conv, gate, head]
    return SequentialModel(*layers, irreps_in=task.inputs, outputs=[K.DISPLACEMENT], symmetry="E(3)")


# --- end ---

NAME = "one-conv"


def test_the_composed_model_is_under_30_lines():
    text = Path(__file__).read_text()
    block = text.split("# --- composed model ---\n")[1].split("# --- end ---")[0]
    lines = [ln for ln in block.splitlines() if ln.strip()]
    registration = 1  # the decorator line of the fixture below
    assert len(lines) + registration < 30, len(lines)


@pytest.fixture(scope="module")
def registered():
    register_model(NAME, config=OneConvConfig, description="one TP convolution + gate")(build_one_conv)
    yield NAME
    unregister_model(NAME)


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    return conformance.make_batches(tmp_path_factory.mktemp("cache"))


CHECKS = [n for n in dir(conformance.TestConformance) if n.startswith("test_")]


@pytest.mark.parametrize("task", conformance.TASKS)
@pytest.mark.parametrize("check", CHECKS)
def test_the_composed_model_passes_the_conformance_suite(registered, task, check, batches):
    assert registered in list_models()
    method = getattr(conformance.TestConformance(), check)
    if "dtype" in inspect.signature(method).parameters:
        for dtype in (torch.float32, torch.float64):
            method(registered, task, batches, dtype)
    else:
        method(registered, task, batches)


def test_the_composed_model_is_a_radius_graph_tensor_product_model(registered, batches):
    from irrepnet.registry import build_model

    spec, batch = batches["twelve_body"]
    model = build_model(registered, spec)
    assert model.symmetry.value == "E(3)"
    assert str(model.irreps_out[K.DISPLACEMENT]) == "1x1o"
    assert sum(p.numel() for p in model.parameters()) > 0
