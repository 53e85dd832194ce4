"""One polled batch: valid measurements are scored in one call, the rest become dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
import orjson
import pytest
from kafka.structs import TopicPartition

from streaming.scorer import Scorer
from tests.integration.projects import example
from tests.unit.tidemark.stream.raw import Record
from tidemark.config import Settings
from tidemark.modelling.predictions import Predictions
from tidemark.project.catalog import project_settings
from tidemark.project.contracts import Contracts, Item, Prediction
from tidemark.schemas import DeadLetter
from tidemark.stream.handler import Output
from tidemark.stream.loop import handle

FISH = Contracts(example("fish-weight"))
# The fish project's settings: its topics.
SETTINGS = project_settings(FISH.project, Settings())


@dataclass
class Producer:
    """Records what the scorer sends; the real producer is covered by integration tests."""

    sent: dict[str, list[bytes]] = field(default_factory=dict)

    def send(self, topic: str, key: bytes, value: bytes) -> tuple[str, bytes]:
        self.sent.setdefault(topic, []).append(value)
        return topic, key


@dataclass
class Model:
    """Weighs a fish ``kg_per_cm`` per cm of length; a length of 666 cm gives ``bad_weight``."""

    bad_weight: float = float("nan")
    name: str = "fish-weight"
    version: str = "3"
    kg_per_cm: float = 0.01
    fails: bool = False
    calls: list[int] = field(default_factory=list)

    def predict(self, items: Sequence[Item]) -> Predictions:
        self.calls.append(len(items))
        if self.fails:
            raise ValueError("this model is broken")
        length = np.array([item.feature("length_cm") for item in items], np.float64)
        weight = np.where(length == 666.0, self.bad_weight, length * self.kg_per_cm)
        known = np.array([item.segment == "salmon" for item in items], np.bool_)
        return Predictions(values=weight, segment_known=known)


def batch(*values: bytes) -> dict[TopicPartition, list[Any]]:
    topic = SETTINGS.kafka.topics.input
    records = [Record(topic, 0, i, b"k", v) for i, v in enumerate(values)]
    return {TopicPartition(topic, 0): records}


def fish(
    measurement: dict[str, Any], fish_id: str, length_cm: float, species: str = "salmon"
) -> bytes:
    return orjson.dumps(
        measurement | {"fish_id": fish_id, "length_cm": length_cm, "species": species}
    )


def score(
    model: Model, values: list[bytes], challenger: Model | None = None
) -> tuple[list[Prediction], list[DeadLetter], int]:
    settings = SETTINGS
    producer = Producer()
    scorer = Scorer(settings, FISH, lambda: model, lambda: challenger)
    out = Output(cast(Any, producer), settings.kafka)
    sends, _ = handle(scorer, batch(*values), out, settings.stream.max_record_bytes)
    predictions = [
        FISH.decode_prediction(v) for v in producer.sent.get(settings.kafka.topics.predictions, [])
    ]
    dead = [
        DeadLetter.model_validate_json(v)
        for v in producer.sent.get(settings.kafka.topics.dead_letter, [])
    ]
    # Nothing waits for an acknowledgement: the loop gets one future per send.
    assert len(sends) == len(predictions) + len(dead)
    return predictions, dead, len(model.calls)


def test_a_batch_is_predicted_in_one_call_and_every_prediction_meets_the_contract(
    measurement: dict[str, Any],
) -> None:
    values = [
        fish(measurement, f"f-{i}", 50.0 + i, "salmon" if i % 2 else "walleye") for i in range(5)
    ]
    predictions, dead, calls = score(Model(), values)
    assert calls == 1
    assert dead == []
    assert [p.key for p in predictions] == [f"f-{i}" for i in range(5)]
    assert [p.value for p in predictions] == pytest.approx([0.5, 0.51, 0.52, 0.53, 0.54])
    assert [p.segment_known for p in predictions] == [False, True, False, True, False]
    assert {(p.model_name, p.model_version) for p in predictions} == {("fish-weight", "3")}
    assert all(p.at == datetime.fromisoformat(measurement["measured_at"]) for p in predictions)


@pytest.mark.parametrize("bad_weight", [float("nan"), float("inf"), 0.0, -1.0])
def test_a_row_the_model_cannot_weigh_becomes_a_dead_letter_and_the_rest_are_scored(
    measurement: dict[str, Any], bad_weight: float
) -> None:
    values = [
        fish(measurement, "f-1", 60.0),
        fish(measurement, "f-2", 666.0),
        fish(measurement, "f-3", 70.0),
    ]
    predictions, dead, _ = score(Model(bad_weight=bad_weight), values)
    assert [p.key for p in predictions] == ["f-1", "f-3"]
    assert [(d.offset, d.raw_value()) for d in dead] == [(1, values[1])]
    assert "positive finite" in dead[0].error


def test_invalid_records_become_dead_letters_in_a_batch_that_goes_on(
    measurement: dict[str, Any],
) -> None:
    values = [b"{not json", fish(measurement, "f-1", 60.0), b'{"fish_id": "f-2"}']
    predictions, dead, _ = score(Model(), values)
    assert [p.key for p in predictions] == ["f-1"]
    assert [d.offset for d in dead] == [0, 2]


def test_a_model_without_a_registered_version_stops_the_scorer(measurement: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError, match="registered name and version"):
        score(Model(version=""), [fish(measurement, "f-1", 60.0)])


def test_a_challenger_predicts_the_same_batch_in_one_more_call(measurement: dict[str, Any]) -> None:
    values = [fish(measurement, f"f-{i}", 50.0 + i) for i in range(4)]
    challenger = Model(version="4", kg_per_cm=0.02)
    predictions, dead, calls = score(Model(), values, challenger)
    assert (calls, challenger.calls, dead) == (1, [4], [])
    assert {p.challenger_version for p in predictions} == {"4"}
    assert [p.challenger_value for p in predictions] == pytest.approx([1.0, 1.02, 1.04, 1.06])
    assert [p.value for p in predictions] == pytest.approx([0.5, 0.51, 0.52, 0.53])


@pytest.mark.parametrize(
    "challenger",
    [
        Model(version="4", bad_weight=float("nan")),
        Model(version="4", bad_weight=-1.0),
        Model(version="4", fails=True),
        Model(version="3", kg_per_cm=0.02),
    ],
    ids=["nan", "negative", "raises", "same-version"],
)
def test_a_challenger_without_a_usable_answer_is_dropped_for_the_batch_never_the_fish(
    measurement: dict[str, Any], challenger: Model
) -> None:
    values = [fish(measurement, "f-1", 60.0), fish(measurement, "f-2", 666.0)]
    # Production weighs 666 cm fine here; only the challenger's answer is bad.
    production = Model(bad_weight=6.66)
    predictions, dead, _ = score(production, values, challenger)
    assert dead == []
    assert [p.key for p in predictions] == ["f-1", "f-2"]
    assert [p.value for p in predictions] == pytest.approx([0.6, 6.66])
    assert all(p.challenger_version is None for p in predictions)
    assert all(p.challenger_value is None for p in predictions)


def test_a_batch_scored_row_by_row_goes_without_the_challenger(measurement: dict[str, Any]) -> None:
    values = [fish(measurement, "f-1", 60.0), fish(measurement, "f-2", 666.0)]
    predictions, dead, _ = score(Model(), values, Model(version="4", bad_weight=1.0))
    assert [p.key for p in predictions] == ["f-1"]
    assert len(dead) == 1
    assert predictions[0].challenger_version is None


def test_a_prediction_of_the_fish_project_is_byte_for_byte_what_the_fish_scorer_sent(
    measurement: dict[str, Any],
) -> None:
    value = fish(measurement, "f-1", 60.0)
    scorer_bytes: list[bytes] = []
    settings = SETTINGS
    producer = Producer()
    scorer = Scorer(settings, FISH, lambda: Model(), None)
    handle(scorer, batch(value), Output(cast(Any, producer), settings.kafka), 65_536)
    scorer_bytes = producer.sent[settings.kafka.topics.predictions]
    at = FISH.decode_prediction(scorer_bytes[0]).predicted_at.isoformat().replace("+00:00", "Z")
    # The bytes the fish scorer sent before the fish were a project (issue 23).
    assert scorer_bytes[0] == (
        b'{"fish_id":"f-1","species":"salmon","length_cm":60.0,"height_cm":17.0,'
        b'"measured_at":"2026-11-25T12:00:00Z","predicted_weight_kg":0.6,"species_known":true,'
        b'"model_name":"fish-weight","model_version":"3","predicted_at":"' + at.encode() + b'"}'
    )
