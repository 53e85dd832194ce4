"""A raw Kafka record as the consumer hands it over, for the unit tests of stream code."""

from __future__ import annotations

from typing import NamedTuple


class Record(NamedTuple):
    """The fields of ``kafka.consumer.fetcher.ConsumerRecord`` that the streaming code reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
