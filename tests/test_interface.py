import pytest
import torch

from irrepnet import keys as K
from irrepnet.interface import (
    IrrepsMismatchError,
    IrrepsModel,
    IrrepsModule,
    IrrepsSequential,
    MissingFieldError,
    Symmetry,
    TaskSpec,
)


class Writer(IrrepsModule):
    def __init__(self, irreps):
        super().__init__({K.POS: "1o"}, {"feat": irreps})

    def forward(self, data):
        return {**data, "feat": data[K.POS].repeat(1, self.irreps_out["feat"].dim // 3)}


class Reader(IrrepsModule):
    def __init__(self, irreps):
        super().__init__({"feat": irreps}, {K.DISPLACEMENT: "1o"})

    def forward(self, data):
        return {**data, K.DISPLACEMENT: data["feat"][:, :3]}


K.register_field("feat", K.NODE)


def test_sequential_composes_and_runs():
    seq = IrrepsSequential(Writer("2x1o"), Reader("2x1o"), irreps_in={K.POS: "1o", K.BATCH: None})
    out = seq({K.POS: torch.ones(3, 3)})
    assert out[K.DISPLACEMENT].shape == (3, 3)
    assert set(seq.irreps_out) == {"feat", K.DISPLACEMENT}
    assert set(seq.irreps_in) == {K.POS}


def test_mismatch_names_field_and_both_irreps():
    with pytest.raises(IrrepsMismatchError) as e:
        IrrepsSequential(Writer("2x1o"), Reader("1x1o + 1x1e"), irreps_in={K.POS: "1o"})
    msg = str(e.value)
    assert "'feat'" in msg and "2x1o" in msg and "1x1o+1x1e" in msg and "Reader" in msg and "Writer" in msg


def test_mismatch_on_the_inputs_is_caught_too():
    with pytest.raises(IrrepsMismatchError, match="'pos'.*1o.*1e"):
        IrrepsSequential(Writer("1x1o"), irreps_in={K.POS: "1e"})


def test_missing_field_is_named():
    with pytest.raises(MissingFieldError, match="'feat'"):
        IrrepsSequential(Reader("1x1o"), irreps_in={K.POS: "1o"})


def test_non_irreps_module_rejected():
    with pytest.raises(TypeError, match="not an IrrepsModule"):
        IrrepsSequential(torch.nn.Linear(3, 3), irreps_in={K.POS: "1o"})


def test_repr_shows_in_and_out():
    r = repr(Writer("2x1o"))
    assert "Writer(" in r and "pos: 1x1o" in r and "-> {feat: 2x1o}" in r


def test_symmetry_parse_and_claims():
    assert Symmetry.parse("E(3)") is Symmetry.E3 and Symmetry.parse("se3") is Symmetry.SE3
    assert Symmetry.parse("none") is Symmetry.NONE
    assert Symmetry.E3.reflection and not Symmetry.SE3.reflection and Symmetry.SE3.rotation
    assert not Symmetry.NONE.rotation
    with pytest.raises(ValueError, match="unknown symmetry"):
        Symmetry.parse("SO(2)")
    m = IrrepsModel({K.POS: "1o"}, {K.DISPLACEMENT: "1o"}, symmetry="SE(3)")
    assert m.symmetry is Symmetry.SE3 and m.output_fields == (K.DISPLACEMENT,)


def test_taskspec_normalises_irreps():
    t = TaskSpec("toy", {K.POS: "1o", K.VEL_HISTORY: "2x1o"}, K.DISPLACEMENT)
    assert t.inputs[K.VEL_HISTORY].dim == 6


def test_unregistered_field_kind_error_says_how_to_register():
    with pytest.raises(KeyError, match="register_field"):
        K.field_kind("no_such_field")
    with pytest.raises(ValueError, match="already registered"):
        K.register_field(K.POS, K.EDGE)
