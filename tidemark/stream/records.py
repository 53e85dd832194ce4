"""Raw Kafka records in, a batch of contract messages and dead letters out: the one place where
a record that cannot be used becomes a dead letter with the reason.

The runtime decodes every polled record with the decoder its service gave for the record's
topic (any class with ``from_json``, as the contracts of :mod:`tidemark.schemas` are), so a
service only ever sees messages that meet its contract. A record that a later step of the
service cannot use is handed back with :meth:`Batch.reject`, and leaves the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from kafka.structs import OffsetAndMetadata, TopicPartition
from pydantic import ValidationError

from tidemark.schemas import DeadLetter, describe

M = TypeVar("M")
M_co = TypeVar("M_co", covariant=True)

Polled = Mapping[TopicPartition, Sequence[Any]]


class Decoder(Protocol[M_co]):
    """What turns a record's value into its contract message (a contract class is one)."""

    def from_json(self, raw: bytes) -> M_co:
        """The message; raises ``ValidationError`` naming what is wrong."""
        ...


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


def parse(record: Any, decoder: Decoder[M], max_bytes: int) -> M | DeadLetter:
    """The record's value as ``decoder`` reads it, or its dead letter naming what is wrong."""
    value: bytes | None = record.value
    if value is None:
        return dead_letter(record, "record has no value", max_bytes)
    if len(value) > max_bytes:
        return dead_letter(
            record, f"record is {len(value)} bytes, above the limit of {max_bytes}", max_bytes
        )
    try:
        return decoder.from_json(value)
    except ValidationError as error:
        return dead_letter(record, describe(error), max_bytes)


@dataclass(slots=True)
class Received(Generic[M]):
    """A message that met its contract, and the raw record it came in (topic, partition, offset).

    Not frozen: a frozen dataclass or a generic NamedTuple costs a few times more to make, and
    the scorer makes one per record.
    """

    message: M
    raw: Any


@dataclass
class Batch(Generic[M]):
    """One poll's records: those that met their contract, in poll order, and the dead letters."""

    polled: Polled
    received: list[Received[M]]
    dead: list[DeadLetter]
    max_bytes: int

    @property
    def size(self) -> int:
        """How many records the poll brought, dead ones included."""
        return sum(len(records) for records in self.polled.values())

    def reject(self, item: Received[M], error: str) -> None:
        """A message that a later step cannot use: it leaves as a dead letter with ``error``."""
        self.dead.append(dead_letter(item.raw, error, self.max_bytes))


def decode(polled: Polled, decoders: Mapping[str, Decoder[M]], max_bytes: int) -> Batch[M]:
    """Every polled record as its topic's message, or as a dead letter naming what is wrong."""
    received: list[Received[M]] = []
    dead: list[DeadLetter] = []
    for partition, records in polled.items():
        decoder = decoders[partition.topic]
        for record in records:
            parsed = parse(record, decoder, max_bytes)
            if isinstance(parsed, DeadLetter):
                dead.append(parsed)
            else:
                received.append(Received(parsed, record))
    return Batch(polled, received, dead, max_bytes)


def next_offsets(batch: Polled) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit once every record of a polled batch is handled."""
    return {
        partition: OffsetAndMetadata(records[-1].offset + 1, "", -1)
        for partition, records in batch.items()
        if records
    }
