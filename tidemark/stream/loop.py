"""The one consume loop of every stream service, at least once.

:func:`run_loop` makes a group consumer on the service's topics and the producer its output
leaves by, then goes round: poll; hand the partitions gained or lost in that poll to the service
(:class:`tidemark.stream.handler.Handler`); decode the batch, let the service process it and
send the dead letters (:func:`handle`); ``tick``; commit what the service's policy allows
(:mod:`tidemark.stream.commits`). Nothing else in Tidemark polls Kafka for a service
(``tests/unit/test_poll_loops.py`` holds every other module to that).

No record stops a service for good. Decoding turns any bad record into a dead letter
(:mod:`tidemark.stream.records`); a service's own per-record steps reject what they cannot
use. For a fault nothing foresaw, the loop keeps :class:`Suspects`: when handling a batch
raises (anything but a Kafka or MongoDB error, which are the infrastructure's), its records'
positions are counted, the loop starts again from the last commit, and a batch holding a record
that failed ``stream.max_record_failures`` times is handled one record at a time: a record
that raises alone leaves as a dead letter with the error, and the rest go on.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from pymongo.errors import PyMongoError

from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.stream.commits import AckedCommits, CommitPolicy, MarkedCommits
from tidemark.stream.handler import Commits, Handler, Output
from tidemark.stream.health import Backlog
from tidemark.stream.inflight import Ack
from tidemark.stream.records import Clock, Polled, dead_letter, decode, next_offsets

T = TypeVar("T")

log = get_logger("loop")

# Faults of what a service runs on, not of a record: the loop starts again and waits for them.
INFRASTRUCTURE_ERRORS = (KafkaError, PyMongoError)

Position = tuple[str, int, int]


class Suspects:
    """Positions of records whose batch raised, with how many times, across loop restarts.

    Bounded: past ``_REMEMBERED`` positions the oldest are forgotten (a batch is at most
    ``stream.max_batch`` records, so the ones that matter are the newest).
    """

    _REMEMBERED = 100_000

    def __init__(self, max_failures: int) -> None:
        self.max_failures = max_failures
        self._failures: dict[Position, int] = {}

    @staticmethod
    def _positions(polled: Polled) -> list[Position]:
        return [(tp.topic, tp.partition, r.offset) for tp, rs in polled.items() for r in rs]

    def failed(self, polled: Polled) -> None:
        """Handling this batch raised."""
        for position in self._positions(polled):
            self._failures[position] = self._failures.pop(position, 0) + 1
        while len(self._failures) > self._REMEMBERED:
            del self._failures[next(iter(self._failures))]

    def failures(self, topic: str, partition: int, offset: int) -> int:
        """How many times the batch of this record raised."""
        return self._failures.get((topic, partition, offset), 0)

    def suspect(self, polled: Polled) -> bool:
        """Whether the batch holds a record whose batch raised ``max_failures`` times."""
        if not self._failures:
            return False
        return any(
            self._failures.get(position, 0) >= self.max_failures
            for position in self._positions(polled)
        )

    def cleared(self, polled: Polled) -> None:
        """The batch was handled: its records are no longer suspect."""
        if self._failures:
            for position in self._positions(polled):
                self._failures.pop(position, None)


def settle_heap() -> None:
    """Put every object alive now (modules, settings, the model) beyond the cyclic collector.

    A full collection walks every tracked object, and after importing mlflow, pandas and
    scikit-learn there are over a million; a loop that allocates per record starts one every few
    batches, which took a third of the scorer's CPU (benchmarks/streaming). Objects made later
    are collected as usual, and frozen ones are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()


def clock_of(handler: Handler[Any, Any], settings: Settings) -> Clock | None:
    """The bounds of the handler's event times, if it says what they are."""
    if type(handler).event_time is Handler.event_time:
        return None
    return Clock(
        skew=timedelta(seconds=settings.stream.max_clock_skew_s),
        horizon=timedelta(seconds=settings.stream.max_event_age_s),
        event_time=handler.event_time,
    )


def handle(
    handler: Handler[Any, T],
    polled: Polled,
    out: Output,
    max_bytes: int,
    clock: Clock | None = None,
) -> tuple[list[Ack], T]:
    """One polled batch through its service: decoded, processed, its dead letters sent after
    its output; returns the futures of every send and what to make durable."""
    batch = decode(polled, handler.decoders, max_bytes, clock)
    payload = handler.process(batch, out)
    out.dead_letters(batch.dead)
    return out.acks, payload


