"""Watching the closed loop from outside, through what it publishes.

The observer reads ``fish.predictions``, ``fish.scored`` and ``fish.retrain-requests`` from their
current ends (no consumer group: it takes nothing from anyone) and polls the registry's
production alias. From that it knows, on the wall clock, when each retrain was requested, when
each version reached production and when it made its first prediction, and it keeps every scored
fish for the error summary and the picture. ``make demo`` and the end-to-end test both use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.project.catalog import stack_catalog
from tidemark.project.contracts import Scored
from tidemark.registry import writer as registry
from tidemark.schemas import RetrainRequest, utc_now

log = get_logger("monitor.observer")


@dataclass(frozen=True)
class Promotion:
    """A version that the production alias moved to, and when the observer saw it move."""

    version: str
    seen_at: datetime


@dataclass
class LoopObserver:
    """Collects the loop's outputs; call :meth:`poll` often, :meth:`close` at the end."""

    settings: Settings
    registry_poll_s: float = 1.0
    # When given, only these fish are kept (e.g. a demo's, not those of another simulator).
    fish_ids: frozenset[str] | None = None
    scored: list[Scored] = field(default_factory=list)
    requests: list[RetrainRequest] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)
    first_prediction: dict[str, datetime] = field(default_factory=dict)
    predictions: int = 0
    initial_version: str | None = None

    def __post_init__(self) -> None:
        self._contracts = stack_catalog(self.settings.projects).contracts()
        self._consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        partitions = [
            TopicPartition(topic, p)
            for topic in (
                self.settings.kafka.topics.predictions,
                self.settings.kafka.topics.scored,
                self.settings.kafka.topics.retrain_requests,
            )
            for p in sorted(self._consumer.partitions_for_topic(topic) or [])
        ]
        self._consumer.assign(partitions)
        self._consumer.seek_to_end(*partitions)
        for partition in partitions:  # fix the positions now, before anything is sent
            self._consumer.position(partition)
        self.initial_version = registry.production_version(self.settings.registry)
        self._version = self.initial_version
        self._next_registry_check = 0.0

    def poll(self, timeout_s: float = 0.5) -> None:
        """Read what arrived since the last call and check the registry if it is time."""
        for partition, records in self._consumer.poll(timeout_ms=int(timeout_s * 1000)).items():
            for record in records:
                self._take(partition.topic, record.value)
        if time.monotonic() >= self._next_registry_check:
            self._next_registry_check = time.monotonic() + self.registry_poll_s
            try:
                version = registry.production_version(self.settings.registry)
            except Exception as error:  # a registry hiccup must not end a demo
                log.warning("registry check failed", error=str(error)[:200])
                return
            if version is not None and version != self._version:
                self._version = version
                self.promotions.append(Promotion(version, utc_now()))

    def _take(self, topic: str, value: bytes) -> None:
        if topic == self.settings.kafka.topics.scored:
            scored = self._contracts.decode_scored(value)
            if self.fish_ids is None or scored.key in self.fish_ids:
                self.scored.append(scored)
        elif topic == self.settings.kafka.topics.retrain_requests:
            self.requests.append(RetrainRequest.from_json(value))
        else:
            prediction = self._contracts.decode_prediction(value)
            self.predictions += 1
            self.first_prediction.setdefault(prediction.model_version, prediction.predicted_at)

    def catch_up(self, timeout_s: float = 30.0) -> None:
        """Read every topic up to its end offset as of now (what was published before this call
        is then in :attr:`scored`, :attr:`requests`…)."""
        partitions = list(self._consumer.assignment())
        ends = self._consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(self._consumer.position(p) < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the topics' ends ({ends}) not reached in {timeout_s:.0f} s")
            self.poll(0.5)

    @property
    def production_version(self) -> str | None:
        """The production version as last seen."""
        return self._version

    def close(self) -> None:
        """Stop reading."""
        self._consumer.close()
