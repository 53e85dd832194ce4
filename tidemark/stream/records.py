"""Turning raw Kafka records into contract messages, or into dead letters with the reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from kafka.structs import OffsetAndMetadata, TopicPartition
from pydantic import ValidationError

from tidemark.schemas import Contract, DeadLetter, describe

M = TypeVar("M", bound=Contract)


def dead_letter(record: Any, error: str, max_bytes: int) -> DeadLetter:
    """The dead letter of a Kafka record; values above ``max_bytes`` keep only their head.

    The broker would refuse a dead letter larger than a message, so an oversized value is cut
    and the error says so.
    """
    value: bytes | None = record.value
    if value is not None and len(value) > max_bytes:
        error = f"{error}; value truncated to its first {max_bytes} bytes"
        value = value[:max_bytes]
    return DeadLetter.of(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=value,
        error=error,
    )


def parse(record: Any, contract: type[M], max_bytes: int) -> M | DeadLetter:
    """The record's value as ``contract``, or its dead letter naming what is wrong."""
    value: bytes | None = record.value
    if value is None:
        return dead_letter(record, "record has no value", max_bytes)
    if len(value) > max_bytes:
        return dead_letter(
            record, f"record is {len(value)} bytes, above the limit of {max_bytes}", max_bytes
        )
    try:
        return contract.from_json(value)
    except ValidationError as error:
        return dead_letter(record, describe(error), max_bytes)


def next_offsets(
    batch: Mapping[TopicPartition, Sequence[Any]],
) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit once every record of a polled batch is handled."""
    return {
        partition: OffsetAndMetadata(records[-1].offset + 1, "", -1)
        for partition, records in batch.items()
        if records
    }
