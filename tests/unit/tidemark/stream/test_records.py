"""Raw records become contract messages or dead letters with a reason."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from kafka.structs import TopicPartition

from tests.unit.tidemark.stream.raw import Record
from tidemark.project.contracts import Contracts
from tidemark.project.spec import load_project
from tidemark.schemas import DeadLetter
from tidemark.stream.records import (
    LETTER_OVERHEAD,
    Clock,
    Decoding,
    dead_letter,
    decode,
    next_offsets,
    parse,
)

FISH = Contracts(
    load_project(Path(__file__).resolve().parents[4] / "projects" / "fish-weight.toml")
)
# The fish project's input decoder, as the scorer reads its topic.
INPUT = Decoding(FISH.decode_input)


def raw(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields)


def record(value: bytes | None, offset: int = 7) -> Record:
    return Record("fish.measurements", 2, offset, b"fish-1", value)


def test_a_valid_record_parses(measurement: dict[str, Any]) -> None:
    assert parse(record(raw(measurement)), INPUT, 1024) == FISH.decode_input(raw(measurement))


def test_an_invalid_record_becomes_a_dead_letter_naming_the_field() -> None:
    value = b'{"fish_id": "f", "species": "salmon", "length_cm": -1}'
    letter = parse(record(value), INPUT, 1024)
    assert isinstance(letter, DeadLetter)
    assert "length_cm" in letter.error
    assert "height_cm" in letter.error
    assert (letter.source_topic, letter.partition, letter.offset) == ("fish.measurements", 2, 7)
    assert letter.raw_value() == value


def test_non_utf8_bytes_are_kept_in_base64() -> None:
    letter = parse(record(b"\xff\xfe\x00"), INPUT, 1024)
    assert isinstance(letter, DeadLetter)
    assert letter.value_encoding == "base64"
    assert letter.raw_value() == b"\xff\xfe\x00"


def test_an_empty_record_is_a_dead_letter() -> None:
    letter = parse(record(None), INPUT, 1024)
    assert isinstance(letter, DeadLetter)
    assert letter.error == "record has no value"


def test_an_oversized_record_is_refused_unparsed_and_truncated() -> None:
    letter = parse(record(b"x" * 5000), INPUT, 1024)
    assert isinstance(letter, DeadLetter)
    assert "5000 bytes" in letter.error
    assert "truncated" in letter.error
    assert len(letter.raw_value()) == 1024


def test_next_offsets_point_after_the_last_record_of_each_partition() -> None:
    batch = {
        TopicPartition("t", 0): [record(b"", 3), record(b"", 4)],
        TopicPartition("t", 1): [record(b"", 9)],
    }
    offsets = next_offsets(batch)
    assert {tp.partition: o.offset for tp, o in offsets.items()} == {0: 5, 1: 10}


def test_a_poll_is_decoded_by_topic_and_a_rejected_message_joins_the_dead_letters(
    measurement: dict[str, Any],
) -> None:
    polled = {
        TopicPartition("fish.measurements", 0): [
            record(raw(measurement), 1),
            record(b"{}", 2),
        ],
    }
    batch = decode(polled, {"fish.measurements": INPUT}, 1024)
    assert [item.message for item in batch.received] == [FISH.decode_input(raw(measurement))]
    assert [letter.offset for letter in batch.dead] == [2]
    assert batch.size == 2
    batch.reject(batch.received[0], "the model cannot weigh it")
    assert [(d.offset, d.error) for d in batch.dead[1:]] == [(1, "the model cannot weigh it")]
    assert batch.dead[1].raw_value() == raw(measurement)


def test_a_decoder_s_unforeseen_exception_makes_a_dead_letter_not_a_crash() -> None:
    class Overflowing:
        def from_json(self, raw: bytes) -> object:
            raise OverflowError("date value out of range")

    letter = parse(record(b"{}"), Overflowing(), 1024)
    assert isinstance(letter, DeadLetter)
    assert letter.error == "cannot decode: OverflowError: date value out of range"


def test_the_overflowing_time_of_the_issue_is_a_dead_letter_with_the_field() -> None:
    value = (
        b'{"fish_id": "f", "species": "salmon", "length_cm": 70.0, "height_cm": 17.0,'
        b' "measured_at": "9999-12-31T23:59:59-01:00"}'
    )
    letter = parse(record(value), INPUT, 1024)
    assert isinstance(letter, DeadLetter)
    assert "OverflowError" in letter.error or "measured_at" in letter.error


def test_a_dead_letter_of_a_huge_key_and_escaped_value_fits_its_bound() -> None:
    # Control characters are escaped six-fold in JSON; a 200 kB key would not fit a request.
    raw = Record("fish.measurements", 0, 3, b"\x01" * 200_000, b"\x02" * 60_000)
    letter = dead_letter(raw, "bad", 65_536)
    size = len(letter.to_json())
    assert size <= 65_536 + LETTER_OVERHEAD
    assert "key of 200000 bytes cut to 256" in letter.error
    assert "value of 60000 bytes truncated" in letter.error
    assert b"\x02" * 100 in letter.raw_value()


def test_event_times_beyond_the_skew_or_the_horizon_are_dead_lettered(
    measurement: dict[str, Any],
) -> None:
    now = datetime.fromisoformat(measurement["measured_at"])
    clock = Clock(
        skew=timedelta(minutes=5),
        horizon=timedelta(days=7),
        event_time=lambda m: m.at,
        now=lambda: now,
    )

    def seen(at: datetime) -> bytes:
        return raw(measurement | {"measured_at": at.isoformat()})

    polled = {
        TopicPartition("fish.measurements", 0): [
            record(seen(now + timedelta(days=365 * 30)), 1),
            record(seen(now - timedelta(days=8)), 2),
            record(seen(now + timedelta(minutes=4)), 3),
        ]
    }
    batch = decode(polled, {"fish.measurements": INPUT}, 1024, clock)
    assert [item.raw.offset for item in batch.received] == [3]
    assert ["ahead of the clock" in d.error for d in batch.dead] == [True, False]
    assert "behind the clock" in batch.dead[1].error
    assert clock.ceiling() == now + timedelta(minutes=5)
