"""Which input offsets a consume→produce loop may commit while its later batches are in flight.

A loop that waited for each batch's acknowledgements before polling again spent about 9 ms a
batch idle (benchmarks/streaming). Instead it sends a batch, hands it to :class:`InFlight`
with the offsets that follow it and the futures of its sends, and polls the next one. A batch's
offsets come out of :meth:`InFlight.settled` only once its own sends and those of every batch
sent before it are acknowledged, in the order the batches were sent, so a commit never covers
a record whose output is not durable: the guarantee stays at-least-once.

Pure bookkeeping: nothing here talks to Kafka. The futures are kafka-python's (``is_done`` and
``exception``), completed by the producer's sender thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from kafka.structs import OffsetAndMetadata, TopicPartition

T = TypeVar("T")

Offsets = dict[TopicPartition, OffsetAndMetadata]


class Ack(Protocol):
    """A send's future, as kafka-python's ``FutureRecordMetadata`` exposes it."""

    is_done: bool
    exception: BaseException | None


@dataclass
class _Batch(Generic[T]):
    offsets: Offsets
    acks: Sequence[Ack]
    payload: T
    # Acks before this index are known to be done, so a check never rescans them.
    checked: int = 0

    def done(self) -> bool:
        while self.checked < len(self.acks):
            ack = self.acks[self.checked]
            if not ack.is_done:
                return False
            if ack.exception is not None:
                raise ack.exception
            self.checked += 1
        return True


@dataclass(frozen=True)
class Settled(Generic[T]):
    """Batches whose sends are all acknowledged, oldest first, and the offsets they free."""

    payloads: list[T] = field(default_factory=list)
    offsets: Offsets = field(default_factory=dict)


class InFlight(Generic[T]):
    """Batches sent and not yet acknowledged, in send order, at most ``limit`` of them.

    ``payload`` is whatever the loop must do once a batch is acknowledged and before its
    offsets are committed (the joiner's MongoDB writes); the scorer has none.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("at least one batch must be allowed in flight")
        self.limit = limit
        self._batches: deque[_Batch[T]] = deque()

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def full(self) -> bool:
        """Whether the loop must wait for acknowledgements before sending another batch."""
        return len(self._batches) >= self.limit

    def add(self, offsets: Mapping[TopicPartition, OffsetAndMetadata], acks: Sequence[Ack],
            payload: T) -> None:  # fmt: skip
        """A batch just sent: the offsets that follow its records and the futures of its sends."""
        if self.full:
            raise OverflowError(f"already {self.limit} batches in flight")
        self._batches.append(_Batch(dict(offsets), acks, payload))

    def settled(self) -> Settled[T]:
        """Take the oldest batches whose sends, and all earlier ones, are acknowledged.

        Raises the error of a failed send of the oldest unsettled batch: its records must be
        consumed again, so nothing from it on may be committed.
        """
        result: Settled[T] = Settled()
        while self._batches and self._batches[0].done():
            batch = self._batches.popleft()
            result.payloads.append(batch.payload)
            result.offsets.update(batch.offsets)
        return result

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Never commit offsets of these partitions (handed to another consumer).

        Their sends stay tracked: a failure still stops the loop before it commits anything
        later. The new owner consumes from the last committed offset, so at worst it repeats
        records whose output is in flight here.
        """
        gone = set(partitions)
        for batch in self._batches:
            batch.offsets = {tp: o for tp, o in batch.offsets.items() if tp not in gone}
