"""Raw Kafka records in, a batch of contract messages and dead letters out: the one place where
a record that cannot be used becomes a dead letter with the reason.

The runtime decodes every polled record with the decoder its service gave for the record's
topic (any class with ``from_json``, as the contracts of :mod:`tidemark.schemas` are, or a
project's ``Contracts.decode_*``), so a service only ever sees messages that meet its contract.
Decoding never raises: whatever a decoder raises (a validation error, a time that overflows, a
nesting too deep) makes the record a dead letter with the exception named. A message whose
event time lies too far ahead of the clock or too far behind it (:class:`Clock`) is
dead-lettered too, so no event time a service does arithmetic on is absurd. A record that a
later step of the service cannot use is handed back with :meth:`Batch.reject`, and leaves the
same way.

A dead letter always fits in one produce request: its key, its reason and its value are cut
(:func:`dead_letter`), and the original sizes are named in the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from kafka.structs import OffsetAndMetadata, TopicPartition
from pydantic import ValidationError

from tidemark.schemas import DeadLetter, describe, utc_now

M = TypeVar("M")
M_co = TypeVar("M_co", covariant=True)

Polled = Mapping[TopicPartition, Sequence[Any]]

# A dead letter keeps at most this much of the record's key (a valid key is far shorter) and of
# its reason: the value gets the rest of the letter's room.
KEY_LIMIT = 256
ERROR_LIMIT = 2_048
# Room a dead letter takes beyond its value (field names, topic, offsets, times, the key and
# the reason at their limits, JSON escapes of both): the letter of a value cut to
# ``max_bytes`` is at most ``max_bytes + LETTER_OVERHEAD`` bytes.
LETTER_OVERHEAD = 16_384


class Decoder(Protocol[M_co]):
    """What turns a record's value into its contract message (a contract class is one)."""

    def from_json(self, raw: bytes) -> M_co:
        """The message; raises ``ValidationError`` naming what is wrong."""
        ...


@dataclass(frozen=True, slots=True)
class Decoding(Generic[M]):
    """A decoder made of a function that reads a record's value (``Contracts.decode_input``)."""

    read: Callable[[bytes], M]

    def from_json(self, raw: bytes) -> M:
        """The message the function reads; raises what it raises."""
        return self.read(raw)


EventTime = Callable[[Any], datetime | None]


def _no_event_time(message: Any) -> datetime | None:
    return None


@dataclass(frozen=True)
class Clock:
    """How far from the wall clock a message's event time may lie.

    ``skew``: how far ahead of now (a clock running fast); ``horizon``: how far behind (a
    backlog, a late truth). ``event_time`` reads a message's event time (None: not checked).
    """

    skew: timedelta
    horizon: timedelta
    event_time: EventTime = _no_event_time
    now: Callable[[], datetime] = utc_now

    def refuse(self, message: Any, now: datetime) -> str | None:
        """Why the message's event time is out of bounds at ``now``, or None when within them."""
        at = self.event_time(message)
        if at is None:
            return None
        # Compared by difference: a bound computed as now ± a delta could overflow, a
        # difference of two valid times never does.
        if at - now > self.skew:
            return (
                f"event time {at.isoformat()} is more than {self.skew.total_seconds():g} s "
                f"ahead of the clock ({now.isoformat()})"
            )
        if now - at > self.horizon:
            return (
                f"event time {at.isoformat()} is more than {self.horizon.total_seconds():g} s "
                f"behind the clock ({now.isoformat()})"
            )
        return None

    def ceiling(self) -> datetime:
        """The latest event time any state may reach now (now + skew)."""
        return self.now() + self.skew


def _cut(text: str, limit: int, what: str) -> tuple[str, str | None]:
    if len(text) <= limit:
        return text, None
    return text[:limit], f"{what} of {len(text)} characters cut to {limit}"


