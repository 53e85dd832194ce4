"""Tumbling event-time windows over a project's scored stream, closed by a watermark.

Event time is the input's time (the project's ``times.input``, :attr:`Scored.at`), the moment
the item was seen, not ``joined_at``:

- a window then holds the items seen in that minute, so a replay, a backlog after a restart or
  a slow joiner yields exactly the same windows and the same verdicts;
- the retrain flow reads its training data from the store by the same time, so the bounds of a
  window that fired are directly the time range of the data that showed the problem.

Scored records reach the monitor after the label delay and from several partitions, so they are
a little out of order. The watermark is the largest event time seen minus the allowed
lateness; a window ``[start, end)`` closes once the watermark reaches ``end``. A record whose
window has already closed is late: it is counted, not added. Windows are aligned on the Unix
epoch. A window in which no record arrived is not emitted (there is nothing to judge), so a
pause of the line produces no empty windows.

For committing Kafka offsets, the windows remember the first offset of each partition that
still sits in an open window: committing only up to there means a restart re-reads exactly
the records that no closed window has accounted for yet. The end of the last closed window and
the offsets read so far go with each commit as its metadata (:meth:`TumblingWindows.marks`), so
the windows of a restarted monitor start from there (:meth:`Resume.of_metadata`) and judge no
closed window twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import orjson

from tidemark.judging.scored import scored_metrics, segment_of
from tidemark.modelling.metrics import Metrics
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A finished window: its records and their error, overall, per segment, per model version
    (a project without a segment has one, ``WHOLE``)."""

    start: datetime
    end: datetime
    records: tuple[Scored, ...]
    overall: Metrics
    by_segment: dict[str, Metrics]
    by_version: dict[str, Metrics]
    judged_by: ErrorKind

    @classmethod
    def of(
        cls, start: datetime, end: datetime, records: Sequence[Scored], judged_by: ErrorKind
    ) -> ClosedWindow:
        """Compute every stat of a window from its records (at least one)."""
        segments: defaultdict[str, list[Scored]] = defaultdict(list)
        versions: defaultdict[str, list[Scored]] = defaultdict(list)
        for record in records:
            segments[segment_of(record)].append(record)
            versions[record.prediction.model_version].append(record)
        return cls(
            start=start,
            end=end,
            records=tuple(records),
            overall=scored_metrics(records, judged_by),
            by_segment={n: scored_metrics(rs, judged_by) for n, rs in sorted(segments.items())},
            by_version={n: scored_metrics(rs, judged_by) for n, rs in sorted(versions.items())},
            judged_by=judged_by,
        )


class Admission(StrEnum):
    """What happened to a record offered to the windows."""

    ADDED = "added"
    # Its window had closed already: the watermark passed it by more than the allowed lateness.
    LATE = "late"
    # Re-read after a restart from a window that was closed (and judged) before the restart.
    REPLAYED = "replayed"


