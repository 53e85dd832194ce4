"""The one consume loop of every stream service, at least once.

:func:`run_loop` makes a group consumer on the service's topics and the producer its output
leaves by, then goes round: poll; hand the partitions gained or lost in that poll to the service
(:class:`tidemark.stream.handler.Handler`); decode the batch, let the service process it and
send the dead letters (:func:`handle`); ``tick``; commit what the service's policy allows
(:mod:`tidemark.stream.commits`). Nothing else in Tidemark polls Kafka for a service
(``tests/unit/test_poll_loops.py`` holds every other module to that).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from typing import Any, TypeVar

from kafka import KafkaProducer
from kafka.structs import TopicPartition

from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.stream.commits import AckedCommits, CommitPolicy, MarkedCommits
from tidemark.stream.handler import Commits, Handler, Output
from tidemark.stream.inflight import Ack
from tidemark.stream.records import Polled, decode, next_offsets

T = TypeVar("T")


def settle_heap() -> None:
    """Put every object alive now (modules, settings, the model) beyond the cyclic collector.

    A full collection walks every tracked object, and after importing mlflow, pandas and
    scikit-learn there are over a million; a loop that allocates per record starts one every few
    batches, which took a third of the scorer's CPU (benchmarks/streaming). Objects made later
    are collected as usual, and frozen ones are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()


def handle(
    handler: Handler[Any, T], polled: Polled, out: Output, max_bytes: int
) -> tuple[list[Ack], T]:
    """One polled batch through its service: decoded, processed, its dead letters sent after
    its output; returns the futures of every send and what to make durable."""
    batch = decode(polled, handler.decoders, max_bytes)
    payload = handler.process(batch, out)
    out.dead_letters(batch.dead)
    return out.acks, payload


def run_loop(handler: Handler[Any, T], settings: Settings, stop: threading.Event) -> None:
    """Consume the handler's topics until ``stop`` is set; the batch in hand is finished and
    what may be committed is committed before the clients close.

    Kafka's errors, and whatever a hook raises, leave the loop: the caller starts it afresh
    (:func:`tidemark.stream.service.run_service`), from the offsets committed last.
    """
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
        )
        if acked
        else MarkedCommits(
            consumer,
            producer,
            settings.kafka.client_timeout_ms,
            handler.mark,
            handler.resume,
            durable=handler.durable,
        )
    )
    # Partitions gained (True) and lost (False) in a poll, in order, for after that poll.
    changes: list[tuple[bool, Sequence[TopicPartition]]] = []
    consumer.subscribe(
        list(handler.decoders),
        listener=commits.listener(
            lambda lost: changes.append((False, lost)),
            lambda gained: changes.append((True, gained)),
        ),
    )
    try:
        while not stop.is_set():
            polled = consumer.poll(
                timeout_ms=commits.poll_timeout_ms(settings.stream.poll_timeout_ms)
            )
            for gained, partitions in changes:
                if gained:
                    commits.assigned(partitions)
                    handler.assigned(partitions)
                else:
                    handler.revoked(partitions)
            changes.clear()
            if polled:
                commits.make_room()
                out = Output(producer, settings.kafka)
                acks, payload = handle(handler, polled, out, settings.stream.max_record_bytes)
                commits.sent(next_offsets(polled), acks, payload)
            handler.tick()
            commits.commit_settled()
    finally:
        try:
            commits.close()
        finally:
            consumer.close(autocommit=False)
            producer.close(timeout=settings.kafka.client_timeout_ms / 1000)
