"""Physics-residual targets, the start-at-baseline gate and input-noise training."""

import dataclasses
import math

import pytest
import torch
from conftest import RF, small, straight_and_resumed  # shared with the other training tests

from irrepnet import audit
from irrepnet import data as D
from irrepnet import keys as K
from irrepnet.data import baselines
from irrepnet.registry import ConfigError, build_model
from irrepnet.tasks import Task, task_spec
from irrepnet.train import TrainConfig, load_trained, make_trainer, train_registered
from irrepnet.train.noise import add_input_noise
from irrepnet.train.normalization import NormalizedModel, baseline_displacement, fit_scales, rms, with_residual


def test_untrained_model_with_gate_is_exactly_the_baseline(tiny_task):
    trainer = make_trainer(
        "egnn-vel", tiny_task, small(residual="constant_acceleration", start_at_baseline=True, dtype="float64")
    )
    batch = tiny_task.test.batch(range(5))
    pred = trainer.model(batch)[K.DISPLACEMENT]
    torch.testing.assert_close(pred, baselines.constant_acceleration(batch), rtol=0, atol=0)


def test_residual_output_is_baseline_plus_scaled_correction(tiny_task):
    trainer = make_trainer("radial-field", tiny_task, small(residual="constant_velocity", dtype="float64"), RF)
    model = trainer.model
    batch = tiny_task.test.batch(range(3))
    corr = model.forward_normalized(batch)[K.DISPLACEMENT] * model.output_scales[K.DISPLACEMENT]
    torch.testing.assert_close(model(batch)[K.DISPLACEMENT], baselines.constant_velocity(batch) + corr)
    # the loss target is the correction in the correction's own units
    target = model.normalized_target(batch, batch[K.TARGET_DISP])
    expected = (batch[K.TARGET_DISP] - baselines.constant_velocity(batch)) / model.output_scales[K.DISPLACEMENT]
    torch.testing.assert_close(target, expected)


def test_correction_is_normalised_by_its_own_rms(tiny_task):
    arrays = tiny_task.train.arrays()
    model = build_model("radial-field", tiny_task.spec)
    plain = fit_scales(model, arrays, K.DISPLACEMENT, arrays[K.TARGET_DISP])
    resid = fit_scales(model, arrays, K.DISPLACEMENT, arrays[K.TARGET_DISP], "constant_acceleration")
    base = baseline_displacement("constant_acceleration", arrays)
    assert resid["outputs"][K.DISPLACEMENT] == pytest.approx(rms(arrays[K.TARGET_DISP] - base))
    # the correction is far smaller than the displacement: that is why it gets its own scale
    assert resid["outputs"][K.DISPLACEMENT] < 0.2 * plain["outputs"][K.DISPLACEMENT]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_residual_keeps_the_symmetry_and_the_audit_still_bites(tiny_task, dtype):
    batch = tiny_task.test.batch(range(3))
    equivariant = with_residual(build_model("egnn-vel", tiny_task.spec), "constant_acceleration", 1e-3)
    assert equivariant.symmetry.value == "E(3)"
    assert audit(equivariant, batch, dtype=dtype, trials=1).passed
    broken = with_residual(build_model("mlp", tiny_task.spec), "constant_acceleration", 1e-3)
    report = audit(broken, batch, dtype=dtype, trials=1)
    assert report.passed  # mlp claims nothing ...
    rotation = next(c for c in report.checks if c.check == "rotation")
    assert rotation.rel_error > 1e-6  # ... and the wrapper does not hide that it is not equivariant


def test_residual_needs_enough_history():
    traj = D.simulate_polymer(D.PolymerConfig(n_frames=40, n_equilibrate=100))
    train, test = D.split_trajectory(traj, history=1)
    task = Task(task_spec("twelve_body", history=1), train, test)
    with pytest.raises(ConfigError, match="needs a velocity history of at least 2"):
        make_trainer("radial-field", task, small(residual="constant_acceleration"), RF)
    with pytest.raises(ConfigError, match="residual must be one of"):
        TrainConfig(residual="verlet")


