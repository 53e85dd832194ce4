"""The fast path gives the pipeline's answers, and refuses models it cannot reproduce."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from serving.active_model import ActiveModel
from serving.schemas import Fish
from tests.unit.serving.conftest import served
from tidemark.fast_path import LogLinearPredictor
from tidemark.model import TARGET, build_pipeline, known_species, predict
from tidemark.scenario import generate_frame, load_scenario


def test_fast_path_equals_the_pipeline_on_every_species_and_unknown_ones(
    mixed_model: Pipeline,
) -> None:
    fast = LogLinearPredictor.derive(mixed_model, known_species(mixed_model))
    assert fast is not None
    frame = generate_frame(load_scenario(), seed=9).sample(500, random_state=0)
    frame.loc[frame.index[::7], "species"] = "pike"
    expected = predict(mixed_model, frame)
    got = fast.predict(
        frame["species"].tolist(), frame["length_cm"].tolist(), frame["height_cm"].tolist()
    )
    np.testing.assert_allclose(got.weight_kg, expected.weight_kg, rtol=1e-12)
    np.testing.assert_array_equal(got.species_known, expected.species_known)


def test_a_model_that_is_not_log_linear_gets_no_fast_path() -> None:
    frame = generate_frame(load_scenario(), seed=3)
    # The same features, but a ridge on the weight itself rather than on its log.
    linear = build_pipeline().set_params(regressor=Ridge()).fit(frame, frame[TARGET])
    assert LogLinearPredictor.derive(linear, known_species(linear)) is None


def test_one_fish_at_a_time_equals_the_pipeline(mixed_model: Pipeline) -> None:
    fast = LogLinearPredictor.derive(mixed_model, known_species(mixed_model))
    assert fast is not None
    frame = generate_frame(load_scenario(), seed=4).sample(50, random_state=1)
    expected = predict(mixed_model, frame).weight_kg
    for row, weight in zip(frame.itertuples(index=False), expected, strict=True):
        got, known = fast.predict_one(row.species, row.length_cm, row.height_cm)
        assert got == pytest.approx(weight, rel=1e-12)
        assert known


def test_a_model_without_fast_path_is_served_through_its_pipeline() -> None:
    frame = generate_frame(load_scenario(), seed=3)
    linear = build_pipeline().set_params(regressor=Ridge()).fit(frame, frame[TARGET])
    active = ActiveModel.of(served(linear, "7"))
    assert active.fast is None
    fish = [Fish(species="salmon", length_cm=70.0, height_cm=17.0)]
    weights, known = active.predict(fish * 2)
    expected = predict(linear, pd.DataFrame([fish[0].model_dump()]))
    assert weights == pytest.approx([expected.weight_kg[0]] * 2, rel=1e-12)
    assert known == [True, True]
