"""An always-valid sequential test of a paired mean difference (a mixture SPRT).

Champion and challenger predict the same item; when the item's true value arrives, each gets
the error the project judges, ``a_i`` for the champion and ``b_i`` for the challenger. The test
watches the paired differences ``d_i = (1 - margin) * a_i - b_i``, whose mean is positive
exactly when the challenger's mean error is below the champion's by more than
``margin`` of it (the promotion rule of ``tidemark.judging.promotion``), and tests ``H0: E[d] = 0``.

Why a mixture SPRT: the monitor looks at the evidence after every window. A fixed-n test
repeated at every look rejects a true null far more often than its level says; a mixture
sequential probability ratio test (mSPRT; Robbins 1970, Johari, Koomen, Pekelis & Walsh,
"Always valid inference", Operations Research 2022) does not. Its statistic ``LR_n`` is a
likelihood ratio averaged over a prior on the effect, a non-negative martingale under the
null, so by Ville's inequality ``P(LR_n >= 1/alpha for some n) <= alpha`` however often and
whenever one looks, and ``p_n = min over looks of 1/LR_k`` is an always-valid p-value.

The variance of ``d`` is not known. Johari et al. plug in an estimate, which is valid only
asymptotically. Here the mixture also integrates the scale out with the right-Haar prior
``1/sigma``, and the prior is put on the standardised effect
``delta = E[d]/sigma ~ N(0, tau^2)``: the resulting Bayes factor depends on the data through
the t-statistic alone and is the likelihood ratio of the scale-invariant part of the data,
hence a test martingale under the null whatever sigma is (Lai 1976, "On confidence
sequences"; Perez-Ortiz, Lardy, de Heide & Grunwald, "E-statistics, group invariance and
anytime-valid testing", Annals of Statistics 2024). With ``n`` pairs, mean ``m`` and sum of
squared deviations ``M2``:

    log LR_n = -1/2 log(1 + n tau^2)
               + n/2 [log(M2 + n m^2) - log(M2 + n m^2 / (1 + n tau^2))]

That is exact for normal differences. Per-item error differences are not normal (skewed,
heavy-tailed), so two guards keep the test valid enough in practice: errors are capped
(``tidemark.judging.shadow`` caps them at ``shadow.error_cap``, by default 1: a 100 % relative
error) so that the differences are bounded, and no p-value is taken before a minimum number of
items, when the t-statistic of bounded data is close to normal. The unit tests check the level by
simulation on normal and heavy-tailed nulls with a look after every window of 30 to 60 items; the
rate of false decisions there is well below alpha, as the mixture is conservative.

The state is three running sums (Welford's ``n``, mean, ``M2``), so updates are incremental,
the order of items inside an update does not matter, and the state serialises to a few
numbers. Pure logic: numpy only.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field


def log_likelihood_ratio(n: int, mean: float, m2: float, effect_scale: float) -> float:
    """``log LR_n`` of the scale-invariant normal mixture, from ``n``, the mean and ``M2``.

    ``effect_scale`` is tau, the prior standard deviation of the standardised effect: the test
    finds effects of about tau fastest. Fewer than two observations carry no evidence (0).
    """
    if n < 2:
        return 0.0
    spread = n * effect_scale**2
    signal = n * mean * mean
    if m2 <= 0.0 and signal == 0.0:
        return -0.5 * math.log1p(spread)
    return -0.5 * math.log1p(spread) + 0.5 * n * (
        math.log(m2 + signal) - math.log(m2 + signal / (1.0 + spread))
    )


class SequentialTest(BaseModel):
    """The running evidence of one paired comparison, and its always-valid test.

    Immutable: ``update`` returns the new state. ``p_value`` is the running minimum of
    ``1/LR`` over the looks made with at least ``min_n`` observations, ``significant`` says
    whether it is at most ``alpha``, and the sign of ``mean`` says in which direction.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    alpha: float = Field(gt=0, lt=1, description="the level this test was allotted")
    margin: float = Field(ge=0, lt=1, description="share of the champion's error to beat")
    effect_scale: float = Field(gt=0, description="tau, prior sd of the standardised effect")
    min_n: int = Field(default=2, ge=2, description="no p-value below this many pairs")
    n: int = Field(default=0, ge=0)
    champion_mean: float = Field(default=0.0, ge=0, description="champion's mean error")
    challenger_mean: float = Field(default=0.0, ge=0, description="challenger's mean error")
    mean: float = Field(default=0.0, description="mean of (1 - margin) * champion - challenger")
    m2: float = Field(default=0.0, ge=0, description="sum of squared deviations of that")
    log_lr: float = Field(default=0.0, description="log LR at the last look")
    p_value: float = Field(default=1.0, ge=0, le=1, description="always-valid p-value")

    def update(self, champion: ArrayLike, challenger: ArrayLike) -> SequentialTest:
        """Add pairs of errors (same items, same order) and look at the evidence once."""
        a = _errors(champion, "champion")
        b = _errors(challenger, "challenger")
        if a.shape != b.shape:
            raise ValueError(f"{a.size} champion errors but {b.size} challenger errors")
        if a.size == 0:
            return self
        d = (1.0 - self.margin) * a - b
        n = self.n + d.size
        # Chan et al.'s merge of two (n, mean, M2) summaries: stable for long runs.
        batch_mean = float(d.mean())
        delta = batch_mean - self.mean
        mean = self.mean + delta * d.size / n
        m2 = self.m2 + float(((d - batch_mean) ** 2).sum()) + delta**2 * self.n * d.size / n
        log_lr = log_likelihood_ratio(n, mean, m2, self.effect_scale)
        p_value = self.p_value
        if n >= self.min_n:
            p_value = min(p_value, math.exp(-log_lr) if log_lr > 0 else 1.0)
        return self.model_copy(
            update={
                "n": n,
                "champion_mean": self.champion_mean
                + (float(a.mean()) - self.champion_mean) * a.size / n,
                "challenger_mean": self.challenger_mean
                + (float(b.mean()) - self.challenger_mean) * b.size / n,
                "mean": mean,
                "m2": max(m2, 0.0),
                "log_lr": log_lr,
                "p_value": p_value,
            }
        )

    @property
    def significant(self) -> bool:
        """Whether the evidence rejects ``E[d] = 0`` at the allotted level."""
        return self.n >= self.min_n and self.p_value <= self.alpha

    @property
    def challenger_better(self) -> bool:
        """Significant, and the challenger beats the champion by more than the margin."""
        return self.significant and self.mean > 0

    @property
    def challenger_worse(self) -> bool:
        """Significant, and the challenger does not beat the champion by the margin."""
        return self.significant and self.mean < 0

    @property
    def improvement(self) -> float:
        """How much lower the challenger's mean error is, as a share of the champion's."""
        if self.champion_mean <= 0:
            return 0.0
        return 1.0 - self.challenger_mean / self.champion_mean


def _errors(values: ArrayLike, side: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{side} errors must be finite and non-negative")
    return array
