"""Unit-free models: the fitted length (irrepnet.train.length) and the scale test of issue 25.

The same trajectory in another unit (times 0.01, 1, 100) must train the same model.
Tolerances: in float64 the pipeline is scale-free up to rounding; the measured spread
of test MSE / zero-displacement MSE over the three scales was at most 2.0e-15 for every
installed model (benchmarks/results/scale-invariance, 4 steps) and 4.9e-15 for
radial-field and egnn-vel after 8 steps. 1e-9 leaves six orders of magnitude for other
platforms and BLAS orders, and is far below what it guards against (without the length,
radial-field went from 0.063 at x1 to 1.1e4 times zero at x100). In float32 the inputs
round differently at each scale; the spread measured was 2.0e-7 (radial-field) and
2.3e-7 (egnn-vel), and 1e-4 is allowed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from irrepnet import keys as K
from irrepnet.registry import build_model, list_models, unavailable_reason
from irrepnet.tasks import task_spec
from irrepnet.train.config import TrainConfig
from irrepnet.train.length import length_scale, nonfinite_hint
from irrepnet.train.loop import Trainer
from irrepnet.train.normalization import NormalizedModel, fit_scales

SCALES = (0.01, 1.0, 100.0)
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


def _trajectory(frames: int) -> np.ndarray:
    from irrepnet.data.reference import reference_trajectory

    return reference_trajectory()[:frames]


def mse_over_zero(name: str, scale: float, *, dtype="float64", frames=80, steps=4, length=True) -> float:
    """Test MSE / zero-displacement MSE of ``name`` trained on the reference chain times ``scale``."""
    from irrepnet.data import split_trajectory
    from irrepnet.metrics import predict

    train, test = split_trajectory(_trajectory(frames) * scale, history=2)
    torch.manual_seed(0)
    model = build_model(name, task_spec("twelve_body", history=2, num_nodes=12))
    if any(p.requires_grad for p in model.parameters()):
        config = TrainConfig(epochs=2, max_steps=steps, batch_size=16, dtype=dtype, progress=False)
        trainer = Trainer(model, train, config=config)
        if not length:  # the positive control: positions in the data's unit, as before the fitted length
            trainer.model.length_scale = None
        model = trainer.fit().model
    pred, true = predict(model, test)
    return float(((pred - true) ** 2).mean() / (true**2).mean())


def spread(values) -> float:
    return max(values) / min(values) - 1.0


def test_length_is_the_rms_pair_distance_and_scales_with_the_data():
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(5, 7, 3, generator=gen, dtype=torch.float64)
    brute = torch.cat([torch.pdist(p) for p in pos]).pow(2).mean().sqrt()
    assert length_scale({K.POS: pos}) == pytest.approx(float(brute), rel=1e-12)
    rot = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))[0]
    moved = 37.0 * (pos @ rot.T) + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    assert length_scale({K.POS: moved}) == pytest.approx(37.0 * float(brute), rel=1e-12)
    # graphs of different sizes, (n, 3) with num_nodes: pairs counted per graph
    ragged = torch.cat([pos[0, :3], pos[1]])
    pairs = torch.cat([torch.pdist(pos[0, :3]), torch.pdist(pos[1])])
    got = length_scale({K.POS: ragged, K.NUM_NODES: torch.tensor([3, 7])})
    assert got == pytest.approx(float(pairs.pow(2).mean().sqrt()), rel=1e-12)
    assert length_scale({K.POS: torch.zeros(4, 3, 3)}) is None  # nothing to divide by
    with pytest.raises(ValueError, match="not finite"):
        length_scale({K.POS: torch.full((2, 3, 3), 1e300, dtype=torch.float64) * torch.arange(3.0)[:, None]})


def test_the_wrapper_reads_positions_in_the_fitted_unit_and_keeps_it_in_its_scales(tiny_task):
    arrays = tiny_task.train.arrays()
    model = build_model("radial-field", tiny_task.spec)
    scales = fit_scales(model, arrays, K.DISPLACEMENT, arrays[K.TARGET_DISP])
    assert scales["length"] == pytest.approx(length_scale(arrays))
    wrapped = NormalizedModel(model, scales)
    batch = tiny_task.train.batch(range(2))
    seen = wrapped.normalize_inputs(batch)
    torch.testing.assert_close(seen[K.POS], batch[K.POS] / scales["length"])
    assert wrapped.scales["length"] == scales["length"]  # what checkpoints store
    assert "length" not in NormalizedModel(model, {"inputs": {}, "outputs": {}}).scales  # old checkpoints: data unit
    with pytest.raises(ValueError, match="length"):
        NormalizedModel(model, {**scales, "length": math.inf})


def test_scale_free_training_fast():
    """radial-field (the most unit-dependent before) and mlp (no geometry: the wrapper does it); the rest is slow."""
    for name in ("radial-field", "mlp"):
        ratios = [mse_over_zero(name, s) for s in SCALES]
        assert spread(ratios) < TOLERANCE["float64"], (name, ratios)
    ratios32 = [mse_over_zero("radial-field", s, dtype="float32") for s in SCALES]
    assert spread(ratios32) < TOLERANCE["float32"], ratios32
    # the control: with positions in the data's unit the same test fails by orders of magnitude
    control = [mse_over_zero("radial-field", s, length=False) for s in (1.0, 100.0)]
    assert spread(control) > 1.0, control


def _registered_here():
    return [n for n in list_models() if unavailable_reason(n) is None]


@pytest.mark.slow
@pytest.mark.parametrize("name", _registered_here())
def test_scale_free_training_every_model(name):
    ratios = [mse_over_zero(name, s) for s in SCALES]
    assert all(np.isfinite(ratios)) and spread(ratios) < TOLERANCE["float64"], ratios


def test_a_nan_before_the_first_update_names_the_data_scale():
    """positions read in the data's unit (normalize = false) that overflow float32 at step 0."""
    from irrepnet.data import split_trajectory

    train, _ = split_trajectory(_trajectory(40) * 1e19, history=2)
    torch.manual_seed(0)
    model = build_model("egnn-vel", task_spec("twelve_body", history=2, num_nodes=12))
    config = TrainConfig(epochs=1, max_steps=1, batch_size=8, progress=False, normalize=False)
    with pytest.raises(FloatingPointError, match="at step 0.*before any update, so from the data's scale") as err:
        Trainer(model, train, config=config).fit()
    assert "\n" not in str(err.value)