def dead_letter(record: Any, error: str, max_bytes: int) -> DeadLetter:
    """The dead letter of a Kafka record, at most ``max_bytes + LETTER_OVERHEAD`` bytes long.

    The broker would refuse a dead letter larger than a produce request, and a service that
    cannot send it starts again on the same record for ever: an oversized key or reason is cut
    to its head, and the value to as much of its head as fits (JSON escapes of control
    characters make a value up to six times longer as a letter than as a record). What was
    cut, and its original size, is said in the reason.
    """
    value: bytes = record.value if record.value is not None else b""
    key: bytes | None = record.key
    notes: list[str] = []
    if key is not None and len(key) > KEY_LIMIT:
        notes.append(f"key of {len(key)} bytes cut to {KEY_LIMIT}")
        key = key[:KEY_LIMIT]
    error, cut_note = _cut(error, ERROR_LIMIT, "reason")
    if cut_note:
        notes.append(cut_note)
    keep = min(len(value), max_bytes)
    while True:
        letter_notes = notes + (
            [f"value of {len(value)} bytes truncated to its first {keep} bytes"]
            if keep < len(value)
            else []
        )
        letter = DeadLetter.of(
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=key,
            value=value[:keep] if record.value is not None else None,
            error="; ".join([error, *letter_notes]),
        )
        size = len(letter.to_json())
        if size <= max_bytes + LETTER_OVERHEAD or keep == 0:
            return letter
        # Escapes make the letter longer than the value: keep a share that fits.
        keep = max(0, keep * max_bytes // size - 1)


def parse(
    record: Any,
    decoder: Decoder[M],
    max_bytes: int,
    clock: Clock | None = None,
    now: datetime | None = None,
) -> M | DeadLetter:
    """The record's value as ``decoder`` reads it, or its dead letter naming what is wrong
    (with a ``clock``, an event time out of its bounds at ``now`` is wrong too).

    Never raises: a decoder's exception of any kind is the record's fault, not the service's.
    """
    value: bytes | None = record.value
    if value is None:
        return dead_letter(record, "record has no value", max_bytes)
    if len(value) > max_bytes:
        return dead_letter(
            record, f"record is {len(value)} bytes, above the limit of {max_bytes}", max_bytes
        )
    try:
        message = decoder.from_json(value)
    except ValidationError as error:
        return dead_letter(record, describe(error), max_bytes)
    except Exception as error:  # a decoder's bug or a value no check foresaw: still the record's
        return dead_letter(record, f"cannot decode: {type(error).__name__}: {error}", max_bytes)
    if clock is not None:
        try:
            refused = clock.refuse(message, now or clock.now())
        except Exception as error:
            refused = f"cannot read its event time: {type(error).__name__}: {error}"
        if refused is not None:
            return dead_letter(record, refused, max_bytes)
    return message


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
    clock: Clock | None = field(default=None)

    @property
    def size(self) -> int:
        """How many records the poll brought, dead ones included."""
        return sum(len(records) for records in self.polled.values())

    def reject(self, item: Received[M], error: str) -> None:
        """A message that a later step cannot use: it leaves as a dead letter with ``error``."""
        self.dead.append(dead_letter(item.raw, error, self.max_bytes))


def decode(
    polled: Polled,
    decoders: Mapping[str, Decoder[M]],
    max_bytes: int,
    clock: Clock | None = None,
) -> Batch[M]:
    """Every polled record as its topic's message, or as a dead letter naming what is wrong
    (with a ``clock``, an event time out of its bounds is wrong too)."""
    received: list[Received[M]] = []
    dead: list[DeadLetter] = []
    # One reading of the clock for the whole poll: its records arrived together.
    now = clock.now() if clock is not None else None
    for partition, records in polled.items():
        decoder = decoders[partition.topic]
        for record in records:
            parsed = parse(record, decoder, max_bytes, clock, now)
            if isinstance(parsed, DeadLetter):
                dead.append(parsed)
            else:
                received.append(Received(parsed, record))
    return Batch(polled, received, dead, max_bytes, clock)


def next_offsets(batch: Polled) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit once every record of a polled batch is handled."""
    return {
        partition: OffsetAndMetadata(records[-1].offset + 1, "", -1)
        for partition, records in batch.items()
        if records
    }
