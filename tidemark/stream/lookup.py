"""Find one key's latest record on a topic, by offset, without a consumer group.

Kafka's default partitioner puts every record of a key in one partition, so a lookup reads that
partition only, from its end backwards in chunks, and stops at the key's latest record: a recent
record costs one chunk, an unknown key the whole partition's retained records. Used by
``tidemark explain``; the runtime's loops consume, this reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tidemark.config import Settings

if TYPE_CHECKING:
    from kafka import KafkaConsumer

# Records read per step backwards: small enough that a recent record costs one short read.
CHUNK = 2_000


class TopicReader:
    """A consumer of no group, for reading partitions by offset; closed on exit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer: KafkaConsumer | None = None

    def __enter__(self) -> KafkaConsumer:
        from kafka import KafkaConsumer

        kafka = self.settings.kafka
        self.consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            bootstrap_timeout_ms=kafka.client_timeout_ms,
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=max(kafka.client_timeout_ms, 10_000) + 1_000,
        )
        return self.consumer

    def __exit__(self, *_: object) -> None:
        if self.consumer is not None:
            self.consumer.close()


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a key."""
    from kafka.partitioner.default import murmur2

    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def latest_record(consumer: KafkaConsumer, topic: str, key: str, chunk: int = CHUNK) -> Any:
    """The latest record of ``key`` on ``topic``, read backwards in chunks; None if none."""
    from kafka import TopicPartition

    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        return None
    wanted = key.encode()
    tp = TopicPartition(topic, partition_of(wanted, len(partitions)))
    consumer.assign([tp])
    begin = consumer.beginning_offsets([tp])[tp]
    high = consumer.end_offsets([tp])[tp]
    while high > begin:
        low = max(begin, high - chunk)
        match = None
        for record in _between(consumer, tp, low, high):
            if record.key == wanted:
                match = record
        if match is not None:
            return match
        high = low
    return None


def _between(consumer: KafkaConsumer, tp: Any, low: int, high: int) -> Iterator[Any]:
    """The records of ``tp`` with offsets in ``[low, high)``."""
    consumer.seek(tp, low)
    deadline = time.monotonic() + 30
    while consumer.position(tp) < high:
        polled = consumer.poll(timeout_ms=500, max_records=chunk_or(high - low))
        for record in polled.get(tp, []):
            if record.offset >= high:
                return
            yield record
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {tp.topic}[{tp.partition}] {low}..{high} took over 30 s")


def chunk_or(n: int) -> int:
    """At most a chunk's records per poll."""
    return max(1, min(n, CHUNK))