def test_nonfinite_hints():
    pos = torch.full((3, 3), 2.0e3)
    assert "before any update" in nonfinite_hint({K.POS: pos}, 1.5, torch.float32, 0)
    assert "fitted length 1.5" in nonfinite_hint({K.POS: pos}, 1.5, torch.float32, 0)
    assert "data's unit" in nonfinite_hint({K.POS: pos}, None, torch.float32, 7)
    assert nonfinite_hint({K.POS: pos}, 1.5, torch.float32, 7) == "lower the learning rate"
    hint = nonfinite_hint({K.POS: pos * math.inf}, 1.5, torch.float32, 0)
    assert "['pos'] hold values that are not finite in float32" in hint


def test_the_audit_passes_through_the_length_and_checkpoints_keep_it(tiny_task, tmp_path):
    from irrepnet.equivariance import audit

    torch.manual_seed(0)
    model = build_model("egnn-vel", tiny_task.spec)
    trainer = Trainer(
        model, tiny_task.train, config=TrainConfig(epochs=1, max_steps=1, progress=False), out_dir=tmp_path / "run"
    )
    assert trainer.model.length_scale == pytest.approx(length_scale(trainer.train_set.arrays()))  # no valid part
    batch = tiny_task.test.batch(range(3))
    assert audit(trainer.model, batch, dtype=torch.float64, trials=1).passed  # a scalar commutes with O(3)
    trainer.fit()
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["scales"]["length"] == trainer.model.length_scale


# -- a cutoff read in the data's unit (normalize = false) is said, not silent ------------------


class _CutoffModel(torch.nn.Module):
    def __init__(self, r_max):
        super().__init__()
        self.inner = torch.nn.Module()
        self.inner.r_max = r_max


def _pairs_on_a_line(spacing: float) -> dict:
    """Two samples of three nodes on a line, ``spacing`` apart: pair distances spacing and 2 x spacing."""
    line = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64) * spacing
    return {K.POS: torch.stack([line, line + 1.0])}


def test_unscaled_cutoff_warning_names_both_units_and_the_share_beyond():
    from irrepnet.train.length import unscaled_cutoff_warning

    arrays = _pairs_on_a_line(4.0)  # distances 4 (4 of 6 pairs) and 8 (2 of 6)
    length = length_scale(arrays)
    text = unscaled_cutoff_warning(_CutoffModel(5.0), arrays)
    assert text is not None
    assert "normalize = false" in text and "r_max = 5" in text
    assert f"{5.0 / length:.3g} fitted lengths" in text
    assert "33.3% of the training pairs lie beyond it" in text  # the two pairs at distance 8
    assert "normalize = true" in text


def test_unscaled_cutoff_warning_is_quiet_without_a_cutoff_or_when_the_units_agree():
    from irrepnet.train.length import model_cutoffs, unscaled_cutoff_warning

    assert unscaled_cutoff_warning(_CutoffModel(None), _pairs_on_a_line(4.0)) is None  # no cutoff
    assert unscaled_cutoff_warning(torch.nn.Linear(2, 2), _pairs_on_a_line(4.0)) is None
    unit = _pairs_on_a_line(1.0 / length_scale(_pairs_on_a_line(1.0)))  # fitted length exactly 1
    assert abs(length_scale(unit) - 1.0) < 1e-12
    assert unscaled_cutoff_warning(_CutoffModel(5.0), unit) is None
    assert model_cutoffs(_CutoffModel(2.5)) == [2.5]
    # a cutoff beyond every pair (set in the data's unit on purpose): nothing to say
    assert unscaled_cutoff_warning(_CutoffModel(8.5), _pairs_on_a_line(4.0)) is None


@pytest.mark.parametrize("name, warns", [("tfn", True), ("egnn-vel", False)])
def test_trainer_warns_when_a_cutoff_model_trains_unnormalised(name, warns, caplog):
    """On nbody tfn's default cutoff (2.5, meant as 10.4 in data units) would cut most pairs."""
    if unavailable_reason(name):
        pytest.skip(unavailable_reason(name))
    from irrepnet.tasks import load_task

    task = load_task("nbody", n_train=30)
    model = build_model(name, task.spec)
    with caplog.at_level("WARNING", logger="irrepnet.train.loop"):
        config = TrainConfig(epochs=1, steps_per_epoch=1, normalize=False, progress=False)
        Trainer(model, task.train, task.valid, config=config)
    said = [r.getMessage() for r in caplog.records if "normalize = false" in r.getMessage()]
    assert bool(said) is warns
    if warns:
        assert "r_max = 2.5" in said[0] and "of the training pairs lie beyond it" in said[0]
