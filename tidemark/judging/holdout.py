"""The held-out items: how many it takes to train and to judge, and which are held out.

Records are split per segment: each segment's most recent share is held out to judge, the rest
trains. A segment needs ``min_training_rows_per_segment`` rows to train on and
``min_holdout_rows_per_segment`` to judge, and the holdout needs ``min_holdout_rows`` in all;
a segment the retrain is about (the window's) that falls short makes the whole retrain short of
evidence, and nothing is trained. A segment that is only remembered from before the window and
falls short is trained on whole, and named as not judged. A project without a segment is one
segment, ``WHOLE``.

How candidate and champion are then judged on those items is ``tidemark.judging.promotion``.
Pure logic: no registry, no database.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import pandas as pd

from tidemark.config import RetrainSettings
from tidemark.judging.scored import WHOLE
from tidemark.modelling.frames import TrainingDataError


@dataclass(frozen=True, slots=True)
class EvidenceRules:
    """How many rows it takes to train and to judge (see the module docstring)."""

    holdout_fraction: float
    min_holdout_rows: int
    min_holdout_rows_per_segment: int
    min_training_rows_per_segment: int

    def __post_init__(self) -> None:
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if min(self.min_holdout_rows, self.min_holdout_rows_per_segment) < 1:
            raise ValueError("the holdout minimums must be at least 1")
        if self.min_training_rows_per_segment < 1:
            raise ValueError("min_training_rows_per_segment must be at least 1")

    def rows_to_judge(self, rows: int) -> int:
        """How many of a segment's ``rows`` are held out (before the overall minimum)."""
        return max(self.min_holdout_rows_per_segment, math.ceil(rows * self.holdout_fraction))

    @property
    def rows_per_segment(self) -> int:
        """The fewest rows of one segment that can be split into training and holdout."""
        rows = self.min_training_rows_per_segment + self.min_holdout_rows_per_segment
        while rows - self.rows_to_judge(rows) < self.min_training_rows_per_segment:
            rows += 1
        return rows

    @property
    def rows_alone(self) -> int:
        """The fewest rows of one segment that meet every minimum on their own, the overall
        holdout minimum included (no other segment's held-out items to add up with)."""
        rows = self.rows_per_segment
        while _held_per_segment({"": rows}, self)[""] < self.min_holdout_rows:
            rows += 1
        return rows

    @classmethod
    def of(cls, retrain: RetrainSettings) -> EvidenceRules:
        """The minimums of evidence the retrain settings define."""
        return cls(
            holdout_fraction=retrain.holdout_fraction,
            min_holdout_rows=retrain.min_holdout_rows,
            min_holdout_rows_per_segment=retrain.min_holdout_rows_per_segment,
            min_training_rows_per_segment=retrain.min_training_rows_per_segment,
        )


class InsufficientEvidenceError(TrainingDataError):
    """Too few rows to train on or to judge; ``rows_short`` says how many more each needs."""

    def __init__(self, message: str, rows_short: Mapping[str, int]) -> None:
        super().__init__(message)
        self.rows_short = dict(rows_short)


@dataclass(frozen=True, slots=True)
class Split:
    """Records split into training and held-out ones, and the segments too few to judge."""

    training: pd.DataFrame
    holdout: pd.DataFrame
    not_judged: dict[str, int] = field(default_factory=dict)


def segments_of(df: pd.DataFrame, segment: str | None) -> pd.Series:
    """Each record's segment as text; ``WHOLE`` for every record of a project without one."""
    if segment is None:
        return pd.Series(WHOLE, index=df.index, dtype=object)
    return df[segment].astype(str)


