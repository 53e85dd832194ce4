"""Hostile records interleaved with good items on every topic the scorer and the joiner read:
every good item is predicted and joined once, every bad record is dead-lettered with its reason,
and neither service restarts its loop, let alone its process."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from tests.integration.projects import fish_on
from tests.integration.streaming.streams import (
    Service,
    wait_for,
)
from tests.integration.topics import read_topic, topic_size
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.project.contracts import Contracts
from tidemark.schemas import DeadLetter, utc_now
from tidemark.stream.records import LETTER_OVERHEAD

NOW = utc_now()
DECADES_AHEAD = (NOW + timedelta(days=365 * 30)).isoformat()
OVERFLOWING = "9999-12-31T23:59:59-01:00"


def fish(fish_id: str, **changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "fish_id": fish_id,
        "species": "salmon",
        "length_cm": 70.0,
        "height_cm": 17.0,
        "measured_at": NOW.isoformat(),
    }
    return record | changes


def truth(fish_id: str, **changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "fish_id": fish_id,
        "species": "salmon",
        "weight_kg": 4.0,
        "weighed_at": (NOW + timedelta(seconds=2)).isoformat(),
    }
    return record | changes


def raw(record: dict[str, object]) -> bytes:
    return json.dumps(record).encode()


@dataclass(frozen=True)
class Hostile:
    """A bad record, the topic it goes to, and a word its dead letter's reason must hold."""

    name: str
    role: str  # input, truth or predictions
    value: bytes
    reason: str
    key: bytes | None = None


HOSTILE = [
    Hostile("malformed-json", "input", b'{"fish_id": "h1", "species":', "Invalid JSON"),
    Hostile(
        "deep-json",
        "input",
        b'{"fish_id": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        "recursion limit",
    ),
    Hostile("10kB-segment", "input", raw(fish("h3", species="s" * 10_000)), "species"),
    Hostile(
        "control-characters", "input", raw(fish("h4", species="sal\u0000\u0007mon")), "species"
    ),
    Hostile("200kB-key", "input", b'{"fish_id": "h5"', "Invalid JSON", key=b"\x01" * 200_000),
    Hostile("overflowing-time", "input", raw(fish("h6", measured_at=OVERFLOWING)), "range"),
    Hostile(
        "nan",
        "input",
        raw(fish("h7")).replace(b'"length_cm": 70.0', b'"length_cm": NaN'),
        "length_cm",
    ),
    Hostile(
        "infinity",
        "input",
        raw(fish("h8")).replace(b'"height_cm": 17.0', b'"height_cm": Infinity'),
        "height_cm",
    ),
    Hostile("negative-size", "input", raw(fish("h9", length_cm=-3.0)), "length_cm"),
    Hostile("input-decades-ahead", "input", raw(fish("h10", measured_at=DECADES_AHEAD)), "ahead"),
    Hostile(
        "truth-decades-ahead", "truth", raw(truth("good-0", weighed_at=DECADES_AHEAD)), "ahead"
    ),
    Hostile("truth-overflowing-time", "truth", raw(truth("h12", weighed_at=OVERFLOWING)), "range"),
    Hostile(
        "truth-nan",
        "truth",
        raw(truth("h13")).replace(b'"weight_kg": 4.0', b'"weight_kg": NaN'),
        "weight_kg",
    ),
    Hostile("truth-negative", "truth", raw(truth("h14", weight_kg=-1.0)), "weight_kg"),
    Hostile(
        "forged-prediction",
        "predictions",
        raw(
            fish("forged-1")
            | {
                "predicted_weight_kg": 1.0,
                "species_known": True,
                "model_name": "forged-model",
                "model_version": "1",
                "predicted_at": NOW.isoformat(),
            }
        ),
        "forged-model",
    ),
]
GOOD = 40
# A key sent twice with other features: the second is predicted, and refused by the joiner.
TWICE = "good-7"


def test_hostile_records_are_dead_lettered_and_every_good_item_predicted_and_joined_once(
    streams: Settings, start_service: Callable[[str], Service]
) -> None:
    topics = streams.kafka.topics
    topic_of = {"input": topics.input, "truth": topics.truth, "predictions": topics.predictions}
    producer = kafka_io.producer(streams.kafka)
    good_ids = [f"good-{i}" for i in range(GOOD)]
    hostile = iter(HOSTILE)
    for fish_id in good_ids:
        # Each hostile record sits between good ones of the same partition (same key).
        producer.send(topics.input, key=fish_id.encode(), value=raw(fish(fish_id)))
        bad = next(hostile, None)
        if bad is not None:
            producer.send(topic_of[bad.role], key=bad.key or fish_id.encode(), value=bad.value)
        if fish_id == TWICE:
            other = raw(fish(fish_id, length_cm=90.0))
            producer.send(topics.input, key=fish_id.encode(), value=other)
        producer.send(topics.truth, key=fish_id.encode(), value=raw(truth(fish_id)))
    producer.flush()
    producer.close()

    scorer = start_service("score")
    joiner = start_service("join")
    letters_expected = len(HOSTILE) + 1  # the second record of the key sent twice
    wait_for(
        lambda: topic_size(streams, topics.dead_letter) >= letters_expected,
        240,
        "every hostile record dead-lettered",
    )
    wait_for(lambda: topic_size(streams, topics.scored) >= GOOD, 240, "every good item joined")

    letters = [DeadLetter.from_json(r.value) for r in read_topic(streams, topics.dead_letter)]
    assert len(letters) == letters_expected
    for bad in HOSTILE:
        found = [
            letter
            for letter in letters
            if letter.source_topic == topic_of[bad.role]
            and bad.reason in letter.error
            and bad.value.startswith(letter.raw_value())
        ]
        assert len(found) == 1, (bad.name, [letter.error[:200] for letter in letters])
    oversized_key = next(letter for letter in letters if "key of 200000 bytes" in letter.error)
    assert len(oversized_key.to_json()) <= streams.stream.max_record_bytes + LETTER_OVERHEAD
    conflict = [letter for letter in letters if "other content" in letter.error]
    contracts = Contracts(fish_on(streams))
    conflicting = [
        (c.source_topic, contracts.decode_prediction(c.raw_value()).item.feature("length_cm"))
        for c in conflict
    ]
    assert conflicting == [(topics.predictions, 90.0)]

    predicted = Counter(
        contracts.decode_prediction(r.value).key for r in read_topic(streams, topics.predictions)
    )
    assert predicted == Counter(good_ids) + Counter([TWICE]) + Counter(["forged-1"])
    scored = [contracts.decode_scored(r.value) for r in read_topic(streams, topics.scored)]
    assert sorted(s.key for s in scored) == sorted(good_ids)
    assert next(s for s in scored if s.key == TWICE).prediction.item.feature("length_cm") == 70.0

    for service in (scorer, joiner):
        assert service.alive(), service.command
        assert service.metric("tidemark_stream_loop_restarts_total") == 0.0, service.command
        assert service.metric("tidemark_stream_healthy") == 1.0, service.command