def test_start_at_baseline_logs_epoch_zero_and_can_keep_the_baseline(tiny_task, tmp_path):
    res = train_registered(
        "radial-field",
        tiny_task,
        small(residual="constant_acceleration", start_at_baseline=True, lr=1e-12, dtype="float64"),
        RF,
        out_dir=tmp_path,
    )
    assert res.history[0]["epoch"] == 0 and res.history[0]["step"] == 0
    # a learning rate too small to move anything: no epoch beats the baseline, epoch 0 is kept
    assert res.best_epoch == 0 or res.history[res.best_epoch]["valid_loss"] <= res.history[0]["valid_loss"]
    batch = tiny_task.test.batch(range(4))
    if res.best_epoch == 0:
        torch.testing.assert_close(res.model(batch)[K.DISPLACEMENT], baselines.constant_acceleration(batch))
    # the checkpoint rebuilds the residual model with its gate
    model, ck = load_trained(tmp_path / "best.pt")
    assert isinstance(model, NormalizedModel) and model.residual == "constant_acceleration" and model.gate is not None
    torch.testing.assert_close(model(batch)[K.DISPLACEMENT], res.model(batch)[K.DISPLACEMENT])


def test_residual_training_beats_its_baseline_on_a_smooth_trajectory(tiny_task):
    res = train_registered(
        "radial-field",
        tiny_task,
        small(residual="constant_velocity", start_at_baseline=True, epochs=8, dtype="float64"),
        RF,
    )
    base = D.evaluate_baselines(res.model and tiny_task.train, ["constant_velocity"])["constant_velocity"]
    assert math.isfinite(base) and res.history[0]["epoch"] == 0
    assert min(r["valid_loss"] for r in res.history) <= res.history[0]["valid_loss"]


