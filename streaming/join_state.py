"""The stream-stream join of predictions and truths by the project's key, as pure state.

A prediction and a truth of the same item join when their event times (the input's time and
the truth's time, as the project names them) lie within the window of each other, whichever
arrives first; the project's :class:`~tidemark.project.contracts.Contracts` join them. The half
that arrives first waits, pending. It expires once the *other* stream, on the same partition
(both topics are keyed by the item's key, so its two halves share a partition number), has
moved past
the half's event time plus the window: by then its partner can no longer arrive in time.
Event time, not the wall clock, decides, so a joiner that restarts after a pause, or catches
up with a backlog, makes the same decisions as one that never stopped.

No record can poison the state: a watermark never moves past the ceiling the caller gives
(the clock plus its allowed skew), a join whose errors cannot be computed leaves the state as
it was and is refused (:class:`JoinError`), a second half of a key on the same side with
other content is refused as a conflict rather than silently dropped, and at most
``max_pending`` halves wait: past it the oldest are shed and counted.

The state records what changed (new pending halves, newly joined items) so that the caller
persists exactly that before committing its offsets. Nothing is ever deleted on the way: the
durable record is append-only, which a MongoDB-compatible store on SQLite writes quickly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from tidemark.project.contracts import ContractError, Prediction, Scored, Truth

Join = Callable[[Prediction, Truth, datetime], Scored]


class Side(StrEnum):
    """Which input a half comes from."""

    PREDICTION = "prediction"
    TRUTH = "truth"


@dataclass(frozen=True)
class Half:
    """One side of an item: its prediction or its truth, and where it came from."""

    record: Prediction | Truth
    partition: int

    @property
    def side(self) -> Side:
        """Prediction or truth."""
        return Side.PREDICTION if isinstance(self.record, Prediction) else Side.TRUTH

    @property
    def key(self) -> str:
        """The join key."""
        return self.record.key

    @property
    def event_time(self) -> datetime:
        """When the item was seen, or when its truth was known."""
        return self.record.at

    @property
    def content(self) -> Hashable:
        """What the half says of its item, apart from when and by whom it was processed: two
        halves of a key with equal content are a replay, with other content a conflict."""
        record = self.record
        fields = record.item.fields if isinstance(record, Prediction) else record.fields
        return tuple(sorted(fields.items()))


class JoinError(ValueError):
    """A half the join cannot take; the message says why (it becomes a dead letter)."""


class JoinResult(StrEnum):
    """What offering a half to the join did."""

    JOINED = "joined"
    PENDING = "pending"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass
class Changes:
    """Halves that started waiting and items that were joined, since the last take."""

    save: dict[str, Half] = field(default_factory=dict)
    joined: dict[str, Half] = field(default_factory=dict)


class JoinState:
    """Pending halves, recently joined items and per-partition event-time watermarks."""

    def __init__(
        self, window_s: float, recent_ids: int, join: Join, max_pending: int | None = None
    ) -> None:
        self.window = timedelta(seconds=window_s)
        self._join = join
        self._recent_limit = recent_ids
        self._max_pending = max_pending
        # Insertion order is arrival order: the first entries are the oldest, shed first.
        self._pending: dict[str, Half] = {}
        # Recently joined keys, with the content of each side when known (not after a restore).
        self._recent: OrderedDict[str, dict[Side, Hashable]] = OrderedDict()
        self._watermarks: dict[tuple[Side, int], datetime] = {}
        self._changes = Changes()
        self.shed: list[Half] = []

    @property
    def pending_count(self) -> int:
        """How many halves wait for their partner."""
        return len(self._pending)

    def pending(self, key: str) -> Half | None:
        """The half of this item that waits, if any."""
        return self._pending.get(key)

    def restore(self, halves: Iterable[Half]) -> None:
        """Adopt pending halves persisted earlier (on start or when partitions are assigned)."""
        for half in halves:
            self._pending.setdefault(half.key, half)
        self._shed_excess()

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the halves of partitions this process no longer owns (they stay persisted)."""
        gone = set(partitions)
        for key in [k for k, h in self._pending.items() if h.partition in gone]:
            del self._pending[key]
        for mark in [m for m in self._watermarks if m[1] in gone]:
            del self._watermarks[mark]

    def already_joined(self, keys: Iterable[str]) -> None:
        """Remember items joined already (found in the store), so they are not joined again."""
        for key in keys:
            self._remember(key, {})
            self._pending.pop(key, None)

    def offer(
        self, half: Half, joined_at: datetime, ceiling: datetime | None = None
    ) -> tuple[JoinResult, Scored | None]:
        """Add one half; returns what happened and, when it completed an item, the joined record.

        ``ceiling``: the latest event time a watermark may reach now (the clock plus its skew).
        Raises :class:`JoinError` for a half with other content than the one of its key
        already seen on its side, or one whose join gives errors that are not finite numbers;
        the state is then as it was (but for the watermark).
        """
        stream = (half.side, half.partition)
        mark = self._watermarks.get(stream)
        at = half.event_time if ceiling is None else min(half.event_time, ceiling)
        if mark is None or at > mark:
            self._watermarks[stream] = at
        key = half.key
        joined = self._recent.get(key)
        if joined is not None:
            seen = joined.get(half.side)
            if seen is not None and seen != half.content:
                raise JoinError(_conflict(half, "joined already"))
            return JoinResult.DUPLICATE, None
        waiting = self._pending.get(key)
        if waiting is None:
            self._pending[key] = half
            self._changes.save[key] = half
            self._shed_excess()
            return JoinResult.PENDING, None
        if waiting.side == half.side:
            if waiting.content != half.content:
                raise JoinError(_conflict(half, "waiting for its partner"))
            return JoinResult.DUPLICATE, None
        # By difference: adding the window to a time at the end of time would overflow.
        if abs(waiting.event_time - half.event_time) > self.window:
            return JoinResult.LATE, None
        prediction, truth = (waiting, half) if waiting.side is Side.PREDICTION else (half, waiting)
        assert isinstance(prediction.record, Prediction)
        assert isinstance(truth.record, Truth)
        try:
            scored = self._join(prediction.record, truth.record, joined_at)
        except ContractError as error:  # an error that is not a finite number
            raise JoinError(f"the pair cannot be judged: {error}") from None
        del self._pending[key]
        self._changes.joined[key] = half
        self._remember(key, {waiting.side: waiting.content, half.side: half.content})
        return JoinResult.JOINED, scored

    def watermark(self, partitions: Iterable[int]) -> datetime | None:
        """The event time that both streams of all these partitions have passed, if known."""
        marks = [self._watermarks.get((side, p)) for side in Side for p in partitions]
        known = [mark for mark in marks if mark is not None]
        return min(known) if known and len(known) == len(marks) else None

    def expire(self) -> list[Half]:
        """Remove and return the pending halves whose partner can no longer arrive in time."""
        expired = []
        for key, half in list(self._pending.items()):
            other = Side.TRUTH if half.side is Side.PREDICTION else Side.PREDICTION
            mark = self._watermarks.get((other, half.partition))
            if mark is not None and mark - half.event_time > self.window:
                del self._pending[key]
                expired.append(half)
        return expired

    def take_changes(self) -> Changes:
        """What changed since the last call, to persist; resets the record of changes."""
        changes, self._changes = self._changes, Changes()
        return changes

    def take_shed(self) -> list[Half]:
        """The halves shed since the last call (the bound on pending halves was reached)."""
        shed, self.shed = self.shed, []
        return shed

    def _shed_excess(self) -> None:
        if self._max_pending is None:
            return
        while len(self._pending) > self._max_pending:
            oldest = next(iter(self._pending))
            self.shed.append(self._pending.pop(oldest))
            self._changes.save.pop(oldest, None)

    def _remember(self, key: str, content: dict[Side, Hashable]) -> None:
        if self._recent_limit == 0:
            return
        self._recent[key] = content
        self._recent.move_to_end(key)
        while len(self._recent) > self._recent_limit:
            self._recent.popitem(last=False)


def _conflict(half: Half, state: str) -> str:
    return (
        f"{half.key} has a {half.side.value} {state} with other content: a key names one "
        "item, so this half conflicts with the first one"
    )
