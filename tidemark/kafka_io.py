"""Kafka clients configured from the settings, and the topics of the data contract.

Every consumer in Tidemark commits by hand (after its output is acknowledged) and starts from
the earliest offset of a new group, so that a restart neither skips nor loses records.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Protocol

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.producer.future import FutureRecordMetadata

from tidemark.config import KafkaSettings
from tidemark.schemas import DeadLetter


class Keyed(Protocol):
    """A contract message keyed by its item."""

    @property
    def key(self) -> str: ...

    def to_json(self) -> bytes: ...


def admin(kafka: KafkaSettings) -> KafkaAdminClient:
    """An admin client; raises ``KafkaTimeoutError`` when no broker answers in time."""
    return KafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers,
        bootstrap_timeout_ms=kafka.client_timeout_ms,
        request_timeout_ms=kafka.client_timeout_ms,
    )


def producer(kafka: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """An idempotent producer that waits for all replicas (acks=all)."""
    config: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "bootstrap_timeout_ms": kafka.client_timeout_ms,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "compression_type": None,
    }
    return KafkaProducer(**(config | overrides))


def batch_producer(kafka: KafkaSettings) -> KafkaProducer:
    """A producer for a loop that publishes each polled batch and flushes it (``publish``).

    Its records wait for the flush rather than a linger timer, in one large batch per partition.
    With the default 5 ms linger and 16 kB batches the sender thread woke on almost every send
    and a consume-publish loop ran at half the speed (benchmarks/streaming).
    """
    return producer(kafka, linger_ms=1_000, batch_size=512 * 1024)


# How old a consumer's cluster metadata may grow before it asks again. kafka-python's default (5
# min) let a group whose topic was created just before it subscribed be assigned no partition
# ("No partition metadata for topic ..." from the assignor) until the next refresh: a monitor
# judged nothing for minutes. The coordinator rebalances as soon as a refresh shows the
# partitions, so this bounds that wait; the price is one small metadata request per consumer
# every few seconds.
METADATA_MAX_AGE_MS = 5_000


def consumer(kafka: KafkaSettings, group_id: str, *topics: str, **overrides: Any) -> KafkaConsumer:
    """A group consumer with manual commits that starts new groups at the earliest offset and
    sees a new topic's partitions within :data:`METADATA_MAX_AGE_MS`."""
    config: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "bootstrap_timeout_ms": kafka.client_timeout_ms,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": kafka.session_timeout_ms,
        "heartbeat_interval_ms": kafka.session_timeout_ms // 3,
        "metadata_max_age_ms": METADATA_MAX_AGE_MS,
    }
    return KafkaConsumer(*topics, **(config | overrides))


def send(
    producer: KafkaProducer,
    kafka: KafkaSettings,
    topic: str,
    records: Iterable[Keyed],
    dead: Iterable[DeadLetter] = (),
) -> list[FutureRecordMetadata]:
    """Send records to ``topic`` (keyed by their item) and dead letters; returns their futures."""
    futures = [producer.send(topic, key=r.key.encode(), value=r.to_json()) for r in records]
    futures += [
        producer.send(
            kafka.topics.dead_letter,
            key=letter.source_topic.encode(),
            value=letter.to_json(),
        )
        for letter in dead
    ]
    return futures


def publish(
    producer: KafkaProducer,
    kafka: KafkaSettings,
    topic: str,
    records: Iterable[Keyed],
    dead: Iterable[DeadLetter] = (),
) -> None:
    """Send records and dead letters as :func:`send` does, and wait for every ack.

    Raises the first delivery error: a caller that commits its input offsets after this call
    never commits a batch whose output was lost.
    """
    futures = send(producer, kafka, topic, records, dead)
    producer.flush()
    for future in futures:
        future.get(timeout=0)


class BackgroundFlush:
    """Flushes a batch producer on its own thread whenever asked, so its caller need not wait.

    A :func:`batch_producer` holds records until a flush; flushing here lets a consume→produce
    loop poll its next batch while the broker acknowledges the last one
    (``tidemark.stream.inflight`` says what it may commit meanwhile).
    """

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer
        self._wanted = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="background-flush", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Have every record sent so far leave now (the futures tell when it is acknowledged)."""
        self._wanted.set()

    def close(self, timeout_s: float) -> None:
        """Stop the thread once the flush under way is over, waiting at most ``timeout_s``.

        Bounded because with the broker gone a flush lasts until the sends time out; the
        thread is a daemon and dies with the process.
        """
        self._closing = True
        self._wanted.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                return
            try:
                self._producer.flush()
            except KafkaError:
                # A failed send is reported by its own future, which the loop checks.
                continue


def topic_configs(kafka: KafkaSettings) -> dict[str, str]:
    """The configuration of the contract's topics: how many copies must acknowledge a write."""
    return {"min.insync.replicas": str(kafka.min_insync_replicas)}


def ensure_topics(kafka: KafkaSettings, names: Iterable[str] | None = None) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created.

    The topics are ``names``, or the contract's (the settings') when None. Each gets
    ``topic_partitions`` partitions, ``topic_replication_factor`` copies and
    ``topic_min_insync_replicas`` (an acks=all write waits for that many copies).
    """
    client = admin(kafka)
    try:
        wanted = kafka.topics.names if names is None else tuple(dict.fromkeys(names))
        missing = [t for t in wanted if t not in set(client.list_topics())]
        created = []
        for topic in missing:
            try:
                client.create_topics(
                    {
                        topic: {
                            "num_partitions": kafka.partitions,
                            "replication_factor": kafka.replication_factor,
                            "configs": topic_configs(kafka),
                        }
                    },
                    wait_for_metadata=True,
                )
                created.append(topic)
            except TopicAlreadyExistsError:
                # Another process created it between our listing and our request.
                continue
        return created
    finally:
        client.close()
