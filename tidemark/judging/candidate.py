"""What becomes of a candidate judged on held-out items: production, shadow, or the record only.

The paired test and the margin (``tidemark.judging.promotion``) give the ruling. Two rules
refine it:

- **the emergency path**: when the alarm that started the retrain measured more than twice its
  threshold, waiting for significance costs more than the risk. A candidate the test rejected
  is promoted at once if its held-out error is lower than the champion's overall and it is
  significantly worse on no segment (the one-sided harm test of
  ``tidemark.judging.promotion``; the holdout's minimums of items already hold). A fixed
  tolerance per segment would not do: two fits of one segment both versions know, compared on
  some fifteen held-out items, differ by more than 5 % about half the time, so a candidate that
  cures a failing segment was refused on the noise of another. The replaced version then runs
  in shadow as a rollback watch, so that the live items undo a promotion that was wrong.
- **shadow**: a candidate rejected for want of evidence, not for being worse (no higher mean
  error than the champion's overall and on the alarm's segments, or on every segment when the
  retrain answers no alarm about some; significantly higher on no other), runs in shadow: the
  live items decide (``tidemark.judging.shadow``), with as many of them as it takes, where the
  holdout had too few to tell.

A promotion forced by hand is watched the same way as an emergency. Pure logic.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tidemark.judging.decisions import Decision, Ruling
from tidemark.judging.promotion import (
    HoldoutEvidence,
    decide,
    gather_evidence,
    worse_segments,
)
from tidemark.modelling.metrics import Metrics


class Placement(StrEnum):
    """Where a judged version goes."""

    # It won: production.
    PRODUCTION = "production"
    # Promoted without proof (an emergency, or forced): production, and the version it replaced
    # watches it in shadow and comes back if it proves better on the live items.
    WATCHED = "watched"
    # Not worse, not proven better: the challenger in shadow beside production.
    SHADOW = "shadow"
    # It lost: registered for the record, it serves nowhere.
    REGISTRY = "registry"

    @property
    def serves(self) -> bool:
        """Whether the version goes to production."""
        return self in (Placement.PRODUCTION, Placement.WATCHED)


class AlarmFigures(Protocol):
    """What the alarm that asked for a candidate measured (``registry.notes.Trigger`` has it)."""

    @property
    def metric(self) -> str | None:
        """The metric that fired, if an alarm fired."""

    @property
    def metric_value(self) -> float | None:
        """Its value."""

    @property
    def threshold(self) -> float | None:
        """The threshold it passed."""


@dataclass(frozen=True, slots=True)
class ChampionScore:
    """The production model's per-item errors on the holdout, or why it has none."""

    version: str | None
    metrics: Metrics | None
    errors: np.ndarray[Any, np.dtype[np.float64]] | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Judgement:
    """A candidate judged against the champion on the same held-out items."""

    ruling: Ruling
    candidate: Metrics
    champion: ChampionScore
    evidence: HoldoutEvidence
    # The significance level the ruling used; the emergency path's harm test uses it too.
    alpha: float


def judge_on_holdout(
    segments: pd.Series,
    candidate: Metrics,
    candidate_errors: np.ndarray[Any, np.dtype[np.float64]],
    champion: ChampionScore,
    *,
    margin: float,
    alpha: float,
    not_judged: Mapping[str, int] | None = None,
    focus: Collection[str] = (),
) -> Judgement:
    """The promotion rule applied to a candidate and the champion scored on the same items;
    ``focus`` names the segments the alarm that asked for the candidate was about."""
    evidence = gather_evidence(
        segments, candidate_errors, champion.errors, not_judged, kind=candidate.kind, focus=focus
    )
    ruling = decide(
        candidate,
        champion.metrics,
        margin=margin,
        alpha=alpha,
        test=evidence.test,
        champion_version=champion.version,
        champion_error=champion.error,
        focus=evidence.focus,
        worse=worse_segments(evidence, alpha),
    )
    return Judgement(ruling, candidate, champion, evidence, alpha)


