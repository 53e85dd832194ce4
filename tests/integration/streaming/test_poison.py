"""A poison corpus lands in fish.dead-letter with reasons; the good records around it are scored."""

from __future__ import annotations

import json
from collections.abc import Callable

import orjson

from tests.integration.projects import fish_on
from tests.integration.streaming.streams import Service, wait_for
from tests.integration.topics import read_topic, topic_size
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.project.contracts import Contracts
from tidemark.schemas import DeadLetter, utc_now

GOOD = {
    "species": "salmon",
    "length_cm": 70.0,
    "height_cm": 17.0,
    "measured_at": "2026-11-25T12:00:00Z",
}


def _json(**fields: object) -> bytes:
    return json.dumps(fields).encode()


# Each poison value with a word its dead letter's reason must contain.
POISON: dict[str, tuple[bytes | None, str]] = {
    "malformed-json": (b'{"fish_id": "x", "species":', "Invalid JSON"),
    "not-an-object": (b"[1, 2, 3]", "object"),
    "length-as-string": (_json(**GOOD | {"fish_id": "p1", "length_cm": "70"}), "length_cm"),
    "species-as-number": (_json(**GOOD | {"fish_id": "p2", "species": 7}), "species"),
    "nan": (
        b'{"fish_id": "p3", "species": "salmon", "length_cm": NaN, "height_cm": 17.0,'
        b' "measured_at": "2026-11-25T12:00:00Z"}',
        "length_cm",
    ),
    "infinity": (
        b'{"fish_id": "p4", "species": "salmon", "length_cm": 70.0, "height_cm": Infinity,'
        b' "measured_at": "2026-11-25T12:00:00Z"}',
        "height_cm",
    ),
    "negative-length": (_json(**GOOD | {"fish_id": "p5", "length_cm": -3.0}), "length_cm"),
    "absurd-height": (_json(**GOOD | {"fish_id": "p6", "height_cm": 9_000.0}), "height_cm"),
    "missing-fields": (_json(fish_id="p7", species="salmon"), "Field required"),
    "unknown-field": (_json(**GOOD | {"fish_id": "p8", "colour": "red"}), "colour"),
    "naive-timestamp": (
        _json(**GOOD | {"fish_id": "p9", "measured_at": "2026-11-25T12:00:00"}),
        "measured_at",
    ),
    "non-utf8": (b"\xff\xfe\x00\x81garbage", "Invalid JSON"),
    "empty": (b"", "Invalid JSON"),
    "null-value": (None, "no value"),
    "oversized": (
        _json(**GOOD | {"fish_id": "p10", "padding": "x" * 200_000}),
        "above the limit",
    ),
}


def test_poison_lands_in_the_dead_letter_topic_and_good_records_are_scored(
    streams: Settings, start_service: Callable[[str], Service]
) -> None:
    producer = kafka_io.producer(streams.kafka)
    sent: dict[tuple[int, int], str] = {}
    good_ids: list[str] = []
    for round_ in range(3):
        for name, (value, _) in POISON.items():
            good_id = f"good-{round_}-{name}"
            good = {
                "fish_id": good_id,
                "species": "salmon",
                "length_cm": 70.0,
                "height_cm": 17.0,
                "measured_at": utc_now().isoformat(),
            }
            good_ids.append(good_id)
            # One key for the pair: the poison sits between good records of its partition.
            key = f"{round_}-{name}".encode()
            producer.send(streams.kafka.topics.input, key=key, value=orjson.dumps(good)).get(30)
            metadata = producer.send(streams.kafka.topics.input, key=key, value=value).get(30)
            sent[(metadata.partition, metadata.offset)] = name
    producer.close()

    start_service("score")
    wait_for(
        lambda: topic_size(streams, streams.kafka.topics.dead_letter) >= len(sent),
        180,
        "every poison record dead-lettered",
    )
    wait_for(
        lambda: topic_size(streams, streams.kafka.topics.predictions) >= len(good_ids),
        180,
        "every good record scored",
    )

    letters = [
        DeadLetter.from_json(r.value) for r in read_topic(streams, streams.kafka.topics.dead_letter)
    ]
    assert len(letters) == len(sent)
    by_position = {(letter.partition, letter.offset): letter for letter in letters}
    assert set(by_position) == set(sent)
    for position, name in sent.items():
        letter = by_position[position]
        assert letter.source_topic == streams.kafka.topics.input
        assert POISON[name][1] in letter.error, (name, letter.error)
        value = POISON[name][0] or b""
        if name == "oversized":
            assert value.startswith(letter.raw_value())
        else:
            assert letter.raw_value() == value, name
    assert (
        by_position[next(p for p, n in sent.items() if n == "non-utf8")].value_encoding == "base64"
    )

    contracts = Contracts(fish_on(streams))
    predictions = [
        contracts.decode_prediction(r.value)
        for r in read_topic(streams, streams.kafka.topics.predictions)
    ]
    assert sorted(p.key for p in predictions) == sorted(good_ids)
