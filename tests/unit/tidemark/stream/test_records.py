"""Raw records become contract messages or dead letters with a reason."""

from __future__ import annotations

from datetime import timedelta

from kafka.structs import TopicPartition

from tests.unit.tidemark.stream.raw import Record
from tidemark.schemas import DeadLetter, Measurement
from tidemark.stream.records import LETTER_OVERHEAD, Clock, dead_letter, decode, next_offsets, parse


def record(value: bytes | None, offset: int = 7) -> Record:
    return Record("fish.measurements", 2, offset, b"fish-1", value)


def test_a_valid_record_parses(measurement: Measurement) -> None:
    assert parse(record(measurement.to_json()), Measurement, 1024) == measurement


def test_an_invalid_record_becomes_a_dead_letter_naming_the_field() -> None:
    value = b'{"fish_id": "f", "species": "salmon", "length_cm": -1}'
    letter = parse(record(value), Measurement, 1024)
    assert isinstance(letter, DeadLetter)
    assert "length_cm" in letter.error
    assert "height_cm" in letter.error
    assert (letter.source_topic, letter.partition, letter.offset) == ("fish.measurements", 2, 7)
    assert letter.raw_value() == value


def test_non_utf8_bytes_are_kept_in_base64() -> None:
    letter = parse(record(b"\xff\xfe\x00"), Measurement, 1024)
    assert isinstance(letter, DeadLetter)
    assert letter.value_encoding == "base64"
    assert letter.raw_value() == b"\xff\xfe\x00"


def test_an_empty_record_is_a_dead_letter() -> None:
    letter = parse(record(None), Measurement, 1024)
    assert isinstance(letter, DeadLetter)
    assert letter.error == "record has no value"


def test_an_oversized_record_is_refused_unparsed_and_truncated() -> None:
    letter = parse(record(b"x" * 5000), Measurement, 1024)
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
    measurement: Measurement,
) -> None:
    polled = {
        TopicPartition("fish.measurements", 0): [
            record(measurement.to_json(), 1),
            record(b"{}", 2),
        ],
    }
    batch = decode(polled, {"fish.measurements": Measurement}, 1024)
    assert [item.message for item in batch.received] == [measurement]
    assert [letter.offset for letter in batch.dead] == [2]
    assert batch.size == 2
    batch.reject(batch.received[0], "the model cannot weigh it")
    assert [(d.offset, d.error) for d in batch.dead[1:]] == [(1, "the model cannot weigh it")]
    assert batch.dead[1].raw_value() == measurement.to_json()


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
    letter = parse(record(value), Measurement, 1024)
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
    measurement: Measurement,
) -> None:
    now = measurement.measured_at
    clock = Clock(
        skew=timedelta(minutes=5),
        horizon=timedelta(days=7),
        event_time=lambda m: m.measured_at,
        now=lambda: now,
    )
    ahead = measurement.model_copy(update={"measured_at": now + timedelta(days=365 * 30)})
    behind = measurement.model_copy(update={"measured_at": now - timedelta(days=8)})
    near = measurement.model_copy(update={"measured_at": now + timedelta(minutes=4)})
    polled = {
        TopicPartition("fish.measurements", 0): [
            record(ahead.to_json(), 1),
            record(behind.to_json(), 2),
            record(near.to_json(), 3),
        ]
    }
    batch = decode(polled, {"fish.measurements": Measurement}, 1024, clock)
    assert [item.raw.offset for item in batch.received] == [3]
    assert ["ahead of the clock" in d.error for d in batch.dead] == [True, False]
    assert "behind the clock" in batch.dead[1].error
    assert clock.ceiling() == now + timedelta(minutes=5)