def _no_segment_higher(evidence: HoldoutEvidence) -> bool:
    """Whether the candidate's mean error is no higher than the champion's on every segment
    judged by both."""
    theirs = evidence.champion_error_by_segment or {}
    return all(
        ours <= theirs[segment]
        for segment, ours in evidence.candidate_error_by_segment.items()
        if segment in theirs
    )


def _significantly_worse_nowhere(judgement: Judgement) -> bool:
    """Whether the candidate errs significantly more than the champion on no segment judged by
    both (the one-sided harm test, ``alpha`` shared among the segments)."""
    harm = judgement.evidence.harm_p_by_segment
    return all(p >= judgement.alpha / len(harm) for p in harm.values())


def deserves_shadow(judgement: Judgement) -> bool:
    """Whether a candidate the held-out test did not promote should run in shadow: a champion
    to compare with, a held-out error no higher than the champion's overall, and no higher on
    what the alarm was about. With the alarm's segments (the focus), their error is the one
    compared, and every other segment must be significantly worse nowhere (the harm test the
    ruling used): their means on a few held-out items each differ by chance. Without a focus,
    no segment judged may have a higher mean error."""
    champion = judgement.champion.metrics
    if judgement.ruling.decision is not Decision.REJECTED or champion is None:
        return False
    if judgement.candidate.judged > champion.judged:
        return False
    focus = judgement.evidence.focus
    if focus is None:
        return _no_segment_higher(judgement.evidence)
    if focus.candidate_error > focus.champion_error:
        return False
    return not worse_segments(judgement.evidence, judgement.alpha)


def emergency_ruling(alarm: AlarmFigures, judgement: Judgement) -> Ruling | None:
    """A promotion without the paired test's significance, when production is failing badly:
    the alarm measured more than twice its threshold, and the rejected candidate's held-out
    error is lower than the champion's overall and significantly higher on no segment."""
    value, threshold = alarm.metric_value, alarm.threshold
    champion = judgement.champion.metrics
    if (
        judgement.ruling.decision is not Decision.REJECTED
        or value is None
        or threshold is None
        or value <= 2 * threshold
        or champion is None
    ):
        return None
    ours, theirs = judgement.candidate.judged, champion.judged
    if ours >= theirs or not _significantly_worse_nowhere(judgement):
        return None
    return Ruling(
        Decision.PROMOTED,
        f"emergency: production's {alarm.metric or 'error'} {value:.3f} is above twice the "
        f"threshold {threshold:.2f}; candidate {judgement.candidate.judged_name.replace('_', ' ')} "
        f"{ours:.4f} below the champion's {theirs:.4f} on {judgement.candidate.n} held-out "
        "items, though not "
        f"significantly ({judgement.ruling.reason}); the replaced version watches in shadow",
    )


def place(judgement: Judgement, alarm: AlarmFigures) -> tuple[Judgement, Placement]:
    """The final ruling on a candidate (the emergency path may overrule the paired test) and
    where the candidate goes."""
    urgent = emergency_ruling(alarm, judgement)
    if urgent is not None:
        return replace(judgement, ruling=urgent), Placement.WATCHED
    if judgement.ruling.promote:
        return judgement, Placement.PRODUCTION
    if deserves_shadow(judgement):
        return judgement, Placement.SHADOW
    return judgement, Placement.REGISTRY


def shadow_reason(ruling: Ruling) -> str:
    """Why a candidate placed in shadow runs there, as its challenger's start reason."""
    return f"not worse on the holdout, but not proven better: {ruling.reason}"


def forced(production_version: str | None) -> tuple[Ruling, Placement]:
    """A promotion by hand over the policy: forced, and watched by the version it replaces."""
    ruling = Ruling(
        Decision.FORCED, f"forced over the policy (production was v{production_version})"
    )
    return ruling, Placement.PRODUCTION if production_version is None else Placement.WATCHED


def not_reproduced(reason: str) -> Ruling:
    """The ruling on a promoted version whose registered artifact does not predict like the
    model that was judged: rejected after all."""
    return Ruling(Decision.REJECTED, reason)
