"""An early warning before the truth: each window's error estimated from its predictions.

The truth comes late (a scale a little down the line, a label days later), and an error
incident waits for it. The predictions alone already say a lot, and this module estimates each
window's error, per segment, as soon as the predictions' clock (their latest input time) has
passed the window's end by the allowed lateness:

- a segment the production version never saw (its items flagged unknown, or absent from its
  training data) is expected at the error that unseen segments showed this version so far, or at
  ``unseen_error`` before any was measured;
- a known segment is expected at the error the version was measured at on it in its last judged
  window (its recent error on inputs like these), or at the error of its held-out items when the
  registry states one, or at half the threshold when nothing is known yet;
- when the window's inputs of known segments drifted from the version's training data (the same
  test as the judged windows', :class:`monitoring.drift.DriftDetector`), each known segment's
  estimate is raised by the share of drifted columns (a drifted input is extrapolated).

The whole window's estimate is the item-weighted mean of its segments'. A segment estimated
above the threshold on at least ``min_count`` items opens a provisional incident; the window's
truth later confirms it (the judged window alarms on that segment) or clears it (the segment is
judged without alarm). Each judged window's estimate is set beside its measured error, and the
mean absolute gap between the two over the windows compared says how well the estimate tracks
the truth.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import pandas as pd

from monitoring.drift import DriftDetector
from monitoring.production import Production
from monitoring.windows import EPOCH, ClosedWindow
from tidemark.judging.scored import WHOLE, error_of, segment_of
from tidemark.project.contracts import Prediction
from tidemark.project.spec import Project

# Estimates kept for their truth, at most (the most recent ones).
KEPT_ESTIMATES = 1_000
# Comparisons of estimated and measured errors kept for a reader (the latest ones).
KEPT_COMPARISONS = 100


class Basis(StrEnum):
    """What a segment's estimate rests on."""

    UNSEEN = "unseen"
    MEASURED = "measured"
    HELD_OUT = "held-out"
    NOTHING_YET = "nothing-yet"


@dataclass(frozen=True, slots=True)
class SegmentEstimate:
    """One segment's estimated error in a window, on ``items`` predictions."""

    items: int
    error: float
    basis: Basis


@dataclass(frozen=True, slots=True)
class Estimate:
    """A window's error estimated before its truth."""

    start: datetime
    end: datetime
    version: str | None
    error: float
    by_segment: dict[str, SegmentEstimate]
    unseen_share: float
    drift_share: float | None


class Provisional(StrEnum):
    """What became of a provisional incident."""

    OPENED = "opened"
    CONFIRMED = "confirmed"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class ProvisionalChange:
    """A provisional incident of ``segment`` opened, confirmed or cleared in window ``start``."""

    segment: str
    change: Provisional
    start: datetime
    estimated: float
    measured: float | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    """A judged window's estimate beside its measured error."""

    start: datetime
    estimated: float
    measured: float
    by_segment: dict[str, tuple[float, float]]


@dataclass(slots=True)
class _PredictedWindow:
    items: dict[str, list[Prediction]] = field(default_factory=dict)
    unseen: int = 0


@dataclass
class Tracking:
    """How well the estimates tracked the measured errors so far, and the latest comparisons."""

    compared: int = 0
    gap_sum: float = 0.0
    recent: deque[Comparison] = field(default_factory=lambda: deque(maxlen=KEPT_COMPARISONS))

    @property
    def mean_gap(self) -> float | None:
        """The mean absolute gap between estimated and measured window errors."""
        return self.gap_sum / self.compared if self.compared else None


