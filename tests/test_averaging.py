"""The exponential moving average of the weights (irrepnet.train.averaging) and its use in training."""

import pytest
import torch
from conftest import RF, small, straight_and_resumed

from irrepnet.registry import ConfigError
from irrepnet.train import load_checkpoint, train_config, train_registered
from irrepnet.train.averaging import ExponentialMovingAverage


def test_average_follows_the_formula_with_its_warm_up():
    lin = torch.nn.Linear(3, 2).double()
    ema = ExponentialMovingAverage(lin.named_parameters(), decay=0.9)
    expected = [p.detach().clone() for p in lin.parameters()]
    gen = torch.Generator().manual_seed(0)
    for t in range(100):  # d_t reaches 0.9 at t = 81
        with torch.no_grad():
            for p in lin.parameters():
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
        d = min(0.9, (1 + t) / (10 + t))  # d_0 = 0.1: the first update nearly replaces the initial weights
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, lin.parameters())]
        ema.update()
    for e, s in zip(expected, ema.shadow):
        torch.testing.assert_close(s, e, rtol=1e-12, atol=1e-12)
    assert ema.updates == 100 and ema.current_decay() == 0.9


def test_applied_swaps_the_average_in_and_the_weights_back():
    lin = torch.nn.Linear(3, 2)
    ema = ExponentialMovingAverage(lin.named_parameters(), decay=0.5)
    trained = lin.weight.detach().clone()
    ema.shadow[0].fill_(7.0)
    x = torch.ones(1, 3)
    with ema.applied():
        assert torch.equal(lin.weight, torch.full_like(trained, 7.0))
        assert torch.allclose(lin(x), 21.0 + ema.shadow[1])  # the forward sees the average
    assert torch.equal(lin.weight, trained)
    with pytest.raises(RuntimeError, match="boom"), ema.applied():
        raise RuntimeError("boom")
    assert torch.equal(lin.weight, trained)  # restored after an error too


def test_state_dict_round_trip_and_mismatch():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    ea, eb = ExponentialMovingAverage(a.named_parameters(), 0.99), ExponentialMovingAverage(b.named_parameters(), 0.99)
    ea.update()
    eb.load_state_dict(ea.state_dict())
    assert eb.updates == 1 and all(torch.equal(x, y) for x, y in zip(ea.shadow, eb.shadow))
    other = ExponentialMovingAverage(torch.nn.Linear(3, 2, bias=False).named_parameters(), 0.99)
    with pytest.raises(ValueError, match="other parameters"):
        other.load_state_dict(ea.state_dict())


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, True, "0.99"])
def test_bad_decay_is_a_clear_error(decay):
    with pytest.raises(ConfigError, match="ema_decay must be a number in"):
        train_config({"ema_decay": decay})
    if isinstance(decay, float):
        with pytest.raises(ValueError, match="ema_decay must be in"):
            ExponentialMovingAverage(torch.nn.Linear(1, 1).named_parameters(), decay)


def test_training_validates_and_keeps_the_average(tiny_task, tmp_path):
    res = train_registered("radial-field", tiny_task, small(epochs=3, ema_decay=0.9), RF, out_dir=tmp_path)
    best = load_checkpoint(tmp_path / "best.pt")
    last = load_checkpoint(tmp_path / "last.pt")
    assert best["trainer_state"]["epoch"] == res.best_epoch
    # the returned model and best.pt hold the average of the best epoch, not the trained weights
    shadow = best["ema_state"]["shadow"]
    state = res.model.state_dict()
    assert all(torch.equal(state[name], value) for name, value in shadow.items())
    if res.best_epoch == 3:  # last.pt: the trained weights, which differ from their average
        assert any(not torch.equal(last["model_state"][n], v) for n, v in shadow.items())
    assert set(last["ema_state"]["shadow"]) == set(shadow)


def test_resume_with_an_average_gives_the_same_weights(tiny_task, tmp_path):
    cfg = small(schedule="cosine", ema_decay=0.8)
    straight, resumed = straight_and_resumed(tiny_task, cfg, tmp_path)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa = load_checkpoint(tmp_path / "a" / "last.pt")["ema_state"]
    sb = load_checkpoint(tmp_path / "b" / "last.pt")["ema_state"]
    assert sa["updates"] == sb["updates"] == 12
    assert all(torch.equal(sa["shadow"][k], sb["shadow"][k]) for k in sa["shadow"])
    # a run without the average cannot be resumed with one (nor the other way round)
    with pytest.raises(ValueError, match="ema_decay"):
        train_registered(
            "radial-field", tiny_task, small(schedule="cosine", epochs=4), RF, out_dir=tmp_path / "b", resume=True
        )
