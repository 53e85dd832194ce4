"""The consume→produce loop of the scorer and the joiner, at least once.

A :class:`PipelinedLoop` is one member of a consumer group and one batch producer. Each polled
batch goes to the service, which sends its output and returns the sends with what to make
durable once they are acknowledged; the loop polls again at once. A batch's offsets are
committed only after its own sends and those of every earlier batch are acknowledged and their
durable work is done (:class:`tidemark.stream.pipelined.AckedCommits`); partitions taken away
commit what is acknowledged first (:class:`tidemark.stream.pipelined.CommitOnRevoke`), and so
does the way out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from kafka import KafkaProducer
from kafka.structs import TopicPartition

from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.stream.inflight import Ack
from tidemark.stream.pipelined import AckedCommits, CommitOnRevoke
from tidemark.stream.records import next_offsets

T = TypeVar("T")

Batch = dict[TopicPartition, list[Any]]
# A polled batch in, its sends and what to make durable once they are acknowledged out.
Process = Callable[[Batch, KafkaProducer], tuple[Sequence[Ack], T]]
PartitionsChanged = Callable[[Sequence[TopicPartition]], None]


def _ignore(_: object) -> None:
    return None


def _idle() -> None:
    return None


class PipelinedLoop(Generic[T]):
    """A group consumer on ``topics`` and the batch producer its batches' output leaves by.

    Made when the service starts (the consumer joins the group on its first poll) and run
    once: :meth:`run` closes both clients on the way out.
    """

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        topics: Sequence[str],
        *,
        durable: Callable[[T], None] = _ignore,
        then_revoked: PartitionsChanged = _ignore,
        then_assigned: PartitionsChanged = _ignore,
    ) -> None:
        self._kafka = settings.kafka
        self._idle_poll_ms = settings.stream.poll_timeout_ms
        self._consumer = kafka_io.consumer(
            settings.kafka, group_id, max_poll_records=settings.stream.max_batch
        )
        self._producer = kafka_io.batch_producer(settings.kafka)
        self._commits: AckedCommits[T] = AckedCommits(
            self._consumer,
            self._producer,
            settings.stream.max_in_flight,
            settings.kafka.client_timeout_ms,
            durable=durable,
        )
        self._consumer.subscribe(
            list(topics),
            listener=CommitOnRevoke(
                self._commits, then_revoked=then_revoked, then_assigned=then_assigned
            ),
        )

    def run(
        self,
        stop: threading.Event,
        process: Process[T],
        *,
        after_poll: Callable[[], None] = _idle,
        after_commit: Callable[[], None] = _idle,
    ) -> None:
        """Consume until ``stop`` is set; the batch in hand is sent and what is acknowledged
        committed before the clients close.

        ``after_poll`` runs after every poll, before its batch is processed (a rebalance
        happens inside a poll); ``after_commit`` after every round's commit, batch or none.
        """
        commits = self._commits
        try:
            while not stop.is_set():
                batch = self._consumer.poll(timeout_ms=commits.poll_timeout_ms(self._idle_poll_ms))
                after_poll()
                if batch:
                    commits.make_room()
                    sends, payload = process(batch, self._producer)
                    commits.sent(next_offsets(batch), sends, payload)
                commits.commit_settled()
                after_commit()
        finally:
            try:
                commits.close()
            finally:
                self._consumer.close(autocommit=False)
                self._producer.close(timeout=self._kafka.client_timeout_ms / 1000)