def split_holdout(
    df: pd.DataFrame,
    rules: EvidenceRules,
    *,
    segment: str | None,
    time: str | None,
    required: Collection[str] | None = None,
) -> Split:
    """Hold out each segment's most recent rows; ``required`` segments (all when None) must have
    evidence enough, the others are judged when they have it and trained on whole otherwise.

    ``segment`` is the project's segment column (None: the records are one group), ``time``
    its input time: records are ordered by it when the column exists, else kept in their order
    (a CSV, a generated scenario, in time order). Raises ``InsufficientEvidenceError`` when a
    required segment or the holdout as a whole falls short.
    """
    if df.empty:
        raise InsufficientEvidenceError("there are no records to train on", {})
    ordered = df.sort_values(time, kind="stable") if time is not None and time in df else df
    ordered = ordered.reset_index(drop=True)
    groups = segments_of(ordered, segment)
    counts = groups.value_counts().sort_index()
    needed = rules.rows_per_segment
    judged = {str(s): int(n) for s, n in counts.items() if n >= needed}
    short = {str(s): int(n) for s, n in counts.items() if n < needed}
    must = set(short) if required is None else set(short) & set(required)
    if must:
        listed = ", ".join(f"{s} {short[s]} rows" for s in sorted(must))
        raise InsufficientEvidenceError(
            f"too few rows to train on and judge ({listed}): each segment needs {needed} "
            f"({rules.min_training_rows_per_segment} to train on, at least "
            f"{rules.min_holdout_rows_per_segment} to hold out)",
            {s: needed - short[s] for s in must},
        )
    held = _held_per_segment(judged, rules)
    total = sum(held.values())
    if total < rules.min_holdout_rows:
        rows = sum(judged.values())
        raise InsufficientEvidenceError(
            f"{rows} rows of segments with evidence enough hold out {total}, fewer than the "
            f"minimum of {rules.min_holdout_rows} held-out rows",
            {"all": _rows_short_overall(judged, rules)},
        )
    # Within a segment, the most recent rows are held out: position from the end of its rows.
    from_end = groups.groupby(groups, sort=False).cumcount(ascending=False)
    limit = groups.map(held).fillna(0).astype(int)
    in_holdout = (from_end < limit).to_numpy()
    return Split(
        training=ordered.loc[~in_holdout].reset_index(drop=True),
        holdout=ordered.loc[in_holdout].reset_index(drop=True),
        not_judged=short,
    )


def check_holdout(segments: pd.Series, rules: EvidenceRules) -> None:
    """Raise ``InsufficientEvidenceError`` unless held-out items of these ``segments`` are enough
    to judge on: the per-segment minimum for each segment, the overall minimum for all."""
    counts = segments.astype(str).value_counts().sort_index()
    least = rules.min_holdout_rows_per_segment
    short = {str(s): least - int(n) for s, n in counts.items() if n < least}
    if short:
        listed = ", ".join(f"{s} {counts[s]} rows" for s in short)
        raise InsufficientEvidenceError(
            f"too few items to judge on ({listed}): each segment needs {least}", short
        )
    if len(segments) < rules.min_holdout_rows:
        raise InsufficientEvidenceError(
            f"{len(segments)} items are fewer than the minimum of {rules.min_holdout_rows} "
            "to judge on",
            {"all": rules.min_holdout_rows - len(segments)},
        )


def _held_per_segment(judged: Mapping[str, int], rules: EvidenceRules) -> dict[str, int]:
    """Rows held out per segment: its share, raised in proportion to meet the overall minimum
    as far as each segment's training minimum allows."""
    held = {s: rules.rows_to_judge(n) for s, n in judged.items()}
    rows = sum(judged.values())
    if rows and sum(held.values()) < rules.min_holdout_rows:
        for segment, n in judged.items():
            wanted = math.ceil(rules.min_holdout_rows * n / rows)
            spare = n - rules.min_training_rows_per_segment
            held[segment] = max(held[segment], min(wanted, spare))
    return held


def _rows_short_overall(judged: Mapping[str, int], rules: EvidenceRules) -> int:
    rows = sum(judged.values())
    target = rules.min_holdout_rows + rules.min_training_rows_per_segment * max(len(judged), 1)
    return max(target - rows, 1)