def handle_alone(
    handler: Handler[Any, T],
    polled: Polled,
    producer: KafkaProducer,
    settings: Settings,
    commits: CommitPolicy[T],
    suspects: Suspects,
    clock: Clock | None,
) -> None:
    """A suspect batch, one record at a time: a record whose handling raises alone leaves as a
    dead letter naming the error; the others are handled as usual."""
    max_bytes = settings.stream.max_record_bytes
    for partition, records in polled.items():
        for record in records:
            one = {partition: [record]}
            commits.make_room()
            out = Output(producer, settings.kafka)
            try:
                done = handle(handler, one, out, max_bytes, clock)
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as error:
                tries = suspects.failures(partition.topic, partition.partition, record.offset)
                reason = (
                    f"handling failed {tries} times in its batch and again alone: "
                    f"{type(error).__name__}: {error}"
                )
                log.warning(
                    "record dead-lettered after failing alone",
                    topic=partition.topic,
                    partition=partition.partition,
                    offset=record.offset,
                    error=reason[:300],
                )
                out.dead_letters([dead_letter(record, reason, max_bytes)])
                commits.sent(next_offsets(one), out.acks, None)
            else:
                commits.sent(next_offsets(one), *done)
    suspects.cleared(polled)


def run_loop(
    handler: Handler[Any, T],
    settings: Settings,
    stop: threading.Event,
    suspects: Suspects | None = None,
    backlog: Backlog | None = None,
    round_done: Callable[[], None] | None = None,
) -> None:
    """Consume the handler's topics until ``stop`` is set; the batch in hand is finished and
    what may be committed is committed before the clients close.

    Kafka's errors, and whatever a hook raises, leave the loop: the caller starts it afresh
    (:func:`tidemark.stream.service.run_service`), from the offsets committed last, with the
    same ``suspects`` (the records whose batches raised) and ``backlog`` (the input polled and
    not committed, for health); ``round_done`` is called after every round that finished.
    """
    suspects = suspects if suspects is not None else Suspects(settings.stream.max_record_failures)
    backlog = backlog if backlog is not None else Backlog()
    if not handler.start(stop):
        return
    settle_heap()
    acked = handler.commits is Commits.AFTER_ACKS
    consumer = kafka_io.consumer(
        settings.kafka, handler.group_id, max_poll_records=settings.stream.max_batch
    )
    producer: KafkaProducer = (
        kafka_io.batch_producer(settings.kafka) if acked else kafka_io.producer(settings.kafka)
    )
    commits: CommitPolicy[T] = (
        AckedCommits(
            consumer,
            producer,
            settings.stream.max_in_flight,
            settings.kafka.client_timeout_ms,
            durable=handler.durable,
            backlog=backlog,
        )
        if acked
        else MarkedCommits(
            consumer,
            producer,
            settings.kafka.client_timeout_ms,
            handler.mark,
            handler.resume,
            durable=handler.durable,
            backlog=backlog,
        )
    )
    clock = clock_of(handler, settings)
    max_bytes = settings.stream.max_record_bytes
    # Partitions gained (True) and lost (False) in a poll, in order, for after that poll.
    changes: list[tuple[bool, Sequence[TopicPartition]]] = []
    listener = commits.listener(
        lambda lost: changes.append((False, lost)),
        lambda gained: changes.append((True, gained)),
    )
    # The handler may read more topics later (a project that became ready): the subscription
    # follows its decoders, compared by identity each round (a new mapping when they change).
    decoders = handler.decoders
    consumer.subscribe(list(decoders), listener=listener)
    try:
        while not stop.is_set():
            polled = consumer.poll(
                timeout_ms=commits.poll_timeout_ms(settings.stream.poll_timeout_ms)
            )
            for gained, partitions in changes:
                if gained:
                    commits.assigned(partitions)
                    handler.assigned(partitions)
                    backlog.keep_only(consumer.assignment())
                else:
                    handler.revoked(partitions)
                    backlog.forget(partitions)
            changes.clear()
            if polled:
                backlog.polled(next_offsets(polled))
                if suspects.suspect(polled):
                    handle_alone(handler, polled, producer, settings, commits, suspects, clock)
                else:
                    commits.make_room()
                    out = Output(producer, settings.kafka)
                    try:
                        acks, payload = handle(handler, polled, out, max_bytes, clock)
                    except INFRASTRUCTURE_ERRORS:
                        raise
                    except Exception:
                        suspects.failed(polled)
                        raise
                    suspects.cleared(polled)
                    commits.sent(next_offsets(polled), acks, payload)
            handler.tick()
            if handler.decoders is not decoders:
                decoders = handler.decoders
                consumer.subscribe(list(decoders), listener=listener)
            commits.commit_settled()
            if round_done is not None:
                round_done()
    finally:
        try:
            commits.close()
        finally:
            consumer.close(autocommit=False)
            producer.close(timeout=settings.kafka.client_timeout_ms / 1000)
