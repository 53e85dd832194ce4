"""The consumers' configuration as :func:`tidemark.kafka_io.consumer` builds it."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaConsumer

from tidemark import kafka_io
from tidemark.config import Settings


def built(monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments ``consumer`` hands to ``KafkaConsumer`` (no broker is asked)."""
    seen: dict[str, Any] = {}

    def record(*topics: str, **config: Any) -> dict[str, Any]:
        seen.update(config, topics=topics)
        return seen

    monkeypatch.setattr(kafka_io, "KafkaConsumer", record)
    kafka_io.consumer(Settings().kafka, "group", "topic", **overrides)
    return seen


def test_a_consumer_refreshes_its_metadata_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A topic created just before the group subscribed is assigned within seconds, not after
    kafka-python's five minutes."""
    config = built(monkeypatch)
    assert config["topics"] == ("topic",)
    assert config["metadata_max_age_ms"] == kafka_io.METADATA_MAX_AGE_MS <= 10_000
    # Every key is one kafka-python knows (it would raise on an unknown one at run time).
    assert set(config) - {"topics"} <= set(KafkaConsumer.DEFAULT_CONFIG)


def test_an_override_still_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert built(monkeypatch, metadata_max_age_ms=60_000)["metadata_max_age_ms"] == 60_000
