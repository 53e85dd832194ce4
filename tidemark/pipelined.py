"""A consume→produce loop's commits, taken off its acknowledgement path.

:class:`AckedCommits` ties :class:`tidemark.inflight.InFlight` to a consumer and a batch
producer: the loop sends a batch, hands it over with :meth:`AckedCommits.sent` and polls again
at once; offsets are committed (asynchronously) as soon as the batches before them are
acknowledged and their follow-up work (``durable``) is done. The loop waits for
acknowledgements only when ``stream_max_in_flight`` batches are outstanding, when partitions are
taken from it, and when it stops: in those two cases everything in flight is flushed and its
offsets committed synchronously, so a new owner starts where this one ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from tidemark.inflight import Ack, InFlight
from tidemark.kafka_io import BackgroundFlush
from tidemark.logs import get_logger

log = get_logger("commits")

T = TypeVar("T")

# While batches are in flight the loop polls at most this long, so that their commits follow
# their acknowledgements closely even when no new record comes.
_SETTLE_POLL_MS = 20


def _nothing_durable(payload: Any) -> None:
    return None


class AckedCommits(Generic[T]):
    """Commits of one consumer whose batches' output a batch producer sends."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        max_in_flight: int,
        timeout_ms: int,
        durable: Callable[[T], None] = _nothing_durable,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._flush = BackgroundFlush(producer)
        self._in_flight: InFlight[T] = InFlight(max_in_flight)
        self._timeout_ms = timeout_ms
        self._durable = durable

    def poll_timeout_ms(self, idle_ms: int) -> int:
        """How long the next poll may wait: briefly while acknowledgements are due."""
        return min(idle_ms, _SETTLE_POLL_MS) if len(self._in_flight) else idle_ms

    def make_room(self) -> None:
        """Before sending a batch: wait for acknowledgements if the bound is reached."""
        if self._in_flight.full:
            self._producer.flush(timeout=self._timeout_ms / 1000)
            self.commit_settled()

    def sent(
        self,
        offsets: dict[TopicPartition, OffsetAndMetadata],
        acks: Sequence[Ack],
        payload: T,
    ) -> None:
        """A batch's output was just sent: have it leave now and commit ``offsets`` once acked."""
        self._flush.request()
        self._in_flight.add(offsets, acks, payload)

    def commit_settled(self) -> None:
        """Finish the acknowledged batches (``durable``) and commit their offsets, not waiting.

        Raises the first failed send, and whatever ``durable`` raises: the loop must then
        start again from the last committed offsets.
        """
        offsets = self._finish_settled()
        if offsets:
            # A commit lost to a crash only replays records whose output is already durable,
            # which the joiner and the store absorb.
            self._consumer.commit_async(offsets, callback=_log_failed_commit)

    def drain(self) -> None:
        """Wait for every batch in flight, finish it and commit, waiting for the commit."""
        if len(self._in_flight):
            self._producer.flush(timeout=self._timeout_ms / 1000)
        offsets = self._finish_settled()
        owned = {tp: o for tp, o in offsets.items() if tp in self._consumer.assignment()}
        if owned:
            self._consumer.commit(owned, timeout_ms=self._timeout_ms)

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions go to another consumer: commit what this one did with them first.

        When that fails (a broker or the coordinator is gone), their offsets are never
        committed by this consumer: the new owner consumes them again from the last commit.
        The loop goes on rather than start afresh: a fresh consumer that joined while a broker
        was down was seen to get no partitions at all (the cluster integration test). A failed
        send still stops the loop at its next :meth:`commit_settled`.

        kafka-python 3 calls a rebalance listener on its network thread, where a blocking
        commit raises ``RuntimeError`` ("Cannot block on net.run() from the IO thread"): the
        revoked partitions are then left to the new owner the same way.
        """
        gone = list(partitions)
        try:
            self.drain()
        except (KafkaError, RuntimeError) as error:
            self._in_flight.forget(gone)
            log.warning(
                "commit before a rebalance failed; those records will be handled again",
                error=str(error),
            )

    def close(self) -> None:
        """On the way out: drain if the broker lets us, then stop the flushing thread.

        Bounded: with the broker gone, stopping must not hang; the records are only replayed.
        """
        try:
            self.drain()
        except KafkaError as error:
            log.warning(
                "final offset commit failed; those records will be handled again", error=str(error)
            )
        finally:
            self._flush.close(self._timeout_ms / 1000)

    def _finish_settled(self) -> dict[TopicPartition, OffsetAndMetadata]:
        settled = self._in_flight.settled()
        for payload in settled.payloads:
            self._durable(payload)
        return settled.offsets


class CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """A rebalance listener that drains :class:`AckedCommits` before partitions leave.

    ``then_revoked`` and ``then_assigned`` let the loop forget or restore its own state.
    """

    def __init__(
        self,
        commits: AckedCommits[Any],
        then_revoked: Callable[[Sequence[TopicPartition]], None] = lambda _: None,
        then_assigned: Callable[[Sequence[TopicPartition]], None] = lambda _: None,
    ) -> None:
        self._commits = commits
        self._then_revoked = then_revoked
        self._then_assigned = then_assigned

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        try:
            self._commits.revoked(revoked)
        finally:
            self._then_revoked(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self._then_assigned(assigned)


def _log_failed_commit(offsets: dict[TopicPartition, OffsetAndMetadata], result: Any) -> None:
    if isinstance(result, Exception):
        log.warning("offset commit failed; those records will be handled again", error=str(result))
