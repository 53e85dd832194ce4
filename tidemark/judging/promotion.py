"""The promotion rule on held-out items: the paired test and the margin.

Candidate and champion are measured on the same held-out items (``tidemark.judging.holdout``
says which and how many), by the error the project judges (relative or absolute). The candidate
wins when there is no champion (or the champion cannot score the items), or when both hold:

- its mean error is lower than the champion's by at least the margin (a share of the
  champion's error), so that a gain too small to matter does not flip production; and
- item by item it errs less: a one-sided Wilcoxon signed-rank test on the paired per-item
  errors gives a p-value below ``alpha``, so that the gain is not the luck of a few items.

When the retrain answers an alarm about some segments (its **focus**), both are measured on
those segments' held-out items: that is where the gain must show. Pooling them with the items
of segments that did not change drowns it: one segment of three carries some fifteen items of
gain among some fifty of noise of either sign, and the pooled p-value landed anywhere between
0.003 and 0.1 for the same kind of retrain. The other segments must then not be significantly
worse (a one-sided signed-rank test that the candidate errs more, at ``alpha`` shared among
them), nor the candidate's error higher overall. A fixed tolerance per segment would not do:
two fits of one unchanged segment on different rows, compared on fifteen items, differ by more
than 5 % about half the time.

A candidate whose own metrics are not finite is never promoted. Pure logic: no registry, no
database.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

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


def signed_rank_test(
    candidate: FloatArray, champion: FloatArray, *, worse: bool = False
) -> SignedRankTest:
    """Test per-item errors of the candidate against the champion's on the same items: that the
    candidate errs less, or with ``worse`` that it errs more.

    Items on which both err exactly alike carry no evidence either way and are dropped (the
    Wilcoxon convention); when no item is left there is no evidence of a gain (p = 1).
    """
    if candidate.shape != champion.shape:
        raise ValueError(f"need paired errors, got {candidate.shape} and {champion.shape}")
    differs = candidate != champion
    if not differs.any():
        return SignedRankTest(statistic=0.0, p_value=1.0, n=int(candidate.size))
    alternative = "greater" if worse else "less"
    result = wilcoxon(candidate[differs], champion[differs], alternative=alternative)
    return SignedRankTest(
        statistic=float(result.statistic), p_value=float(result.pvalue), n=int(candidate.size)
    )


@dataclass(frozen=True, slots=True)
class Focus:
    """The segments an alarm was about, measured on their own held-out items."""

    segments: tuple[str, ...]
    n: int
    candidate_error: float
    champion_error: float

    @property
    def named(self) -> str:
        """The segments as a reason names them."""
        return ", ".join(self.segments)


@dataclass(frozen=True, slots=True)
class HoldoutEvidence:
    """Candidate and champion measured on the same held-out items, overall and per segment.

    ``test`` is the paired test of the focus's items when there is a focus, else of all items;
    ``harm_p_by_segment`` the one-sided p-value, per segment judged by both, that the candidate
    errs more there.
    """

    n: int
    n_by_segment: dict[str, int]
    candidate_error_by_segment: dict[str, float]
    champion_error_by_segment: dict[str, float] | None
    test: SignedRankTest | None
    not_judged: dict[str, int] = field(default_factory=dict)
    # The error measured: it names the per-segment tags (tidemark.judging.tags).
    kind: ErrorKind = ErrorKind.RELATIVE
    focus: Focus | None = None
    harm_p_by_segment: dict[str, float] = field(default_factory=dict)

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
    focus: Collection[str] = (),
) -> HoldoutEvidence:
    """Per-segment counts and mean errors of the error of ``kind``, and the paired tests when
    there is a champion; ``segments`` and the error arrays are aligned item by item.

    ``focus`` names the segments the alarm was about; those among the held-out items get the
    paired test of a gain, unless none is held out (then all items do).
    """
    names = segments.astype(str).to_numpy()
    groups = sorted(set(names))

    def by_segment(errors: FloatArray) -> dict[str, float]:
        return {s: float(np.mean(errors[names == s])) for s in groups}

    evidence = HoldoutEvidence(
        n=len(names),
        n_by_segment={s: int(np.sum(names == s)) for s in groups},
        candidate_error_by_segment=by_segment(candidate_errors),
        champion_error_by_segment=None if champion_errors is None else by_segment(champion_errors),
        test=None,
        not_judged=dict(not_judged or {}),
        kind=kind,
    )
    if champion_errors is None:
        return evidence
    harm = {
        s: signed_rank_test(
            candidate_errors[names == s], champion_errors[names == s], worse=True
        ).p_value
        for s in groups
    }
    focused = tuple(s for s in groups if s in set(focus))
    if not focused:
        test = signed_rank_test(candidate_errors, champion_errors)
        return replace(evidence, test=test, harm_p_by_segment=harm)
    inside = np.isin(names, focused)
    return replace(
        evidence,
        test=signed_rank_test(candidate_errors[inside], champion_errors[inside]),
        focus=Focus(
            segments=focused,
            n=int(inside.sum()),
            candidate_error=float(np.mean(candidate_errors[inside])),
            champion_error=float(np.mean(champion_errors[inside])),
        ),
        harm_p_by_segment=harm,
    )


def worse_segments(evidence: HoldoutEvidence, alpha: float) -> dict[str, float]:
    """The segments, outside the focus, on which the candidate errs significantly more than the
    champion (``alpha`` shared among them, Bonferroni), with their p-values."""
    focus = set(evidence.focus.segments) if evidence.focus is not None else set()
    others = {s: p for s, p in evidence.harm_p_by_segment.items() if s not in focus}
    return {s: p for s, p in others.items() if p < alpha / len(others)}


def decide(
    candidate: Metrics,
    champion: Metrics | None,
    *,
    margin: float,
    alpha: float,
    test: SignedRankTest | None = None,
    champion_version: str | None = None,
    champion_error: str | None = None,
    focus: Focus | None = None,
    worse: Mapping[str, float] | None = None,
) -> Ruling:
    """Judge a candidate against the champion, both measured on the same held-out items.

    ``champion`` is None when nothing is in production, or when the champion could not score
    the holdout at all (``champion_error`` then says why). With a champion, ``test`` is the
    paired test of their per-item errors (of the ``focus``'s items when there is one); without
    one the candidate cannot win. With a focus, the margin is measured on its items too, and
    the candidate must be significantly worse on no other segment (``worse``, from
    :func:`worse_segments`) and no worse overall.
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
    paired = (
        f"Wilcoxon signed-rank p = {test.p_value:.3g}" if test is not None else "no paired test"
    )
    significant = test is not None and test.p_value < alpha
    failures = []
    if focus is None:
        # The gain over all held-out items.
        scope, gained, lost = "", ours, theirs
        promoted_tail = f" on {candidate.n} held-out items"
        rejected_tail = f", on {candidate.n} held-out items"
    else:
        # The gain on the alarm's segments; no harm elsewhere.
        scope = f" on {focus.named} (the alarm's; {focus.n} held-out items)"
        gained, lost = focus.candidate_error, focus.champion_error
        whole = f"{ours:.4f} against {theirs:.4f} overall, on {candidate.n} held-out items"
        promoted_tail = f"; significantly worse on no other segment; {whole}"
        rejected_tail = f"; {whole}"
        if worse:
            named = ", ".join(f"{s} (p = {p:.3g})" for s, p in sorted(worse.items()))
            failures.append(f"significantly worse item by item on {named}")
        if ours > theirs:
            failures.append("higher overall")
    beats_margin = gained < lost * (1 - margin)
    if beats_margin and significant and not failures:
        gain = (lost - gained) / lost if lost > 0 else 0.0
        return Ruling(
            Decision.PROMOTED,
            f"candidate {error} {gained:.4f}{scope} is {gain:.1%} below champion {champ}'s "
            f"{lost:.4f} (margin {margin:.0%}) and lower item by item ({paired} < {alpha:g})"
            f"{promoted_tail}",
        )
    if not significant:
        failures.insert(
            0, f"the item-by-item gain{scope} is not significant ({paired}, alpha {alpha:g})"
        )
    if not beats_margin:
        failures.insert(
            0,
            f"candidate {error} {gained:.4f}{scope} is not at least {margin:.0%} below "
            f"champion {champ}'s {lost:.4f}",
        )
    return Ruling(Decision.REJECTED, f"{'; '.join(failures)}{rejected_tail}")


def _name(version: str | None) -> str:
    return f"v{version}" if version else "(unknown version)"
