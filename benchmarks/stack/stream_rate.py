"""How fast a running stack's scorer turns one project's inputs into predictions.

The inputs are a project's scenario items, sent as fast as one producer can to the project's
input topic; the rate is read on the output side, from the CreateTime stamps of the first and
the last prediction they gave (set by the scorer's producer when it sends each), so neither
the fill nor the wait for the last acknowledgement counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.project.spec import Project
from tidemark.simulation.generate import generate
from tidemark.simulation.library import load_scenario


@dataclass(frozen=True)
class Rate:
    """Items predicted per second, over how many, and how long the last one took to come."""

    items: int
    per_s: float
    drained_s: float


def encoded_inputs(project: Project, count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """``count`` input records (key, value) of the project's default scenario, stamped now."""
    scenario = load_scenario(project)
    now = datetime.now(UTC).isoformat()
    records: list[tuple[bytes, bytes]] = []
    rows = generate(scenario, seed)
    while len(records) < count:
        try:
            row = next(rows)
        except StopIteration:  # a short scenario: again, with other keys
            seed += 1
            rows = generate(scenario, seed)
            continue
        value = {project.key: row.key, **row.features, project.times.input: now}
        records.append((row.key.encode(), orjson.dumps(value)))
    return records


def _ends(consumer: KafkaConsumer, topic: str) -> dict[TopicPartition, int]:
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    return dict(consumer.end_offsets(partitions))


def scorer_rate(
    project: Project, settings: Settings, count: int, seed: int, timeout_s: float = 300.0
) -> Rate:
    """Send ``count`` inputs of ``project`` (its topics in ``settings``) and measure how fast
    the stack's scorer predicts them; ``TimeoutError`` if they are not all out in time."""
    topics = settings.kafka.topics
    records = encoded_inputs(project, count, seed)
    reader = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
    )
    try:
        start = _ends(reader, topics.predictions)
        producer = kafka_io.producer(settings.kafka, linger_ms=20, batch_size=256 * 1024)
        sent_at = time.monotonic()
        for key, value in records:
            producer.send(topics.input, key=key, value=value)
        producer.flush()
        producer.close()
        deadline = sent_at + timeout_s
        while True:
            ends = _ends(reader, topics.predictions)
            if sum(ends[p] - start.get(p, 0) for p in ends) >= count:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{project.name}: {count} inputs sent, not all predicted in {timeout_s:.0f} s"
                )
            time.sleep(0.2)
        drained = time.monotonic() - sent_at
        stamps = _stamps(reader, start, ends)
    finally:
        reader.close()
    span_s = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else 0.0
    return Rate(items=len(stamps), per_s=(len(stamps) - 1) / span_s if span_s else 0.0,
                drained_s=drained)  # fmt: skip


def _stamps(
    reader: KafkaConsumer, start: dict[TopicPartition, int], ends: dict[TopicPartition, int]
) -> list[int]:
    partitions = list(ends)
    reader.assign(partitions)
    for partition in partitions:
        reader.seek(partition, start.get(partition, 0))
    stamps: list[int] = []
    while any(reader.position(p) < ends[p] for p in partitions):
        for batch in reader.poll(timeout_ms=1000).values():
            stamps.extend(r.timestamp for r in batch)
    return sorted(stamps)
