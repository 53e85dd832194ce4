"""When a loop commits its input offsets: the two policies a service chooses between.

:class:`AckedCommits` (``Commits.AFTER_ACKS``, the scorer and the joiner) ties
:class:`tidemark.stream.inflight.InFlight` to a consumer and a batch producer: the loop sends a
batch, hands it over with :meth:`AckedCommits.sent` and polls again at once; offsets are
committed (asynchronously, one commit request at a time) as soon as the batches before them are
acknowledged and their follow-up work (``durable``) is done. The loop waits for
acknowledgements only when ``stream_max_in_flight`` batches are outstanding, when partitions are
taken from it, and when it stops: then what is acknowledged is committed before the partitions
go, so a new owner starts where this one ended.

:class:`MarkedCommits` (``Commits.AT_MARK``, the monitor) commits after every round, waiting
for the commit, the offsets that the service marks, with metadata that the service reads back
when partitions are assigned: the monitor commits up to the first record still in an open
window, with the end of the last closed window, so a restart re-reads exactly what no closed
window accounted for and judges no window twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.future import Future
from kafka.structs import OffsetAndMetadata, TopicPartition

from tidemark.kafka_io import BackgroundFlush
from tidemark.logs import get_logger
from tidemark.stream.health import Backlog
from tidemark.stream.inflight import Ack, InFlight, Offsets

log = get_logger("commits")

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

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


class CommitPolicy(Protocol[T_contra]):
    """What the loop asks of a commit policy, round after round."""

    def listener(
        self, then_revoked: PartitionsChanged, then_assigned: PartitionsChanged
    ) -> NoteRebalances:
        """The rebalance listener the consumer subscribes with."""
        ...

    def poll_timeout_ms(self, idle_ms: int) -> int:
        """How long the next poll may wait for records."""
        ...

    def make_room(self) -> None:
        """Before a batch is sent: wait if the policy must."""
        ...

    def sent(self, offsets: Offsets, acks: Sequence[Ack], payload: T_contra | None) -> None:
        """A batch was sent: the offsets after its records, its sends' futures, its payload
        (None: nothing to make durable)."""
        ...

    def commit_settled(self) -> None:
        """After every round: commit what may be committed now."""
        ...

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """After the poll in which partitions were assigned, before their first batch."""
        ...

    def close(self) -> None:
        """On the way out, before the clients close."""
        ...


class AckedCommits(Generic[T]):
    """Commits of one consumer whose batches' output a batch producer sends."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        max_in_flight: int,
        timeout_ms: int,
        durable: Callable[[T], None] = _nothing_durable,
        backlog: Backlog | None = None,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._flush = BackgroundFlush(producer)
        self._in_flight: InFlight[T | None] = InFlight(max_in_flight)
        self._backlog = backlog if backlog is not None else Backlog()
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
        payload: T | None,
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
            else:
                self._backlog.committed(offsets)
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
            self._backlog.committed(owned)

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
        self._backlog.forget(lost)
        self._uncommitted = {tp: o for tp, o in self._uncommitted.items() if tp not in lost}

    def listener(
        self, then_revoked: PartitionsChanged, then_assigned: PartitionsChanged
    ) -> NoteRebalances:
        """The rebalance listener: what is acknowledged is committed before partitions leave."""
        return CommitOnRevoke(self, then_revoked, then_assigned)

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions assigned: each is consumed from its committed offset; nothing to give."""

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
            if payload is not None:
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


PartitionsChanged = Callable[[Sequence[TopicPartition]], None]


def _ignore(_: object) -> None:
    return None


class NoteRebalances(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """A rebalance listener that tells the loop which partitions it gained and lost.

    kafka-python 3 calls it on its network thread, inside a poll: the loop hands the changes to
    its service after that poll, on its own thread, where the service may block (read MongoDB,
    ask for committed offsets) without stopping the heartbeats.
    """

    def __init__(
        self, then_revoked: PartitionsChanged = _ignore, then_assigned: PartitionsChanged = _ignore
    ) -> None:
        self._then_revoked = then_revoked
        self._then_assigned = then_assigned

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """The partitions go to another consumer."""
        self._then_revoked(revoked)

    async def on_partitions_lost(self, lost: Sequence[TopicPartition]) -> None:
        """The group went on without this consumer."""
        self._then_revoked(lost)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        """The partitions are this consumer's now."""
        self._then_assigned(assigned)


