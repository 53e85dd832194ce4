"""The server answers through the default model's fast form exactly as its pipeline would, and
serves a model without one through its pipeline."""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from benchmarks.fish import FISH, fish_scenario
from serving.active_model import ActiveModel
from tests.unit.serving.conftest import served
from tidemark.modelling.default import build_default
from tidemark.modelling.frames import frame_of, model_input
from tidemark.modelling.training import predict
from tidemark.simulation.generate import generate_frame

Fields = dict[str, Any]


def _fish(seed: int, n: int) -> list[Fields]:
    """Requests' fields as the server's parser hands them over, a seventh of an unseen species."""
    frame = generate_frame(fish_scenario(), seed=seed).sample(n, random_state=0)
    rows: list[Fields] = frame[[f.name for f in FISH.features]].to_dict("records")
    for row in rows[::7]:
        row["species"] = "pike"
    return [{FISH.key: None, **row} for row in rows]


def _expected(model: Pipeline, fish: list[Fields]) -> tuple[list[float], list[bool]]:
    result = predict(FISH, model, frame_of(FISH, fish))
    return result.values.tolist(), result.segment_known.tolist()


def test_a_batch_through_the_fast_form_equals_the_pipeline(mixed_model: Pipeline) -> None:
    active = ActiveModel.of(served(mixed_model, "1"))
    assert active.fast is not None
    fish = _fish(9, 300)
    weights, known = active.predict(fish)
    expected, expected_known = _expected(mixed_model, fish)
    assert weights == pytest.approx(expected, rel=1e-12)
    assert known == expected_known
    assert not all(known)


def test_one_fish_at_a_time_equals_the_pipeline(mixed_model: Pipeline) -> None:
    active = ActiveModel.of(served(mixed_model, "1"))
    fish = _fish(4, 40)
    expected, expected_known = _expected(mixed_model, fish)
    for one, weight, flag in zip(fish, expected, expected_known, strict=True):
        got, known = active.predict_one(one)
        assert got == pytest.approx(weight, rel=1e-12)
        assert known is flag


def test_a_model_without_fast_form_is_served_through_its_pipeline() -> None:
    frame = generate_frame(fish_scenario(), seed=3)
    # The same features, but a ridge on the weight itself rather than on its log.
    linear = build_default(FISH).set_params(regressor=Ridge())
    linear.fit(model_input(FISH, frame), frame["weight_kg"])
    active = ActiveModel.of(served(linear, "7"))
    assert active.fast is None
    fish: list[Fields] = [{"species": "salmon", "length_cm": 70.0, "height_cm": 17.0}]
    weights, known = active.predict(fish * 2)
    expected, _ = _expected(linear, fish)
    assert weights == pytest.approx(expected * 2, rel=1e-12)
    assert known == [True, True]
