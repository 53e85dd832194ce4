"""The "truth feed silent" incident: predictions flow and no truth is joined, overall or for a
segment.

Time here is event time on the predictions' clock (the latest input time of a prediction read),
as for the windows: a replay or an accelerated line gives the same incidents. A segment (or the
whole stream, :data:`monitoring.coverage.ALL`) is silent when at least ``min_items`` of its
predictions are older than ``silence_s`` on that clock and were made after the last item of it
whose truth was joined: they should have had their truth by now. Predictions that simply stop
(the line no longer sends that segment) open nothing, since the clock moves on with the other
segments' items only while the truth of the last ones is joined; one lost truth now and then
(an item that fell off the scale) is fewer than ``min_items``.

The incident closes as soon as a truth of that segment newer than the overdue predictions is
joined. It starts no retrain: a retrain on the items that still have a truth would learn from a
biased sample, and the error incidents need the truth anyway.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from monitoring.coverage import ALL

# Prediction times kept per segment while it waits for a truth: enough to count min_items.
_KEPT = 10_000


class SilenceState(StrEnum):
    """What became of a segment's silence incident."""

    OPENED = "opened"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SilenceChange:
    """A silence incident that opened or closed at the predictions' clock ``at``."""

    segment: str
    change: SilenceState
    at: datetime
    # The input time of the last item of the segment whose truth was joined (None: none yet).
    last_truth: datetime | None
    # Predictions of the segment overdue for their truth when it changed.
    overdue: int


class TruthSilence:
    """Watches the truth feed per segment and overall, and says when an incident opens or
    closes."""

    def __init__(self, silence_s: float, min_items: int) -> None:
        if silence_s <= 0 or min_items < 1:
            raise ValueError("the silence needs a positive time and at least one item")
        self.silence = timedelta(seconds=silence_s)
        self.min_items = min_items
        self.clock: datetime | None = None
        self._last_truth: dict[str, datetime] = {}
        self._waiting: dict[str, deque[datetime]] = {}
        self.silent: set[str] = set()

    def predicted(self, segment: str, at: datetime) -> None:
        """A prediction of ``segment`` for an item seen ``at``."""
        if self.clock is None or at > self.clock:
            self.clock = at
        for name in (segment, ALL):
            self._waiting.setdefault(name, deque(maxlen=_KEPT)).append(at)

    def joined(self, segment: str, at: datetime) -> None:
        """The truth of an item of ``segment`` seen ``at`` was joined."""
        for name in (segment, ALL):
            last = self._last_truth.get(name)
            if last is None or at > last:
                self._last_truth[name] = at

    def check(self) -> list[SilenceChange]:
        """The incidents that opened or closed since the last check."""
        if self.clock is None:
            return []
        due = self.clock - self.silence
        changes = []
        for segment, waiting in self._waiting.items():
            last = self._last_truth.get(segment)
            if last is not None:
                kept = [t for t in waiting if t > last]
                if len(kept) < len(waiting):
                    waiting.clear()
                    waiting.extend(kept)
            overdue = sum(1 for t in waiting if t <= due)
            silent = overdue >= self.min_items
            if silent == (segment in self.silent):
                continue
            change = SilenceState.OPENED if silent else SilenceState.CLOSED
            (self.silent.add if silent else self.silent.discard)(segment)
            changes.append(SilenceChange(segment, change, self.clock, last, overdue))
        return changes
