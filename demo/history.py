"""What happened so far, read back for ``tidemark report``: scored fish, retrain requests and
the model decisions of shadow evaluation.

Scored fish come from the ``fish.scored`` topic (everything it still retains) or from the
MongoDB training store (the most recent records by ``measured_at``); retrain requests from
``fish.retrain-requests``. Topics are read without a consumer group, from the beginning up to
their end at the time of the call, so reading takes nothing from the services.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from pydantic import ValidationError

from tidemark.config import Settings
from tidemark.project.catalog import stack_catalog
from tidemark.project.contracts import Scored
from tidemark.schemas import ModelDecision, RetrainRequest
from tidemark.store import TrainingStore

M = TypeVar("M")


def read_topic(settings: Settings, topic: str, parse: Callable[[bytes], M]) -> list[M]:
    """Every valid message the topic holds now, in partition order (invalid ones are skipped:
    the monitor has dead-lettered them already)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        consumer.seek_to_beginning(*partitions)
        messages: list[M] = []
        while any(consumer.position(p) < ends[p] for p in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    try:
                        messages.append(parse(record.value))
                    except ValidationError:
                        continue
        return messages
    finally:
        consumer.close()


def scored_from_kafka(settings: Settings) -> list[Scored]:
    """The scored fish that ``fish.scored`` retains, oldest measurement first."""
    contracts = stack_catalog(settings.projects).contracts()
    scored = read_topic(settings, settings.kafka.topics.scored, contracts.decode_scored)
    return sorted(scored, key=lambda r: r.at)


def scored_from_store(settings: Settings, last: int) -> list[Scored]:
    """The ``last`` most recently measured joined records of the training store."""
    contracts = stack_catalog(settings.projects).contracts()
    with TrainingStore(settings.store, contracts) as store:
        frame = store.recent(last)
    return [contracts.scored_from(row) for row in frame.to_dict("records")]


def retrain_requests(settings: Settings) -> list[RetrainRequest]:
    """Every retrain request that ``fish.retrain-requests`` retains, in request order."""
    requests = read_topic(
        settings, settings.kafka.topics.retrain_requests, RetrainRequest.from_json
    )
    return sorted(requests, key=lambda r: r.requested_at)


def model_decisions(settings: Settings) -> list[ModelDecision]:
    """Every decision that ``fish.model-decisions`` retains (promotions, retirements,
    rollbacks of shadow evaluations on live fish), in decision order."""
    decisions = read_topic(settings, settings.kafka.topics.model_decisions, ModelDecision.from_json)
    return sorted(decisions, key=lambda d: d.decided_at)
