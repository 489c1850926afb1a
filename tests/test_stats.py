"""Tests of irrepnet.stats: circular block bootstrap intervals and paired comparisons."""

import math

import numpy as np
import pytest

from irrepnet.stats import (
    DEFAULT_BLOCK_LENGTH,
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    REASON_DIVERGED,
    REASON_ZERO_BASELINE,
    Bootstrap,
    per_unit_mse,
    verdict_sentence,
)


def ar1(reps, n, rho, seed, mean=0.0):
    """``(reps, n)`` stationary AR(1) series with unit innovations around ``mean``."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((reps, n))
    x = np.empty((reps, n))
    x[:, 0] = eps[:, 0] / math.sqrt(1 - rho**2)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + eps[:, t]
    return x + mean


def runs(row, n):
    """Lengths of the maximal runs of consecutive indices (mod n) in one resample."""
    steps = (np.diff(row) % n) == 1
    lengths, current = [], 1
    for s in steps:
        if s:
            current += 1
        else:
            lengths.append(current)
            current = 1
    return lengths + [current]


# -- construction and resample structure ---------------------------------------------


def test_defaults_and_describe():
    assert (DEFAULT_BLOCK_LENGTH, DEFAULT_RESAMPLES, DEFAULT_CONFIDENCE) == (20, 2000, 0.95)
    bs = Bootstrap(410)
    assert bs.indices.shape == (2000, 410)
    assert bs.describe() == {
        "method": "circular block bootstrap",
        "block_length": 20,
        "resamples": 2000,
        "confidence": 0.95,
        "seed": 0,
        "n_units": 410,
    }
    assert bs.indices.min() >= 0 and bs.indices.max() < 410
    with pytest.raises(ValueError):
        bs.indices[0, 0] = 1  # read-only: the resamples are fixed


def test_block_structure_half_length():
    n = 40
    bs = Bootstrap(n, block_length=n // 2, resamples=200, seed=3)
    for row in bs.indices:
        # two blocks of n/2 consecutive indices mod n; two blocks that happen to join up
        # (second start = first start + n/2) read as one run of n
        first, second = row[: n // 2], row[n // 2 :]
        assert np.all(np.diff(first) % n == 1) and np.all(np.diff(second) % n == 1)
        assert sum(runs(row, n)) == n and len(runs(row, n)) <= 2
    # wrap-around happens: some block crosses n-1 -> 0
    assert any(np.any(np.diff(row[: n // 2]) == 1 - n) for row in bs.indices)


def test_block_structure_truncated_last_block():
    n, L = 10, 3  # ceil(10/3) = 4 blocks of 3, truncated to 10: lengths 3, 3, 3, 1
    bs = Bootstrap(n, block_length=L, resamples=100, seed=0)
    for row in bs.indices:
        for lo, hi in ((0, 3), (3, 6), (6, 9)):
            assert np.all(np.diff(row[lo:hi]) % n == 1)


def test_block_length_one_is_iid_bootstrap():
    n = 200
    x = np.random.default_rng(0).exponential(size=n)
    bs = Bootstrap(n, block_length=1, resamples=4000, seed=1)
    # indices uniform and independent: consecutive draws are no more often neighbours than 1/n
    adjacent = np.mean(np.diff(bs.indices, axis=1) % n == 1)
    assert adjacent < 3 / n
    counts = np.bincount(bs.indices.ravel(), minlength=n) / bs.indices.size
    assert np.allclose(counts, 1 / n, rtol=0.1)
    # the spread of the resampled means is the iid bootstrap's: var(x, ddof=0) / n
    var_boot = bs.resample_means(x).var()
    assert var_boot == pytest.approx(x.var() / n, rel=0.1)
    # while long blocks on the same data differ in structure (runs of consecutive indices)
    blocked = Bootstrap(n, block_length=20, resamples=100, seed=1)
    assert np.mean(np.diff(blocked.indices, axis=1) % n == 1) > 0.9


def test_same_seed_same_resamples():
    a, b = Bootstrap(100, seed=7, resamples=100), Bootstrap(100, seed=7, resamples=100)
    assert np.array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, Bootstrap(100, seed=8, resamples=100).indices)
    x = np.random.default_rng(1).random(100)
    assert np.array_equal(a.resample_means(x), a.resample_means(x))  # same draws on every call
    assert np.array_equal(a.resample_means(x), b.resample_means(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_units=1), "n_units"),
        (dict(n_units=0), "n_units"),
        (dict(n_units=50, block_length=0), "block_length"),
        (dict(n_units=50, block_length=51), "block_length"),
        (dict(n_units=50, resamples=99), "resamples"),
        (dict(n_units=50, confidence=0.0), "confidence"),
        (dict(n_units=50, confidence=1.0), "confidence"),
        (dict(n_units=50, confidence=95), "confidence"),
        (dict(n_units=50, confidence=float("nan")), "confidence"),
    ],
)
def test_bad_arguments(kwargs, match):
    n = kwargs.pop("n_units")
    with pytest.raises(ValueError, match=match):
        Bootstrap(n, **kwargs)


def test_bad_types_and_shapes():
    with pytest.raises(TypeError, match="block_length"):
        Bootstrap(50, block_length=2.5)
    bs = Bootstrap(50, resamples=100)
    with pytest.raises(ValueError, match="units"):
        bs.interval(np.ones(49))
    with pytest.raises(ValueError, match="shape"):
        bs.interval(np.ones((2, 2, 50)))
    with pytest.raises(ValueError, match="units"):
        bs.compare(np.ones(50), np.ones((3, 51)))
    with pytest.raises(ValueError, match="negative"):
        bs.compare(-np.ones(50), np.ones(50))


# -- coverage: why blocks -------------------------------------------------------------


def test_block_bootstrap_covers_ar1_mean_iid_undercovers():
    """AR(1), rho = 0.9, n = 400, known mean: L = 20 covers far more often than L = 1.

    Measured with 2000 repetitions (500 resamples each): coverage of the nominal 95% interval
    is 0.82 with L = 20 and 0.35 with L = 1 (the block bootstrap's O(1/L) variance bias with only ~21
    effectively independent frames). The thresholds leave >3 binomial SEs of margin.
    """
    reps, n, true_mean = 150, 400, 2.5
    x = ar1(reps, n, 0.9, seed=11, mean=true_mean)
    coverage = {}
    for L in (20, 1):
        bs = Bootstrap(n, block_length=L, resamples=300, seed=5)
        means = x[:, bs.indices].mean(axis=-1)  # (reps, resamples): all repetitions at once
        lo, hi = np.quantile(means, [0.025, 0.975], axis=1)
        coverage[L] = float(np.mean((lo <= true_mean) & (true_mean <= hi)))
        # the vectorised shortcut is what interval() computes
        one = bs.interval(x[0])
        assert (one["lo"], one["hi"]) == pytest.approx((lo[0], hi[0]))
    assert 0.70 <= coverage[20] <= 0.99, coverage
    assert coverage[1] < 0.5, coverage
    assert coverage[20] - coverage[1] > 0.3, coverage


# -- paired comparisons -----------------------------------------------------------------


def paired_rows(n=410, seed=0):
    """Two rows sharing a heavy-tailed, correlated common error; b is 5% worse."""
    rng = np.random.default_rng(seed)
    z = ar1(1, n, 0.8, seed=seed + 100)[0] * 0.6  # std 1
    common = np.exp(1.6 * z)  # lognormal: a few frames carry much of the mean
    a = common * np.exp(0.03 * rng.standard_normal(n))
    b = 1.05 * common * np.exp(0.03 * rng.standard_normal(n))
    return a, b


def test_paired_beats_unpaired():
    a, b = paired_rows()
    top5 = np.sort(a)[-5:].sum() / a.sum()
    assert top5 > 0.15  # heavy-tailed
    bs = Bootstrap(len(a), seed=0)
    ia, ib = bs.interval(a), bs.interval(b)
    assert ia["lo"] < ia["value"] < ia["hi"] and ib["lo"] < ib["value"] < ib["hi"]
    assert ia["hi"] > ib["lo"] and ib["hi"] > ia["lo"]  # separate intervals overlap
    cmp = bs.compare(a, b)
    assert cmp["verdict"] == "lower"
    assert cmp["ratio"] == pytest.approx(a.mean() / b.mean())
    assert cmp["lo"] < cmp["ratio"] < cmp["hi"] < 1
    assert cmp["ratio"] == pytest.approx(1 / 1.05, rel=0.02)
    assert cmp["prob_a_lower"] > 0.99


def test_comparison_is_not_a_no_op():
    a, b = paired_rows(seed=1)
    bs = Bootstrap(len(a), resamples=500, seed=2)
    ab, ba = bs.compare(a, b), bs.compare(b, a)
    assert (ab["verdict"], ba["verdict"]) == ("lower", "higher")
    assert ba["lo"] > 1
    assert ab["ratio"] * ba["ratio"] == pytest.approx(1)
    assert ab["prob_a_lower"] + ba["prob_a_lower"] == pytest.approx(1)
    same = bs.compare(a, a)
    assert same["ratio"] == 1 and same["lo"] == 1 and same["hi"] == 1
    assert same["verdict"] == "within noise" and same["prob_a_lower"] == 0
    # independent noise of equal size: within noise
    rng = np.random.default_rng(3)
    c, d = rng.exponential(size=(2, len(a)))
    assert bs.compare(c, d)["verdict"] == "within noise"


# -- seeds ------------------------------------------------------------------------------


def test_seeds():
    rng = np.random.default_rng(4)
    n = 120
    e = rng.gamma(2.0, size=(3, n)) * np.array([[1.0], [1.3], [0.8]])
    bs = Bootstrap(n, resamples=300, seed=0)
    iv = bs.interval(e)
    per_seed = e.mean(axis=1)
    assert iv["value"] == pytest.approx(per_seed.mean())
    assert iv["seed_std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert iv["n_seeds"] == 3
    # resampled figure = mean over seeds of each seed's resampled mean
    per_seed_resamples = np.stack([bs.resample_means(row) for row in e])
    assert np.allclose(bs.resample_means(e), per_seed_resamples.mean(axis=0))
    one = bs.interval(e[0])
    assert one["seed_std"] is None and one["n_seeds"] == 1
    assert one["value"] == pytest.approx(per_seed[0])
    # different numbers of seeds compare fine
    assert bs.compare(e, e[:1])["verdict"] in ("lower", "higher", "within noise")


# -- degenerate inputs --------------------------------------------------------------------


def test_non_finite_and_zero_baseline():
    n = 60
    bs = Bootstrap(n, resamples=100)
    good = np.linspace(1, 2, n)
    bad = good.copy()
    bad[30] = np.inf
    iv = bs.interval(bad)
    assert iv["value"] == np.inf and iv["lo"] is None and iv["hi"] is None
    nan = good.copy()
    nan[3] = np.nan
    iv = bs.interval(np.stack([good, nan]))
    assert math.isnan(iv["value"]) and iv["lo"] is None and iv["seed_std"] is None and iv["n_seeds"] == 2
    for a, b in ((bad, good), (good, bad), (nan, good), (bad, nan)):
        cmp = bs.compare(a, b)
        assert cmp["verdict"] == "not comparable" and cmp["reason"] == REASON_DIVERGED
        assert cmp["ratio"] is None and cmp["lo"] is None and cmp["hi"] is None
    zero = np.zeros(n)
    cmp = bs.compare(good, zero)
    assert cmp["verdict"] == "not comparable" and cmp["reason"] == REASON_ZERO_BASELINE and cmp["ratio"] is None
    # a zero numerator is fine: an exact model beats the baseline
    assert bs.compare(zero, good)["verdict"] == "lower"
    # zero both ways on some resamples (sparse errors) count as ties, not nan
    sparse = np.zeros(n)
    sparse[:3] = 1.0
    cmp = Bootstrap(n, block_length=1, resamples=200).compare(sparse, sparse)
    assert cmp["verdict"] == "within noise" and cmp["lo"] == cmp["hi"] == 1


def test_constant_errors_collapse():
    bs = Bootstrap(50, resamples=100)
    iv = bs.interval(np.full(50, 0.1))
    assert iv["lo"] == iv["hi"] == iv["value"] == pytest.approx(0.1)
    iv = bs.interval(np.full((2, 50), 0.3))
    assert iv["lo"] == iv["hi"] == iv["value"] and iv["seed_std"] == 0


# -- wording --------------------------------------------------------------------------------


def test_verdict_sentence():
    def cmp(ratio, lo, hi, verdict):
        return {"ratio": ratio, "lo": lo, "hi": hi, "prob_a_lower": None, "verdict": verdict, "confidence": 0.95}

    assert (
        verdict_sentence("egnn-vel", "constant-acceleration", cmp(0.41, 0.33, 0.52, "lower"))
        == "egnn-vel beats constant-acceleration on test MSE: ratio 0.41 (95% CI 0.33–0.52)."
    )
    assert (
        verdict_sentence("tfn", "se3-transformer", cmp(1.07, 0.91, 1.25, "within noise"))
        == "tfn and se3-transformer are within noise on test MSE: ratio 1.07 (95% CI 0.91–1.25)."
    )
    assert (
        verdict_sentence("gnn", "constant-acceleration", cmp(1.74, 1.4, 2.2, "higher"))
        == "gnn is worse than constant-acceleration on test MSE: ratio 1.74 (95% CI 1.4–2.2)."
    )
    assert (
        verdict_sentence("gnn", "egnn", cmp(1.23456, 1.0123, 1.5678, "higher"), what="rollout MSE @10")
        == "gnn is worse than egnn on rollout MSE @10: ratio 1.23 (95% CI 1.01–1.57)."
    )
    bs = Bootstrap(20, resamples=100)
    diverged = bs.compare(np.full(20, np.nan), np.ones(20))
    assert (
        verdict_sentence("gnn", "egnn", diverged) == "gnn and egnn cannot be compared on test MSE (rollout diverged)."
    )
    exact = bs.compare(np.ones(20), np.zeros(20))
    assert (
        verdict_sentence("gnn", "exact", exact)
        == "gnn and exact cannot be compared on test MSE (exact has zero error)."
    )
    a, b = paired_rows()
    sentence = verdict_sentence("a", "b", Bootstrap(len(a), resamples=300).compare(a, b))
    assert sentence.startswith("a beats b on test MSE: ratio 0.9")


def test_per_unit_mse():
    rng = np.random.default_rng(0)
    pred, true = rng.standard_normal((2, 7, 5, 3))
    e = per_unit_mse(pred, true)
    assert e.shape == (7,) and e.dtype == np.float64
    assert e[2] == pytest.approx(((pred[2] - true[2]) ** 2).mean())
    assert e.mean() == pytest.approx(((pred - true) ** 2).mean())
    assert per_unit_mse(pred.astype(np.float32), true).dtype == np.float64
    with pytest.raises(ValueError, match="same shape"):
        per_unit_mse(pred, true[:, :4])
    with pytest.raises(ValueError):
        per_unit_mse(pred[:, 0, 0], true[:, 0, 0])
