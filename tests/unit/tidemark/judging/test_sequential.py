"""The mixture SPRT: its statistic is the Bayes factor it claims to be, its state is incremental."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from tidemark.judging.sequential import SequentialTest, log_likelihood_ratio


def test_the_statistic_is_the_scale_invariant_normal_mixture() -> None:
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.3, 12)
    tau = 0.7
    # LR = int p(d | delta*s, s) N(delta; 0, tau^2) d(delta) ds/s / int p(d | 0, s) ds/s,
    # summed on a grid of (delta, log s).
    log_sigma = np.linspace(-4, 4, 1_201)[:, None]
    delta = np.linspace(-8, 8, 1_201)[None, :]
    sigma = np.exp(log_sigma)
    n, total, squares = d.size, d.sum(), (d**2).sum()

    def log_likelihood(mu: np.ndarray) -> np.ndarray:
        return -n * log_sigma - (squares - 2 * mu * total + n * mu**2) / (2 * sigma**2)

    alternative = logsumexp(log_likelihood(delta * sigma) + stats.norm.logpdf(delta, 0, tau))
    alternative += np.log(delta[0, 1] - delta[0, 0])
    null = logsumexp(log_likelihood(np.zeros_like(sigma)))
    closed = log_likelihood_ratio(n, d.mean(), ((d - d.mean()) ** 2).sum(), tau)
    assert closed == pytest.approx(alternative - null, abs=1e-3)


def test_one_update_or_many_give_the_same_state() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0, 0.3, 500), rng.uniform(0, 0.25, 500)
    test = SequentialTest(alpha=0.05, margin=0.05, effect_scale=0.2, min_n=2)
    whole = test.update(a, b)
    parts = test
    for cut in np.array_split(np.arange(500), 17):
        parts = parts.update(a[cut], b[cut])
    d = 0.95 * a - b
    assert whole.n == parts.n == 500
    assert parts.mean == pytest.approx(d.mean())
    assert parts.m2 == pytest.approx(((d - d.mean()) ** 2).sum())
    assert parts.log_lr == pytest.approx(whole.log_lr)
    assert parts.champion_mean == pytest.approx(a.mean())
    assert parts.challenger_mean == pytest.approx(b.mean())
    # Looking more often can only lower the running minimum, never raise it.
    assert parts.p_value <= whole.p_value * (1 + 1e-9)


def test_identical_errors_are_no_evidence_and_a_constant_gap_is_bounded() -> None:
    test = SequentialTest(alpha=0.05, margin=0.0, effect_scale=0.2, min_n=2)
    same = test.update(np.full(400, 0.1), np.full(400, 0.1))
    assert same.log_lr < 0
    assert same.p_value == 1.0
    gap = test.update(np.full(400, 0.1), np.full(400, 0.05))
    assert np.isfinite(gap.log_lr)
    assert gap.challenger_better


def test_no_p_value_is_taken_before_the_minimum() -> None:
    test = SequentialTest(alpha=0.05, margin=0.0, effect_scale=0.2, min_n=100)
    early = test.update(np.full(99, 0.5), np.linspace(0.0, 0.01, 99))
    assert early.log_lr > 10
    assert (early.p_value, early.significant) == (1.0, False)
    assert early.update([0.5], [0.0]).significant


@pytest.mark.parametrize(
    ("champion", "challenger"),
    [([0.1, np.nan], [0.1, 0.1]), ([0.1, -0.1], [0.1, 0.1]), ([0.1], [0.1, 0.2])],
)
def test_bad_errors_are_refused(champion: list[float], challenger: list[float]) -> None:
    with pytest.raises(ValueError, match="errors"):
        SequentialTest(alpha=0.05, margin=0.0, effect_scale=0.2).update(champion, challenger)
