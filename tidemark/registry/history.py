"""Production history: every move of the ``production`` alias, as an append-only record.

MLflow keeps only where an alias points now. Before the platform moves the alias (a promotion
or a rollback, ``tidemark.registry.writer``), it writes one :class:`ProductionMove` as a tag of
the registered model, under a key of its own (``production_move.<UTC time>``, see
:func:`move_tag`) that is never written again: the record is append-only by construction, a
second writer can never overwrite an earlier move, and the keys sort in time order. Why tags
rather than an artifact of a run: a registered model has no artifacts of its own, a tag costs
one REST call to write and the whole history comes back with the model in one call (what the
model server and the CLI read, without MLflow's client), and MLflow's UI lists the model's tags
on its page. A tag value holds up to 100,000 characters in MLflow 3, and a move with its
per-segment figures is well under 2,000.

Nothing here talks to MLflow: this module turns moves into intervals
(:func:`production_intervals`) and into the Markdown table that the registered model's
description shows (:func:`history_table`), so that the MLflow page of the model says what
served when.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from tidemark.judging.promotion import HoldoutEvidence
    from tidemark.modelling.metrics import Metrics
    from tidemark.schemas import ModelDecision

MOVE_TAG_PREFIX = "production_move."
# The model's description ends with the history table, after this heading.
HISTORY_HEADING = "## Production history"
_STAMP = "%Y%m%dT%H%M%S%fZ"


class HowItCame(StrEnum):
    """How a version came to production."""

    # The first version: trained on the scenario or a CSV, nothing to beat.
    BOOTSTRAP = "bootstrap"
    # It beat production on held-out items (the paired test and the margin).
    EVIDENCE = "evidence"
    # Production failed badly and it was better on held-out items, without significance.
    EMERGENCY = "emergency"
    # It beat production in shadow, on live items.
    SHADOW_WIN = "shadow_win"
    # Put there by hand over the policy.
    FORCED = "forced"
    # It came back: the version that had replaced it was rolled back.
    ROLLBACK = "rollback"


class SegmentFigures(BaseModel):
    """The figures of a decision on one segment's items."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n: int = Field(ge=0)
    incoming_error: float | None = None
    outgoing_error: float | None = None
    p_value: float | None = None


class MoveFigures(BaseModel):
    """The figures a move of production rested on: the same items judged for the version that
    came in and the one it replaced (``incoming``/``outgoing``), overall and per segment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    evidence: str = Field(description="holdout (held-out items), live (shadow) or none")
    n: int = Field(default=0, ge=0)
    p_value: float | None = None
    statistic: float | None = None
    alpha: float | None = None
    incoming_error: float | None = None
    outgoing_error: float | None = None
    segments: dict[str, SegmentFigures] = Field(default_factory=dict)
    trigger: str | None = Field(default=None, description="what asked for the version")

    def summary(self) -> str:
        """One line: ``holdout n = 120, p = 0.003, error 0.052 vs 0.118``."""
        if self.evidence == "none":
            return "no evidence"
        parts = [f"{self.evidence} n = {self.n}"]
        if self.p_value is not None:
            parts.append(f"p = {self.p_value:.3g}")
        if self.incoming_error is not None and self.outgoing_error is not None:
            parts.append(f"error {self.incoming_error:.4f} vs {self.outgoing_error:.4f}")
        elif self.incoming_error is not None:
            parts.append(f"error {self.incoming_error:.4f}")
        return ", ".join(parts)


NO_FIGURES = MoveFigures(evidence="none")


class ProductionMove(BaseModel):
    """One move of the production alias: which version came, replacing which, when, how, why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1)
    previous: str | None = Field(description="The version it replaced (None: the first)")
    at: AwareDatetime
    how: HowItCame
    reason: str
    figures: MoveFigures = NO_FIGURES
    decided_by: str = Field(default="", description="the flow, the monitor, or a person")
    flow_run_id: str | None = None


class ProductionInterval(BaseModel):
    """A span in which one version served: from when to when, how it came and why it left."""

    version: str
    start: datetime
    end: datetime | None = Field(description="None while it serves")
    came: ProductionMove
    left: ProductionMove | None = Field(
        description="The move that ended the interval (the next version's arrival)"
    )

    @property
    def serving(self) -> bool:
        """Whether the version still serves."""
        return self.end is None

    @property
    def why_left(self) -> str | None:
        """``rolled back: …`` or ``replaced by v7 (evidence): …``; None while it serves."""
        if self.left is None:
            return None
        if self.left.how is HowItCame.ROLLBACK:
            return f"rolled back to v{self.left.version}: {self.left.reason}"
        return f"replaced by v{self.left.version} ({self.left.how.value}): {self.left.reason}"