class EarlyWarning:
    """Estimates windows from their predictions and keeps the provisional incidents."""

    def __init__(
        self,
        project: Project,
        *,
        size_s: float,
        lateness_s: float,
        threshold: float,
        min_count: int,
        unseen_error: float,
    ) -> None:
        self.project = project
        self.size = timedelta(seconds=size_s)
        self.lateness = timedelta(seconds=lateness_s)
        self.threshold = threshold
        self.min_count = min_count
        self.unseen_prior = unseen_error
        self._windows: dict[datetime, _PredictedWindow] = {}
        self.clock: datetime | None = None
        self.estimates: dict[datetime, Estimate] = {}
        # Per version: the last measured error of each segment, and of its unseen segments.
        self._measured: dict[str, dict[str, float]] = {}
        self._unseen: dict[str, tuple[float, int]] = {}
        self.provisional: dict[str, ProvisionalChange] = {}
        # Segments whose truth confirmed an incident: no provisional one opens for them until a
        # window judges them without alarm (the incident is known, not foreseen).
        self.confirmed: set[str] = set()
        self.tracking = Tracking()

    def predicted(self, prediction: Prediction) -> None:
        """A prediction read from the predictions topic."""
        if self.clock is None or prediction.at > self.clock:
            self.clock = prediction.at
        start = EPOCH + ((prediction.at - EPOCH) // self.size) * self.size
        if start in self.estimates:
            return
        window = self._windows.setdefault(start, _PredictedWindow())
        window.items.setdefault(prediction.segment or WHOLE, []).append(prediction)
        window.unseen += not prediction.segment_known

    def due(self, production: Production | None) -> tuple[list[Estimate], list[ProvisionalChange]]:
        """Estimate every window the predictions' clock has passed (by the allowed lateness)
        for the ``production`` version; the provisional incidents those estimates open."""
        if self.clock is None:
            return [], []
        mark = self.clock - self.lateness
        estimates, changes = [], []
        for start in sorted(s for s in self._windows if s + self.size <= mark):
            estimate = self._estimate(start, self._windows.pop(start), production)
            self.estimates[start] = estimate
            # Windows whose truth never comes are not kept for ever.
            for old in sorted(self.estimates)[:-KEPT_ESTIMATES]:
                del self.estimates[old]
            estimates.append(estimate)
            for segment, seen in estimate.by_segment.items():
                if (
                    seen.error > self.threshold
                    and seen.items >= self.min_count
                    and segment not in self.provisional
                    and segment not in self.confirmed
                ):
                    opened = ProvisionalChange(segment, Provisional.OPENED, start, seen.error)
                    self.provisional[segment] = opened
                    changes.append(opened)
        return estimates, changes

    def _estimate(
        self, start: datetime, window: _PredictedWindow, production: Production | None
    ) -> Estimate:
        version = production.version if production else None
        known = production.known_segments if production else frozenset()
        measured = self._measured.get(version or "", {})
        held_out = production.held_out if production else {}
        total = sum(len(items) for items in window.items.values())
        drift_share = self._drift(window, production.detector if production else None)
        by_segment = {}
        for segment, items in window.items.items():
            unseen = (known and segment not in known) or not all(p.segment_known for p in items)
            if unseen:
                error, basis = self._unseen_error(version), Basis.UNSEEN
            elif segment in measured:
                error, basis = measured[segment], Basis.MEASURED
            elif segment in held_out:
                error, basis = held_out[segment], Basis.HELD_OUT
            else:
                error, basis = self.threshold / 2, Basis.NOTHING_YET
            if not unseen and drift_share:
                error *= 1 + drift_share
            by_segment[segment] = SegmentEstimate(len(items), error, basis)
        overall = math.fsum(e.error * e.items for e in by_segment.values()) / max(total, 1)
        return Estimate(
            start,
            start + self.size,
            version,
            overall,
            by_segment,
            window.unseen / max(total, 1),
            drift_share,
        )

    def _unseen_error(self, version: str | None) -> float:
        total, count = self._unseen.get(version or "", (0.0, 0))
        return total / count if count else self.unseen_prior

    def _drift(self, window: _PredictedWindow, detector: DriftDetector | None) -> float | None:
        if detector is None:
            return None
        items = [p.item for predictions in window.items.values() for p in predictions]
        frame = pd.DataFrame(
            {f.name: [i.fields.get(f.name) for i in items] for f in self.project.features},
            columns=[f.name for f in self.project.features],
        )
        if len(detector.comparable(frame)) < self.min_count:
            return None
        result = detector.check(frame, report=False)
        return result.share if result.detected else 0.0

    def judged(
        self,
        window: ClosedWindow,
        version: str | None,
        alarmed: frozenset[str],
        judged: frozenset[str],
    ) -> tuple[Comparison | None, list[ProvisionalChange]]:
        """A window was judged on its truth: the segments it ``alarmed`` on, and those it
        ``judged`` (on enough items). Its estimate beside the measured error, and the
        provisional incidents that truth confirms or clears."""
        self.confirmed = (self.confirmed | alarmed) - (judged - alarmed)
        changes = []
        for segment, opened in list(self.provisional.items()):
            if segment not in alarmed and segment not in judged:
                continue
            measured = window.by_segment.get(segment)
            change = Provisional.CONFIRMED if segment in alarmed else Provisional.CLEARED
            changes.append(
                ProvisionalChange(
                    segment,
                    change,
                    window.start,
                    opened.estimated,
                    measured.judged if measured else None,
                )
            )
            del self.provisional[segment]
        self._learn(window, version)
        estimate = self.estimates.pop(window.start, None)
        for start in [s for s in self.estimates if s < window.start]:
            del self.estimates[start]  # windows that never got a judged truth
        if estimate is None:
            return None, changes
        pairs = {
            segment: (estimate.by_segment[segment].error, stats.judged)
            for segment, stats in window.by_segment.items()
            if segment in estimate.by_segment
        }
        compared = Comparison(window.start, estimate.error, window.overall.judged, pairs)
        self.tracking.compared += 1
        self.tracking.gap_sum += abs(compared.estimated - compared.measured)
        self.tracking.recent.append(compared)
        return compared, changes

    def _learn(self, window: ClosedWindow, version: str | None) -> None:
        """Remember what ``version`` measured on each segment of the window (unseen ones apart)."""
        if version is None:
            return
        kind = self.project.target.judged_by
        by_segment: dict[str, list[float]] = {}
        unseen: list[float] = []
        for record in window.records:
            if record.prediction.model_version != version:
                continue
            error = error_of(record, kind)
            if record.prediction.segment_known:
                by_segment.setdefault(segment_of(record), []).append(error)
            else:
                unseen.append(error)
        measured = self._measured.setdefault(version, {})
        for segment, errors in by_segment.items():
            measured[segment] = math.fsum(errors) / len(errors)
        if unseen:
            total, count = self._unseen.get(version, (0.0, 0))
            self._unseen[version] = (total + math.fsum(unseen), count + len(unseen))