# --- input noise -------------------------------------------------------------------
def _window_batch(n=4000, h=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    window = torch.randn(n, h + 1, 3, generator=g, dtype=torch.float64)  # x(t-h) .. x(t), oldest first
    steps = [window[:, -1 - k] - window[:, -2 - k] for k in range(h)]  # newest first
    return {K.POS: window[:, -1].clone(), K.VEL_HISTORY: torch.cat(steps, dim=1), K.VEL: steps[0].clone()}


def test_noise_is_a_random_walk_consistent_with_the_positions():
    h, std = 3, 0.01
    batch = _window_batch(h=h)
    noisy = add_input_noise(batch, std, generator=torch.Generator().manual_seed(1))
    d_pos = noisy[K.POS] - batch[K.POS]
    d_vh = (noisy[K.VEL_HISTORY] - batch[K.VEL_HISTORY]).reshape(-1, h, 3)  # newest first
    # the position noise is the sum of all step noises (the oldest frame is not moved)
    torch.testing.assert_close(d_pos, d_vh.sum(dim=1))
    # a random walk: the newest step carries std, older ones less (std * sqrt(k / h))
    assert d_vh[:, 0].std().item() == pytest.approx(std, rel=0.05)
    assert d_vh[:, -1].std().item() == pytest.approx(std / math.sqrt(h), rel=0.05)
    torch.testing.assert_close(noisy[K.VEL], noisy[K.VEL_HISTORY][:, 0:3])
    assert K.TARGET_DISP not in noisy or torch.equal(noisy[K.TARGET_DISP], batch[K.TARGET_DISP])


def test_noise_without_history_moves_positions_only_and_zero_noise_is_a_no_op():
    batch = {K.POS: torch.zeros(5000, 3, dtype=torch.float64)}
    noisy = add_input_noise(batch, 0.1, generator=torch.Generator().manual_seed(0))
    assert noisy[K.POS].std().item() == pytest.approx(0.1, rel=0.05)
    same = add_input_noise(_window_batch(n=10), 0.0)
    assert all(torch.equal(same[k], v) for k, v in _window_batch(n=10).items())


def test_noise_training_resumes_exactly(tiny_task, tmp_path):
    cfg = small(input_noise=0.05, residual="constant_acceleration", start_at_baseline=True)
    straight, resumed = straight_and_resumed(tiny_task, cfg, tmp_path)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_noise_changes_training_but_not_the_target(tiny_task):
    a = train_registered("radial-field", tiny_task, small(), RF)
    b = train_registered("radial-field", tiny_task, small(input_noise=0.5), RF)
    assert a.history[-1]["train_loss"] != b.history[-1]["train_loss"]
    with pytest.raises(ConfigError, match="input_noise"):
        TrainConfig(input_noise=-1.0)


# --- significance-based checkpoint selection -----------------------------------------
def _noise_task(seed=0, n=120, n_valid=60):
    """Positions and targets drawn independently: nothing to learn, any 'improvement' is noise."""
    from irrepnet.data import GraphArrayDataset

    g = torch.Generator().manual_seed(seed)

    def ds(s):
        return GraphArrayDataset(
            {
                K.POS: torch.randn(s, 12, 3, generator=g, dtype=torch.float64),
                K.TARGET_DISP: torch.randn(s, 12, 3, generator=g, dtype=torch.float64),
                K.NODE_INDEX: torch.arange(12).repeat(s, 1),
            }
        )

    return Task(task_spec("twelve_body", history=0), ds(n), ds(n_valid), ds(n_valid))


def test_select_significant_keeps_the_baseline_without_evidence(tmp_path):
    task = _noise_task()
    cfg = small(start_at_baseline=True, select_significant=True, selection_block=1, epochs=6, lr=1e-2, dtype="float64")
    plain = train_registered("radial-field", task, dataclasses.replace(cfg, select_significant=False), RF)
    assert plain.best_epoch > 0  # the plain rule keeps a validation 'improvement' that is noise ...
    res = train_registered("radial-field", task, cfg, RF, out_dir=tmp_path)
    assert res.best_epoch == 0, [(r["valid_loss"], r.get("significant")) for r in res.history]  # ... this one not
    batch = task.test.batch(range(4))
    torch.testing.assert_close(res.model(batch)[K.DISPLACEMENT], torch.zeros_like(batch[K.POS]))
    # the baseline's per-sample validation errors travel in the checkpoint, so a resumed run decides alike
    from irrepnet.train import load_checkpoint

    assert load_checkpoint(tmp_path / "last.pt")["trainer_state"]["baseline_valid_errors"].shape == (60,)


def test_select_significant_accepts_a_real_improvement(tiny_task):
    cfg = small(
        residual="none", start_at_baseline=True, select_significant=True, selection_block=2, epochs=6, dtype="float64"
    )
    res = train_registered("radial-field", tiny_task, cfg, RF)
    # from zero displacement, the displacement of a smooth chain is learnt far beyond noise
    assert res.best_epoch > 0 and res.history[res.best_epoch]["significant"] is True
    with pytest.raises(ConfigError, match="needs start_at_baseline"):
        TrainConfig(select_significant=True)


# --- k-step unrolled loss ---------------------------------------------------------------
def test_unrolled_loss_feeds_predictions_back(tiny_task):
    cfg = small(residual="constant_acceleration", unroll_steps=3, dtype="float64")
    trainer = make_trainer("radial-field", tiny_task, cfg, RF)
    idx = torch.arange(8)
    loss = trainer.unrolled_loss(idx)
    # the same by hand: three fed-back steps from the true window, each scored against the truth
    ds, model = trainer.train_set, trainer.model
    traj = torch.as_tensor(ds.trajectory)
    frames = ds.frames[:8]
    window = torch.stack([traj[t - 2 : t + 1] for t in frames])
    total = 0.0
    from irrepnet.data.windows import window_batch

    for j in range(3):
        data = window_batch(window, 2)
        out = model.forward_normalized(data)[K.DISPLACEMENT]
        truth = (traj[torch.as_tensor(frames + j + 1)] - window[:, -1]).reshape(-1, 3)
        total = total + (out - model.normalized_target(data, truth)).pow(2).mean()
        window = torch.cat([window[:, 1:], (window[:, -1] + model(data)[K.DISPLACEMENT].reshape(8, 12, 3))[:, None]], 1)
    torch.testing.assert_close(loss, total / 3)
    # unrolled over one step it is the usual one-step loss
    trainer.config = dataclasses.replace(trainer.config, unroll_steps=1)
    batch = {k: v.double() if v.is_floating_point() else v for k, v in ds.batch(idx).items()}
    torch.testing.assert_close(trainer.unrolled_loss(idx), trainer.loss(batch))
    res = train_registered("radial-field", tiny_task, cfg, RF)  # and it trains
    assert res.steps == 12 and all(math.isfinite(r["valid_loss"]) for r in res.history)


def test_unrolled_loss_needs_a_trajectory():
    task = _noise_task()
    with pytest.raises(ConfigError, match="needs a trajectory task"):
        make_trainer("radial-field", task, small(unroll_steps=2), RF)
    with pytest.raises(ConfigError, match="unroll_steps must be"):
        TrainConfig(unroll_steps=0)


def test_selection_level_is_corrected_for_the_epochs_it_tests(tiny_task):
    # a validation gain that is significant for one test at 95% but not for one of 40 epochs
    rng = torch.Generator().manual_seed(0)
    base = 1.0 + 0.5 * torch.rand(200, generator=rng, dtype=torch.float64)
    gain = base * (1.0 - 0.008 + 0.05 * torch.randn(200, generator=rng, dtype=torch.float64))
    verdicts = {}
    for epochs in (1, 40):
        trainer = make_trainer(
            "radial-field",
            tiny_task,
            small(
                start_at_baseline=True,
                select_significant=True,
                selection_block=1,
                epochs=epochs,
                steps_per_epoch=1,
                residual="none",
            ),
            RF,
        )
        assert trainer.planned_epochs == epochs
        trainer.state["baseline_valid_errors"], trainer._last_valid_errors = base, gain
        verdicts[epochs] = trainer._significantly_better_than_baseline()
    assert verdicts == {1: True, 40: False}


# --- force_difference: a learned force whose change corrects constant acceleration -------


def test_force_difference_is_constant_acceleration_plus_the_change_of_a_force(tiny_task):
    trainer = make_trainer("radial-field", tiny_task, small(residual="force_difference", dtype="float64"), RF)
    model = trainer.model
    assert K.VEL_HISTORY not in model.model.irreps_in and K.VEL not in model.model.irreps_in  # positions only
    batch = tiny_task.test.batch(range(3))
    now = model.model(batch)[K.DISPLACEMENT]
    before = model.model({**batch, K.POS: batch[K.POS] - batch[K.VEL_HISTORY][:, :3]})[K.DISPLACEMENT]
    expected = baselines.constant_acceleration(batch) + model.scales["acceleration"] * (now - before)
    torch.testing.assert_close(model(batch)[K.DISPLACEMENT], expected)
    vh = trainer.train_set.arrays()[K.VEL_HISTORY]  # the training split the scales were fitted on
    assert model.scales["acceleration"] == pytest.approx(rms(vh[..., :3] - vh[..., 3:6]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_force_difference_keeps_the_symmetry_and_round_trips(tiny_task, tmp_path, dtype):
    cfg = small(residual="force_difference", start_at_baseline=True, dtype="float64")
    res = train_registered("radial-field", tiny_task, cfg, RF, out_dir=tmp_path)
    batch = tiny_task.test.batch(range(3))
    assert audit(res.model, batch, dtype=dtype, trials=1).passed
    loaded, _ = load_trained(tmp_path / "best.pt")
    torch.testing.assert_close(loaded(batch)[K.DISPLACEMENT], res.model(batch)[K.DISPLACEMENT])


def test_force_difference_refuses_velocity_models(tiny_task):
    with pytest.raises(ConfigError, match="force field of the positions alone.*egnn-vel"):
        make_trainer("egnn-vel", tiny_task, small(residual="force_difference"))
    with pytest.raises(ConfigError, match="reads"):
        NormalizedModel(
            build_model("egnn-vel", tiny_task.spec), {"outputs": {}, "acceleration": 1.0}, residual="force_difference"
        )
