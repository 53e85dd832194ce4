"""The fast path gives the pipeline's answers, and refuses models it cannot reproduce."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from serving.fast_path import LogLinearPredictor
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
