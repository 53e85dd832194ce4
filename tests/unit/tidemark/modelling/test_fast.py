"""The fast form gives the pipeline's answers, one item or a batch, and refuses models it
cannot reproduce."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import Ridge
from sklearn.preprocessing import FunctionTransformer

from tests.unit.tidemark.modelling.streams import bakery, loaves, parcels, sorter
from tidemark.modelling.fast import FastForm
from tidemark.modelling.frames import DataError
from tidemark.modelling.predictions import Predictions, usable
from tidemark.modelling.training import predict, train
from tidemark.project.spec import Project

BAKERY = bakery()
SORTER = sorter()


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a request or an item carries them: absent optional values left out."""
    return [
        {name: value for name, value in row.items() if not pd.isna(value)}
        for row in frame.to_dict("records")
    ]


def agree(project: Project, model: Any, frame: pd.DataFrame, *, rtol: float = 1e-12) -> None:
    fast = FastForm.derive(project, model)
    assert fast is not None
    expected = predict(project, model, frame)
    for got in (fast.predict(frame), fast.predict_rows(records(frame))):
        np.testing.assert_allclose(got.values, expected.values, rtol=rtol)
        np.testing.assert_array_equal(got.segment_known, expected.segment_known)
    one_by_one = [fast.predict_one(row) for row in records(frame)]
    np.testing.assert_allclose([v for v, _ in one_by_one], expected.values, rtol=rtol)
    assert [k for _, k in one_by_one] == expected.segment_known.tolist()


def test_it_equals_the_pipeline_with_unknown_segments_levels_and_absent_values() -> None:
    model = train(BAKERY, loaves(600, noise_sd=0.05, absent_share=0.2), seed=0).model
    frame = loaves(300, seed=4, absent_share=0.3)
    frame.loc[frame.index[::7], "recipe"] = "brioche"
    frame.loc[frame.index[::5], "oven"] = "wood-fired"
    frame.loc[frame.index[::11], "glaze"] = "sugar"
    agree(BAKERY, model, frame)


def test_it_equals_the_pipeline_for_a_target_that_is_not_positive() -> None:
    model = train(SORTER, parcels(300, noise_s=5.0), seed=0).model
    frame = parcels(200, seed=3)
    frame.loc[frame.index[::6], "lane"] = "west"
    frame.loc[frame.index[::4], "temperature_c"] = np.nan
    agree(SORTER, model, frame, rtol=1e-9)


def test_it_equals_the_pipeline_without_segment_and_without_absent_values_seen() -> None:
    project = bakery(segment=None)
    # Training saw every proof and glaze: an absent one is the median, or adds nothing.
    model = train(project, loaves(300, noise_sd=0.05), seed=0).model
    agree(project, model, loaves(100, seed=2, absent_share=0.5))


def test_a_segment_without_numeric_features() -> None:
    project = sorter(
        features=[{"name": "lane", "type": "category"}, {"name": "carrier", "type": "category"}]
    )
    model = train(project, parcels(300, noise_s=1.0), seed=0).model
    agree(project, model, parcels(50, seed=5).assign(lane=["north", "west"] * 25), rtol=1e-9)


def test_it_reads_the_laws_it_was_given() -> None:
    model = train(BAKERY, loaves(600), seed=0).model
    fast = FastForm.derive(BAKERY, model)
    assert fast is not None
    assert fast.segments == frozenset({"rye", "spelt", "wheat"})
    # The exact law (tests' RECIPES, proof_min's exponent), read back from the probes.
    assert fast.laws["wheat"].slopes[1] == pytest.approx(0.1, abs=0.01)
    assert fast.laws["spelt"].slopes[0] == pytest.approx(1.05, abs=0.01)
    assert fast.levels["oven"]["convection"] - fast.levels["oven"]["deck"] == pytest.approx(
        np.log(0.96), abs=1e-3
    )
    assert set(fast.levels["glaze"]) == {"egg", "milk", None}


def test_a_model_that_is_not_log_linear_gets_no_fast_form() -> None:
    data = loaves(300, noise_sd=0.05)
    model = train(BAKERY, data, seed=0).model
    # The same features, but a ridge on the mass itself rather than on its log.
    linear = model.set_params(regressor=Ridge()).fit(data, data.loaf_g)
    assert FastForm.derive(BAKERY, linear) is None


def test_a_model_that_answers_every_probe_but_not_the_grid_gets_no_fast_form() -> None:
    data = loaves(300, noise_sd=0.05)
    model = train(BAKERY, data, seed=0).model
    # The square root of the dough where the form expects its log: the probes read a law
    # (finite, positive answers), which the grid then finds wrong.
    rooted = model.set_params(
        features__by_dough_g__columns__value__log=FunctionTransformer(np.sqrt)
    ).fit(data, data.loaf_g)
    assert FastForm.derive(BAKERY, rooted) is None


def test_a_model_whose_link_is_not_the_projects_gets_no_fast_form() -> None:
    data = parcels(300, noise_s=5.0)
    model = train(SORTER, data, seed=0).model
    logged = model.set_params(
        regressor=TransformedTargetRegressor(Ridge(), func=np.exp, inverse_func=np.log)
    )
    assert FastForm.derive(SORTER, logged.fit(data, data.delay_s / 100)) is None


def test_a_users_model_gets_no_fast_form() -> None:
    project = bakery(model={"factory": "tests.unit.tidemark.modelling.user_models:quadratic"})
    model = train(project, loaves(200, noise_sd=0.05), seed=0).model
    assert FastForm.derive(project, model) is None


def test_unusable_answers_are_refused_like_the_pipeline_refuses_them() -> None:
    model = train(BAKERY, loaves(300), seed=0).model
    fast = FastForm.derive(BAKERY, model)
    assert fast is not None
    frame = loaves(3).assign(dough_g=[500.0, 1e300, 600.0])
    with pytest.raises(DataError, match=r"no usable loaf_g at rows \[1\]"):
        fast.predict(frame)
    value, known = fast.predict_one({"recipe": "rye", "dough_g": 1e300, "oven": "deck"})
    assert known
    assert not usable(BAKERY, value)
    assert fast.predict_one({"recipe": "rye", "dough_g": np.inf, "oven": "deck"})[0] == np.inf
    # A required feature absent, or a log of a value not above zero: no number at all.
    assert np.isnan(fast.predict_one({"recipe": "rye", "oven": "deck"})[0])
    assert np.isnan(fast.predict_one({"recipe": "rye", "dough_g": 0.0, "oven": "deck"})[0])
    with pytest.raises(DataError, match=r"at rows \[0\]"):
        fast.predict({"recipe": ["rye"], "oven": ["deck"]})


def test_a_batch_from_a_dict_of_lists_or_a_frame_is_the_same() -> None:
    model = train(BAKERY, loaves(300, absent_share=0.2), seed=0).model
    fast = FastForm.derive(BAKERY, model)
    assert fast is not None
    frame = loaves(20, seed=8)
    lists = {name: frame[name].tolist() for name in frame.columns}
    assert isinstance(fast.predict(lists), Predictions)
    assert fast.predict(lists).values.tolist() == fast.predict(frame).values.tolist()
    with pytest.raises(DataError, match="none of the project's features"):
        fast.predict({"something": [1.0]})