class CommitOnRevoke(NoteRebalances):
    """A rebalance listener that commits :class:`AckedCommits`' work before partitions leave.

    kafka-python 3 calls it on its network thread, where a blocking commit raises
    ``RuntimeError`` ("Cannot block on net.run() from the IO thread"); as an async listener it
    awaits the commit request instead, and the rebalance goes on once the commit is stored.
    A failed commit only means the new owner consumes those records again.
    """

    def __init__(
        self,
        commits: AckedCommits[Any],
        then_revoked: PartitionsChanged = _ignore,
        then_assigned: PartitionsChanged = _ignore,
    ) -> None:
        super().__init__(then_revoked, then_assigned)
        self._commits = commits

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
            await super().on_partitions_revoked(revoked)

    async def on_partitions_lost(self, lost: Sequence[TopicPartition]) -> None:
        """The group went on without this consumer: nothing of these may be committed."""
        try:
            self._commits.forget(lost)
        finally:
            await super().on_partitions_lost(lost)


def _log_failed_commit(offsets: Offsets, result: Any) -> None:
    if isinstance(result, Exception):
        log.warning("offset commit failed; those records will be handled again", error=str(result))


class MarkedCommits(Generic[T]):
    """Commits of one consumer at the offsets its service marks, after every round.

    The round's output (dead letters, for the monitor) is acknowledged first and its ``durable``
    work done; then ``mark`` says what to commit, and a mark that changed is committed, waiting
    for the commit: a failed send or commit raises, and the loop starts again from the last
    commit. When partitions are assigned, ``resume`` receives what was committed for them.
    """

    def __init__(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        timeout_ms: int,
        mark: Callable[[], Offsets],
        resume: Callable[[Offsets], None],
        durable: Callable[[T], None] = _nothing_durable,
        backlog: Backlog | None = None,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._timeout_ms = timeout_ms
        self._mark = mark
        self._resume = resume
        self._durable = durable
        self._backlog = backlog if backlog is not None else Backlog()
        self._sent: list[tuple[Sequence[Ack], T | None]] = []
        self._committed: Offsets = {}

    def listener(
        self, then_revoked: PartitionsChanged, then_assigned: PartitionsChanged
    ) -> NoteRebalances:
        """The rebalance listener: nothing to commit there, every round committed its mark."""
        return NoteRebalances(then_revoked, then_assigned)

    def poll_timeout_ms(self, idle_ms: int) -> int:
        """How long the next poll may wait: nothing is in flight between rounds."""
        return idle_ms

    def make_room(self) -> None:
        """Before sending a batch: nothing to wait for, every round's output was acknowledged."""

    def sent(self, offsets: Offsets, acks: Sequence[Ack], payload: T | None) -> None:
        """A batch's output was just sent; its offsets are the mark's to say."""
        self._sent.append((acks, payload))

    def commit_settled(self) -> None:
        """Wait for the round's acknowledgements, finish its work and commit the mark if it moved.

        Raises the first failed send, or ``KafkaTimeoutError`` when acknowledgements or the
        commit do not come within the client timeout.
        """
        if self._sent:
            self._producer.flush(timeout=self._timeout_ms / 1000)
            for acks, payload in self._sent:
                for ack in acks:
                    if not ack.is_done:
                        raise KafkaTimeoutError("an acknowledgement did not come in time")
                    if ack.exception is not None:
                        raise ack.exception
                if payload is not None:
                    self._durable(payload)
            self._sent.clear()
        owned = self._consumer.assignment()
        mark = {tp: o for tp, o in self._mark().items() if tp in owned}
        if mark and mark != self._committed:
            self._consumer.commit(mark, timeout_ms=self._timeout_ms)
            self._committed = mark
        # The round's input is in the service's state, which its mark makes good after a
        # restart: none of it waits for a commit in the sense of health.
        self._backlog.clear()

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Give the service what was committed for every partition it owns now (it may resume
        from there: the consumer reads each one again from its committed offset)."""
        committed = {}
        for tp in self._consumer.assignment():
            offset = self._consumer.committed(tp, metadata=True)
            if offset is not None:
                committed[tp] = offset
        self._committed = {}
        self._resume(committed)

    def close(self) -> None:
        """On the way out: nothing is left, every round committed its own mark."""
