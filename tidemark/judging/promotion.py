"""The promotion rule on held-out items: the paired test and the margin.

Candidate and champion are measured on the same held-out items (``tidemark.judging.holdout``
says which and how many), by the error the project judges (relative or absolute). The candidate
wins when there is no champion (or the champion cannot score the items), or when both hold:

- its mean error is lower than the champion's by at least the margin (a share of the
  champion's error), so that a gain too small to matter does not flip production; and
- item by item it errs less: a one-sided Wilcoxon signed-rank test on the paired per-item
  errors gives a p-value below ``alpha``, so that the gain is not the luck of a few items.

A candidate whose own metrics are not finite is never promoted. Pure logic: no registry, no
database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import wilcoxon

from tidemark.judging.decisions import Decision, Ruling
from tidemark.modelling.metrics import JUDGED_METRIC, Metrics
from tidemark.project.spec import ErrorKind

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SignedRankTest:
    """A one-sided Wilcoxon signed-rank test that the candidate errs less, item by item."""

    statistic: float
    p_value: float
    n: int


def signed_rank_test(candidate: FloatArray, champion: FloatArray) -> SignedRankTest:
    """Test per-item errors of the candidate against the champion's on the same items.

    Items on which both err exactly alike carry no evidence either way and are dropped (the
    Wilcoxon convention); when no item is left there is no evidence of a gain (p = 1).
    """
    if candidate.shape != champion.shape:
        raise ValueError(f"need paired errors, got {candidate.shape} and {champion.shape}")
    differs = candidate != champion
    if not differs.any():
        return SignedRankTest(statistic=0.0, p_value=1.0, n=int(candidate.size))
    result = wilcoxon(candidate[differs], champion[differs], alternative="less")
    return SignedRankTest(
        statistic=float(result.statistic), p_value=float(result.pvalue), n=int(candidate.size)
    )


@dataclass(frozen=True, slots=True)
class HoldoutEvidence:
    """Candidate and champion measured on the same held-out items, overall and per segment."""

    n: int
    n_by_segment: dict[str, int]
    candidate_error_by_segment: dict[str, float]
    champion_error_by_segment: dict[str, float] | None
    test: SignedRankTest | None
    not_judged: dict[str, int] = field(default_factory=dict)
    # The error measured: it names the per-segment tags (tidemark.judging.tags).
    kind: ErrorKind = ErrorKind.RELATIVE

    @property
    def judged_name(self) -> str:
        """The judged error's name: ``mean_relative_error`` or ``mean_absolute_error``."""
        return JUDGED_METRIC[self.kind]


def gather_evidence(
    segments: pd.Series,
    candidate_errors: FloatArray,
    champion_errors: FloatArray | None,
    not_judged: Mapping[str, int] | None = None,
    kind: ErrorKind = ErrorKind.RELATIVE,
) -> HoldoutEvidence:
    """Per-segment counts and mean errors of the error of ``kind``, and the paired test when
    there is a champion; ``segments`` and the error arrays are aligned item by item."""
    names = segments.astype(str).to_numpy()
    groups = sorted(set(names))

    def by_segment(errors: FloatArray) -> dict[str, float]:
        return {s: float(np.mean(errors[names == s])) for s in groups}

    return HoldoutEvidence(
        n=len(names),
        n_by_segment={s: int(np.sum(names == s)) for s in groups},
        candidate_error_by_segment=by_segment(candidate_errors),
        champion_error_by_segment=None if champion_errors is None else by_segment(champion_errors),
        test=None
        if champion_errors is None
        else signed_rank_test(candidate_errors, champion_errors),
        not_judged=dict(not_judged or {}),
        kind=kind,
    )


def decide(
    candidate: Metrics,
    champion: Metrics | None,
    *,
    margin: float,
    alpha: float,
    test: SignedRankTest | None = None,
    champion_version: str | None = None,
    champion_error: str | None = None,
) -> Ruling:
    """Judge a candidate against the champion, both measured on the same held-out items.

    ``champion`` is None when nothing is in production, or when the champion could not score
    the holdout at all (``champion_error`` then says why). With a champion, ``test`` is the
    paired test of their per-item errors; without one the candidate cannot win.
    """
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    values = (candidate.mae, candidate.rmse, candidate.judged)
    if candidate.n < 1 or not all(math.isfinite(v) for v in values):
        return Ruling(Decision.REJECTED, f"candidate metrics are unusable: {candidate}")
    ours, error = candidate.judged, candidate.judged_name.replace("_", " ")
    if champion is None:
        if champion_error is not None:
            return Ruling(
                Decision.PROMOTED,
                f"champion {_name(champion_version)} could not score the holdout "
                f"({champion_error}); candidate {error} {ours:.4f} on "
                f"{candidate.n} held-out items",
            )
        return Ruling(
            Decision.PROMOTED,
            f"no model in production; candidate {error} {ours:.4f} on {candidate.n} held-out items",
        )
    theirs = champion.judged
    champ = _name(champion_version)
    beats_margin = ours < theirs * (1 - margin)
    significant = test is not None and test.p_value < alpha
    paired = (
        f"Wilcoxon signed-rank p = {test.p_value:.3g}" if test is not None else "no paired test"
    )
    if beats_margin and significant:
        gain = (theirs - ours) / theirs if theirs > 0 else 0.0
        return Ruling(
            Decision.PROMOTED,
            f"candidate {error} {ours:.4f} is {gain:.1%} below champion {champ}'s "
            f"{theirs:.4f} (margin {margin:.0%}) and lower item by item ({paired} < {alpha:g}) "
            f"on {candidate.n} held-out items",
        )
    failures = []
    if not beats_margin:
        failures.append(
            f"candidate {error} {ours:.4f} is not at least {margin:.0%} below "
            f"champion {champ}'s {theirs:.4f}"
        )
    if not significant:
        failures.append(f"the item-by-item gain is not significant ({paired}, alpha {alpha:g})")
    return Ruling(Decision.REJECTED, f"{'; '.join(failures)}, on {candidate.n} held-out items")


def _name(version: str | None) -> str:
    return f"v{version}" if version else "(unknown version)"
