"""Raw records become contract messages or dead letters with a reason."""

from __future__ import annotations

from kafka.structs import TopicPartition

from tests.unit.tidemark.stream.raw import Record
from tidemark.schemas import DeadLetter, Measurement
from tidemark.stream.records import decode, next_offsets, parse


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
