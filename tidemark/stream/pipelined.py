"""A consume→produce loop's commits, taken off its acknowledgement path.

:class:`AckedCommits` ties :class:`tidemark.stream.inflight.InFlight` to a consumer and a batch
producer: the loop sends a batch, hands it over with :meth:`AckedCommits.sent` and polls again
at once; offsets are committed (asynchronously, one commit request at a time) as soon as the batches
before them are acknowledged and their follow-up work (``durable``) is done. The loop waits for
acknowledgements only when ``stream_max_in_flight`` batches are outstanding, when partitions are
taken from it, and when it stops: then what is acknowledged is committed before the partitions
go, so a new owner starts where this one ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.future import Future
from kafka.structs import OffsetAndMetadata, TopicPartition

from tidemark.kafka_io import BackgroundFlush
from tidemark.logs import get_logger
from tidemark.stream.inflight import Ack, InFlight, Offsets

log = get_logger("commits")

T = TypeVar("T")

# While batches are in flight the loop polls at most this long, so that their commits follow
# their acknowledgements closely even when no new record comes.
_SETTLE_POLL_MS = 20

# How long a rebalance waits for the acknowledgements of batches in flight. kafka-python runs
# the rebalance listener on its network thread, so no heartbeat leaves meanwhile: this stays
# well under a session timeout (at least 6 s). Batches not acknowledged by then are left to the
# partitions' new owner, which consumes them again.
_REVOKE_WAIT_S = 1.0


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
        # Settled offsets not committed yet, and the one commit request under way: a loop that
        # sent one per batch filled the coordinator connection ("Node paused: max_in_flight")
        # and most of its commits failed.
        self._uncommitted: Offsets = {}
        self._committing: tuple[Future, Offsets] | None = None

    def poll_timeout_ms(self, idle_ms: int) -> int:
        """How long the next poll may wait: briefly while acknowledgements are due."""
        return min(idle_ms, _SETTLE_POLL_MS) if len(self._in_flight) else idle_ms

    def make_room(self) -> None:
        """Before sending a batch: wait for acknowledgements if the bound is reached.

        As long as it takes: while a broker of a cluster is down, its partitions' records wait
        for a new leader (about ten seconds), and a loop that gave up and started afresh then
        was seen to get no partitions at all. The producer's delivery timeout bounds the wait:
        a send that cannot be delivered fails, and :meth:`commit_settled` raises it.
        """
        while self._in_flight.full:
            try:
                self._producer.flush(timeout=self._timeout_ms / 1000)
            except KafkaTimeoutError:
                log.warning(
                    "acknowledgements are late; still waiting", in_flight=len(self._in_flight)
                )
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

        At most one commit request is under way: offsets settled meanwhile wait for the next
        call, and those of a failed request are tried again unless newer ones replace them.
        Raises the first failed send, and whatever ``durable`` raises: the loop must then
        start again from the last committed offsets.
        """
        self._uncommitted.update(self._finish_settled())
        if self._committing is not None:
            request, offsets = self._committing
            if not request.is_done:
                return
            self._committing = None
            if request.failed():
                owned = self._consumer.assignment()
                retry = {tp: o for tp, o in offsets.items() if tp in owned}
                self._uncommitted = retry | self._uncommitted
        if self._uncommitted:
            offsets, self._uncommitted = self._uncommitted, {}
            # A commit lost to a crash only replays records whose output is already durable,
            # which the joiner and the store absorb.
            request = self._consumer.commit_async(offsets, callback=_log_failed_commit)
            self._committing = (request, offsets)

    def drain(self) -> None:
        """Wait for every batch in flight, finish it and commit, waiting for the commit.

        Not on kafka-python's network thread (a blocking commit is refused there): the
        rebalance listener uses :meth:`settle_revoked` instead.
        """
        if len(self._in_flight):
            self._producer.flush(timeout=self._timeout_ms / 1000)
        owned = self._take_owned(self._finish_settled())
        if owned:
            self._consumer.commit(owned, timeout_ms=self._timeout_ms)

    def settle_revoked(self, partitions: Iterable[TopicPartition]) -> Offsets:
        """Partitions go to another consumer: what may be committed for this one's work first.

        Waits briefly (``_REVOKE_WAIT_S``) for the batches in flight, finishes the acknowledged
        ones and returns every settled offset still to commit. The revoked partitions' offsets
        of batches still unacknowledged are never committed by this consumer: their new owner
        consumes those records again from the last commit. A failed send still stops the loop
        at its next :meth:`commit_settled`.
        """
        gone = list(partitions)
        if len(self._in_flight):
            try:
                self._producer.flush(timeout=_REVOKE_WAIT_S)
            except KafkaError as error:
                log.warning("acknowledgements late at a rebalance", error=str(error))
        try:
            return self._take_owned(self._finish_settled())
        finally:
            self.forget(gone)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions lost without a chance to commit (the group moved on without us)."""
        lost = set(partitions)
        self._in_flight.forget(lost)
        self._uncommitted = {tp: o for tp, o in self._uncommitted.items() if tp not in lost}

    @property
    def consumer(self) -> KafkaConsumer:
        """The consumer whose offsets these are."""
        return self._consumer

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

    def _finish_settled(self) -> Offsets:
        settled = self._in_flight.settled()
        for payload in settled.payloads:
            self._durable(payload)
        return settled.offsets

    def _take_owned(self, settled: Offsets) -> Offsets:
        """Every offset waiting for a commit, of the partitions the consumer still owns.

        Those of the request under way too, unless newer ones replace them: whether it will
        succeed is unknown, and committing them again is harmless.
        """
        pending = self._committing[1] if self._committing is not None else {}
        waiting = pending | self._uncommitted | settled
        self._uncommitted, self._committing = {}, None
        owned = self._consumer.assignment()
        return {tp: o for tp, o in waiting.items() if tp in owned}


class CommitOnRevoke(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """A rebalance listener that commits :class:`AckedCommits`' work before partitions leave.

    kafka-python 3 calls it on its network thread, where a blocking commit raises
    ``RuntimeError`` ("Cannot block on net.run() from the IO thread"); as an async listener it
    awaits the commit request instead, and the rebalance goes on once the commit is stored.
    A failed commit only means the new owner consumes those records again.
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

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """Commit what is acknowledged, then let the loop forget the revoked partitions."""
        try:
            offsets = self._commits.settle_revoked(revoked)
            if offsets:
                await self._commits.consumer.commit_async(offsets)
        except KafkaError as error:
            log.warning(
                "commit before a rebalance failed; those records will be handled again",
                error=str(error),
            )
        finally:
            self._then_revoked(revoked)

    async def on_partitions_lost(self, lost: Sequence[TopicPartition]) -> None:
        """The group went on without this consumer: nothing of these may be committed."""
        try:
            self._commits.forget(lost)
        finally:
            self._then_revoked(lost)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        """Let the loop restore its state of the partitions it now owns."""
        self._then_assigned(assigned)


def _log_failed_commit(offsets: Offsets, result: Any) -> None:
    if isinstance(result, Exception):
        log.warning("offset commit failed; those records will be handled again", error=str(result))
