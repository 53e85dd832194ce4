"""Truth coverage: how many of a window's predictions got their truth, per segment.

The scored topic alone cannot say that the loop went blind: when the truth stops (for every item
or for one segment), windows simply hold fewer scored items and look fine. The monitor therefore
also reads the predictions topic, and this book counts, per event-time window (the same windows
as :mod:`monitoring.windows`, by the input's time) and per segment, the items predicted and the
items whose truth was joined; those not joined yet are waiting, and those whose join window has
passed on the predictions' clock are expired (the joiner gave up on them). The truth delay of a
joined item is the wall-clock time from its prediction to its join: how long the loop waited.

A window's coverage is taken when the monitor judges it (:meth:`CoverageBook.close`); a window
that no scored item ever reached is settled once the predictions' clock is past it by the join
window (:meth:`CoverageBook.settle`): it has no judgement, only its coverage of 0 %.

Offsets of the predictions topic are committed like the windows': up to the first prediction
still in a window the book holds (:meth:`CoverageBook.commit_offsets`), so that a restarted
monitor counts again the predictions of the windows it has not judged; those of windows closed
before the restart are not counted twice (the book starts at the windows' ``closed_until``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitoring.windows import EPOCH
from tidemark.judging.scored import WHOLE
from tidemark.project.contracts import Prediction, Scored

# The key of the whole window beside its segments.
ALL = "all"


@dataclass(frozen=True, slots=True)
class SegmentCoverage:
    """Predictions of a window (or of one of its segments) and what became of their truth."""

    predicted: int
    joined: int
    waiting: int
    expired: int
    # Seconds from prediction to join (wall clock), median and 95th percentile; None: none joined.
    delay_p50_s: float | None
    delay_p95_s: float | None

    @property
    def share(self) -> float:
        """Joined items per predicted item (1.0 for a window with no prediction read)."""
        return self.joined / self.predicted if self.predicted else 1.0


@dataclass(frozen=True, slots=True)
class WindowCoverage:
    """A window's coverage, overall (:data:`ALL`) and per segment."""

    start: datetime
    end: datetime
    overall: SegmentCoverage
    by_segment: dict[str, SegmentCoverage]

    def short(self, floor: float) -> dict[str, float]:
        """The coverage share of the whole window and of each segment that are below
        ``floor``."""
        shares = {ALL: self.overall.share} | {s: c.share for s, c in self.by_segment.items()}
        return {name: share for name, share in shares.items() if share < floor}

    def note(self, floor: float) -> str | None:
        """``not judged: coverage 48 % (north 0 %)`` when the window or a segment of it is
        below ``floor``; None when the truth covers it."""
        short = self.short(floor)
        if not short:
            return None
        segments = ", ".join(f"{s} {_percent(v)}" for s, v in sorted(short.items()) if s != ALL)
        text = f"not judged: coverage {_percent(self.overall.share)}"
        return f"{text} ({segments})" if segments else text


def _percent(share: float) -> str:
    return f"{math.floor(share * 100)} %"


def quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` (nearest rank); None when there is none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(slots=True)
class _WindowTally:
    predicted: dict[str, set[str]] = field(default_factory=dict)
    # Per segment, each joined item's truth delay in seconds.
    joined: dict[str, dict[str, float]] = field(default_factory=dict)
    first_offset: dict[int, int] = field(default_factory=dict)

    def coverage(self, start: datetime, end: datetime, expired: bool) -> WindowCoverage:
        by_segment = {
            segment: _segment(
                self.predicted.get(segment, set()), self.joined.get(segment, {}), expired
            )
            for segment in sorted(set(self.predicted) | set(self.joined))
        }
        every = set().union(*self.predicted.values()) if self.predicted else set()
        joined = {k: v for delays in self.joined.values() for k, v in delays.items()}
        return WindowCoverage(start, end, _segment(every, joined, expired), by_segment)


def _segment(predicted: set[str], joined: Mapping[str, float], expired: bool) -> SegmentCoverage:
    # A joined item whose prediction was not read yet (another topic's partition) was predicted.
    items = predicted | set(joined)
    left = len(items) - len(joined)
    delays = list(joined.values())
    return SegmentCoverage(
        predicted=len(items),
        joined=len(joined),
        waiting=0 if expired else left,
        expired=left if expired else 0,
        delay_p50_s=quantile(delays, 0.5),
        delay_p95_s=quantile(delays, 0.95),
    )


class CoverageBook:
    """Counts predictions and joined truths per event-time window and segment."""

    def __init__(
        self, size_s: float, join_window_s: float, closed_until: datetime | None = None
    ) -> None:
        self.size = timedelta(seconds=size_s)
        self.join_window = timedelta(seconds=join_window_s)
        # Windows that ended by then were judged already: their items are not counted again.
        self.closed_until = closed_until
        self._tallies: dict[datetime, _WindowTally] = {}
        # The predictions' clock: the latest input time of a prediction read.
        self.clock: datetime | None = None
        self._next_offset: dict[int, int] = {}

    def _start(self, at: datetime) -> datetime:
        return EPOCH + ((at - EPOCH) // self.size) * self.size

    def _tally(self, at: datetime) -> _WindowTally | None:
        start = self._start(at)
        if self.closed_until is not None and start + self.size <= self.closed_until:
            return None
        return self._tallies.setdefault(start, _WindowTally())

    def predicted(self, prediction: Prediction, partition: int = 0, offset: int = 0) -> None:
        """Count a prediction read at ``partition``/``offset`` of the predictions topic."""
        self.skip(partition, offset)
        if self.clock is None or prediction.at > self.clock:
            self.clock = prediction.at
        tally = self._tally(prediction.at)
        if tally is None:
            return
        tally.predicted.setdefault(prediction.segment or WHOLE, set()).add(prediction.key)
        tally.first_offset.setdefault(partition, offset)

    def joined(self, scored: Scored) -> None:
        """Count an item whose truth was joined."""
        tally = self._tally(scored.at)
        if tally is None:
            return
        delay = (scored.joined_at - scored.prediction.predicted_at).total_seconds()
        tally.joined.setdefault(scored.segment or WHOLE, {})[scored.key] = max(delay, 0.0)

    def skip(self, partition: int, offset: int) -> None:
        """Account for a record of the predictions topic that no window takes."""
        self._next_offset[partition] = max(self._next_offset.get(partition, 0), offset + 1)

    def close(self, start: datetime) -> WindowCoverage:
        """The coverage of the window starting at ``start``, which the monitor judges now; its
        later predictions and truths are not counted."""
        end = start + self.size
        tally = self._tallies.pop(start, _WindowTally())
        self.closed_until = max(end, self.closed_until) if self.closed_until else end
        return tally.coverage(start, end, self._expired(end))

    def settle(self) -> list[WindowCoverage]:
        """The coverage of every window the predictions' clock has passed by the join window
        and that no judged window will close (no truth of it was joined, or its window closed
        already): they are dropped."""
        closed = self.closed_until
        due = [
            start
            for start, tally in self._tallies.items()
            if self._expired(start + self.size)
            and (not tally.joined or (closed is not None and start + self.size <= closed))
        ]
        return [self.close(start) for start in sorted(due)]

    def _expired(self, end: datetime) -> bool:
        return self.clock is not None and self.clock >= end + self.join_window

    def commit_offsets(self) -> dict[int, int]:
        """Per partition of the predictions topic, the offset up to which every prediction is
        accounted for by a closed window."""
        offsets = dict(self._next_offset)
        for tally in self._tallies.values():
            for partition, first in tally.first_offset.items():
                offsets[partition] = min(offsets[partition], first)
        return offsets

    @property
    def windows(self) -> Iterable[datetime]:
        """The starts of the windows the book holds."""
        return self._tallies.keys()


def coverage_of(
    predictions: Iterable[Prediction],
    scored: Iterable[Scored],
    size_s: float,
    join_window_s: float,
) -> list[WindowCoverage]:
    """The coverage of every window of ``predictions`` and ``scored`` read after the fact (what
    ``tidemark report`` shows), in time order; the clock is the latest prediction read."""
    book = CoverageBook(size_s, join_window_s)
    for prediction in predictions:
        book.predicted(prediction)
    for item in scored:
        book.joined(item)
    return [book.close(start) for start in sorted(book.windows)]


def coverage_line(coverage: WindowCoverage, floor: float) -> str:
    """One window's coverage as ``tidemark report`` prints it."""
    counts = coverage.overall
    delays = (
        f"delay p50 {counts.delay_p50_s:.1f} s p95 {counts.delay_p95_s:.1f} s"
        if counts.delay_p50_s is not None and counts.delay_p95_s is not None
        else "no truth"
    )
    segments = " ".join(
        f"{name} {c.joined}/{c.predicted}" for name, c in sorted(coverage.by_segment.items())
    )
    return (
        f"{coverage.start:%Y-%m-%d %H:%M:%S} predicted {counts.predicted} joined {counts.joined} "
        f"waiting {counts.waiting} expired {counts.expired}, {delays}; {segments}"
        f"{'; ' + note if (note := coverage.note(floor)) else ''}"
    )