@dataclass(slots=True)
class _OpenWindow:
    records: list[Scored] = field(default_factory=list)
    first_offset: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a previous run of the monitor stopped, as stored with its committed offsets."""

    closed_until: datetime
    seen_until: dict[int, int]

    @classmethod
    def of_metadata(cls, metadata: Mapping[int, str]) -> Resume | None:
        """Where the previous run stopped, from the metadata committed with each partition's
        offset (:meth:`TumblingWindows.marks`); None when no partition says (a new group).

        Metadata that is not the windows' own is skipped: it says nothing about them.
        """
        closed: list[datetime] = []
        seen: dict[int, int] = {}
        for partition, text in metadata.items():
            if not text:
                continue
            try:
                meta = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if meta.get("closed_until"):
                closed.append(datetime.fromisoformat(meta["closed_until"]))
            seen[partition] = int(meta.get("seen_until", 0))
        if not closed:
            return None
        return cls(closed_until=max(closed), seen_until=seen)


class TumblingWindows:
    """Assigns scored records to tumbling event-time windows and closes them by watermark; the
    windows' errors are those the project judges (``judged_by``)."""

    def __init__(
        self,
        size_s: float,
        allowed_lateness_s: float,
        resume: Resume | None = None,
        *,
        judged_by: ErrorKind,
    ) -> None:
        if size_s <= 0:
            raise ValueError(f"window size must be positive, got {size_s}")
        if allowed_lateness_s < 0:
            raise ValueError(f"allowed lateness must be >= 0, got {allowed_lateness_s}")
        self.size = timedelta(seconds=size_s)
        self.lateness = timedelta(seconds=allowed_lateness_s)
        self.judged_by = judged_by
        self._open: dict[datetime, _OpenWindow] = {}
        self._max_event: datetime | None = None
        self.closed_until: datetime | None = resume.closed_until if resume else None
        self._seen_before = dict(resume.seen_until) if resume else {}
        self._next_offset: dict[int, int] = {}

    def window_start(self, event_time: datetime) -> datetime:
        """The start of the window that holds ``event_time``."""
        return EPOCH + ((event_time - EPOCH) // self.size) * self.size

    @property
    def watermark(self) -> datetime | None:
        """Event time up to which the windows consider the stream complete."""
        if self._max_event is None:
            return self.closed_until
        mark = self._max_event - self.lateness
        return max(mark, self.closed_until) if self.closed_until else mark

    @property
    def open_windows(self) -> int:
        """How many windows are collecting records."""
        return len(self._open)

    def add(self, record: Scored, partition: int = 0, offset: int = 0) -> Admission:
        """Offer one record read at ``partition``/``offset``; say whether a window took it."""
        self.skip(partition, offset)
        start = self.window_start(record.at)
        if self.closed_until is not None and start + self.size <= self.closed_until:
            replayed = offset < self._seen_before.get(partition, 0)
            return Admission.REPLAYED if replayed else Admission.LATE
        window = self._open.setdefault(start, _OpenWindow())
        window.records.append(record)
        window.first_offset.setdefault(partition, offset)
        if self._max_event is None or record.at > self._max_event:
            self._max_event = record.at
        return Admission.ADDED

    def skip(self, partition: int, offset: int) -> None:
        """Account for a record that no window takes (it was invalid and dead-lettered)."""
        self._next_offset[partition] = max(self._next_offset.get(partition, 0), offset + 1)

    def close_due(self) -> list[ClosedWindow]:
        """Close, in time order, every open window that the watermark has passed."""
        mark = self.watermark
        if mark is None:
            return []
        return self._close([s for s in self._open if s + self.size <= mark])

    def flush(self) -> list[ClosedWindow]:
        """Close every open window now, e.g. when the stream has been idle for long."""
        return self._close(list(self._open))

    def _close(self, starts: Iterable[datetime]) -> list[ClosedWindow]:
        closed = []
        for start in sorted(starts):
            window = self._open.pop(start)
            end = start + self.size
            closed.append(ClosedWindow.of(start, end, window.records, self.judged_by))
            self.closed_until = max(end, self.closed_until) if self.closed_until else end
        return closed

    def commit_offsets(self) -> dict[int, int]:
        """Per partition, the offset up to which every record is accounted for by a closed window.

        That is the first offset still held by an open window, or the next offset to read when
        no open window holds a record of that partition.
        """
        offsets = dict(self._next_offset)
        for window in self._open.values():
            for partition, first in window.first_offset.items():
                offsets[partition] = min(offsets[partition], first)
        return offsets

    def marks(self) -> dict[int, tuple[int, str]]:
        """Per partition, the offset to commit (:meth:`commit_offsets`) and the metadata that
        a restarted monitor resumes from: the end of the last closed window, and the offsets
        read so far (:meth:`seen_until`)."""
        closed_until = self.closed_until.isoformat() if self.closed_until else None
        seen = self.seen_until()
        return {
            partition: (
                offset,
                orjson.dumps(
                    {"closed_until": closed_until, "seen_until": seen[partition]}
                ).decode(),
            )
            for partition, offset in self.commit_offsets().items()
        }

    def seen_until(self) -> dict[int, int]:
        """Per partition, the next offset after the last record offered (for ``Resume``)."""
        merged = dict(self._seen_before)
        for partition, offset in self._next_offset.items():
            merged[partition] = max(merged.get(partition, 0), offset)
        return merged