def move_tag(at: datetime) -> str:
    """The tag key of a move made at ``at``: unique to the microsecond and sorted by time."""
    return f"{MOVE_TAG_PREFIX}{at.astimezone(UTC).strftime(_STAMP)}"


def moves_of(tags: Mapping[str, str]) -> list[ProductionMove]:
    """The moves recorded in a registered model's tags, oldest first (unreadable ones skipped:
    a tag written by hand must not hide the history)."""
    moves = []
    for key in sorted(k for k in tags if k.startswith(MOVE_TAG_PREFIX)):
        try:
            moves.append(ProductionMove.model_validate_json(tags[key]))
        except ValidationError:
            continue
    return moves


def production_intervals(moves: Sequence[ProductionMove]) -> list[ProductionInterval]:
    """The intervals the moves delimit, oldest first: each version from its move to the next.

    Two moves in a row to the same version (a retried promotion whose alias move had failed
    after its record was written) are one arrival.
    """
    arrivals: list[ProductionMove] = []
    for move in moves:
        if arrivals and arrivals[-1].version == move.version:
            continue
        arrivals.append(move)
    intervals = []
    for index, came in enumerate(arrivals):
        left = arrivals[index + 1] if index + 1 < len(arrivals) else None
        intervals.append(
            ProductionInterval(
                version=came.version,
                start=came.at,
                end=left.at if left else None,
                came=came,
                left=left,
            )
        )
    return intervals


def history_table(intervals: Iterable[ProductionInterval]) -> str:
    """The history as Markdown, newest first, for the registered model's description."""
    rows = [
        HISTORY_HEADING,
        "",
        "| version | from | to | how it came | why | figures | why it left |",
        "|---|---|---|---|---|---|---|",
    ]
    for interval in sorted(intervals, key=lambda i: i.start, reverse=True):
        rows.append(
            f"| v{interval.version} | {_when(interval.start)} | "
            f"{_when(interval.end) if interval.end else 'serving'} | "
            f"{interval.came.how.value} | {_cell(interval.came.reason)} | "
            f"{_cell(interval.came.figures.summary())} | {_cell(interval.why_left or '')} |"
        )
    return "\n".join(rows) + "\n"


def with_history(description: str, intervals: Sequence[ProductionInterval]) -> str:
    """``description`` with its history table replaced by (or ended with) the current one."""
    head = description.split(HISTORY_HEADING, 1)[0].rstrip()
    if not intervals:
        return head + "\n"
    return f"{head}\n\n{history_table(intervals)}"


def holdout_figures(
    evidence: HoldoutEvidence,
    candidate: Metrics,
    champion: Metrics | None,
    trigger: str | None,
) -> MoveFigures:
    """The figures of a judgement on held-out items (candidate in, champion out)."""
    champion_by_segment = evidence.champion_error_by_segment or {}
    return MoveFigures(
        evidence="holdout",
        n=evidence.n,
        p_value=evidence.test.p_value if evidence.test else None,
        statistic=evidence.test.statistic if evidence.test else None,
        incoming_error=candidate.judged,
        outgoing_error=champion.judged if champion else None,
        segments={
            segment: SegmentFigures(
                n=n,
                incoming_error=evidence.candidate_error_by_segment.get(segment),
                outgoing_error=champion_by_segment.get(segment),
            )
            for segment, n in evidence.n_by_segment.items()
        },
        trigger=trigger,
    )


def live_figures(decision: ModelDecision, *, rollback: bool) -> MoveFigures:
    """The figures of a verdict on live items. A promotion brings the challenger in; a
    rollback brings back the watching version (the decision's challenger) and takes the
    champion out, so both read the same way round."""
    return MoveFigures(
        evidence="live" if decision.n else "none",
        n=decision.n,
        p_value=decision.p_value,
        statistic=decision.statistic,
        alpha=decision.alpha,
        incoming_error=decision.challenger_mre,
        outgoing_error=decision.champion_mre,
        segments={
            segment: SegmentFigures(
                n=s.n,
                incoming_error=s.challenger_mre,
                outgoing_error=s.champion_mre,
                p_value=s.p_value,
            )
            for segment, s in decision.segments.items()
        },
        trigger=None if rollback else "shadow",
    )


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
