"""Reading a topic as it is now: to its end offsets, without a consumer group or a timeout.

A read ends when every partition's position reaches the end offset it had when the read began,
so it takes as long as the records do, not as long as a consumer timeout.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from tidemark.config import Settings


def _reader(settings: Settings, topic: str) -> tuple[KafkaConsumer, list[TopicPartition]]:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    except KafkaError:
        consumer.close()
        raise
    consumer.assign(partitions)
    return consumer, partitions


# A read's metadata request may go to a broker a test has just killed, or to a partition whose
# leader is moving: kafka-python raises then instead of asking another broker, so a read is
# tried again with a fresh client, the way a person would read again.
_through_broker_failures = retry(
    retry=retry_if_exception_type(KafkaError),
    stop=stop_after_delay(60),
    wait=wait_fixed(1),
    reraise=True,
)


@_through_broker_failures
def topic_size(settings: Settings, topic: str) -> int:
    """How many records the topic holds (sum of its partitions' end offsets)."""
    consumer, partitions = _reader(settings, topic)
    try:
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


@_through_broker_failures
def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record the topic holds now, from the beginning."""
    consumer, partitions = _reader(settings, topic)
    try:
        ends = consumer.end_offsets(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        while any(consumer.position(p) < ends[p] for p in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
