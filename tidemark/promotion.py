"""The promotion policy: when a newly trained candidate may replace the model in production.

Candidate and champion are judged on the same held-out records, the most recent ones, which
neither was trained on. The candidate wins when there is no champion, or when its mean relative
error is lower than the champion's by at least a margin (a share of the champion's error), so
that noise alone does not flip production back and forth. A candidate whose own metrics are
not finite is never promoted. Pure logic: no registry, no database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import pandas as pd

from tidemark.model import Metrics, TrainingDataError

MEASURED_AT = "measured_at"
NO_METRIC = "none"


class Decision(StrEnum):
    """What happened to a registered version (its ``decision`` tag)."""

    PROMOTED = "promoted"
    REJECTED = "rejected"
    FORCED = "forced"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The policy's answer, with a reason a person can read in the registry."""

    decision: Decision
    reason: str

    @property
    def promote(self) -> bool:
        """Whether the candidate goes to production."""
        return self.decision is not Decision.REJECTED


def decide(
    candidate: Metrics,
    champion: Metrics | None,
    *,
    margin: float,
    champion_version: str | None = None,
    champion_error: str | None = None,
) -> Verdict:
    """Judge a candidate against the champion, both measured on the same holdout.

    ``champion`` is None when nothing is in production, or when the champion could not score
    the holdout at all (``champion_error`` then says why).
    """
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    values = (candidate.mae, candidate.rmse, candidate.mean_relative_error)
    if candidate.n < 1 or not all(math.isfinite(v) for v in values):
        return Verdict(Decision.REJECTED, f"candidate metrics are unusable: {candidate}")
    ours = candidate.mean_relative_error
    if champion is None:
        if champion_error is not None:
            return Verdict(
                Decision.PROMOTED,
                f"champion {_name(champion_version)} could not score the holdout "
                f"({champion_error}); candidate mean relative error {ours:.4f}",
            )
        return Verdict(
            Decision.PROMOTED, f"no model in production; candidate mean relative error {ours:.4f}"
        )
    theirs = champion.mean_relative_error
    bar = theirs * (1 - margin)
    if ours < bar:
        gain = (theirs - ours) / theirs if theirs > 0 else 0.0
        return Verdict(
            Decision.PROMOTED,
            f"candidate mean relative error {ours:.4f} is {gain:.1%} below champion "
            f"{_name(champion_version)}'s {theirs:.4f} (margin {margin:.0%}) on "
            f"{candidate.n} held-out records",
        )
    return Verdict(
        Decision.REJECTED,
        f"candidate mean relative error {ours:.4f} is not at least {margin:.0%} below champion "
        f"{_name(champion_version)}'s {theirs:.4f} on {candidate.n} held-out records",
    )


def _name(version: str | None) -> str:
    return f"v{version}" if version else "(unknown version)"


def split_holdout(
    df: pd.DataFrame, *, fraction: float, min_holdout: int, min_train: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split records into (train, holdout); the holdout is the most recent ``fraction``.

    Records are ordered by ``measured_at`` when the column exists, else kept in their order
    (generated scenarios are in time order). Raises ``TrainingDataError`` when there are too
    few records to train on ``min_train`` and hold out ``min_holdout``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if df.empty:
        raise TrainingDataError("there are no records to train on")
    ordered = df.sort_values(MEASURED_AT, kind="stable") if MEASURED_AT in df.columns else df
    held = max(min_holdout, math.ceil(len(ordered) * fraction))
    if len(ordered) - held < min_train:
        raise TrainingDataError(
            f"{len(ordered)} records are too few: need {min_train} to train on and "
            f"{held} to hold out"
        )
    cut = len(ordered) - held
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)


def metric_tags(prefix: str, metrics: Metrics | None) -> dict[str, str]:
    """``{prefix}_mae``, ``{prefix}_rmse`` and ``{prefix}_mre`` as tags ("none" when absent)."""
    values = (
        (metrics.mae, metrics.rmse, metrics.mean_relative_error)
        if metrics is not None
        else (None, None, None)
    )
    return {
        f"{prefix}_{name}": NO_METRIC if value is None else repr(float(value))
        for name, value in zip(("mae", "rmse", "mre"), values, strict=True)
    }


def decision_tags(verdict: Verdict) -> dict[str, str]:
    """The ``decision`` and ``decision_reason`` tags of a verdict."""
    return {"decision": verdict.decision.value, "decision_reason": verdict.reason}
