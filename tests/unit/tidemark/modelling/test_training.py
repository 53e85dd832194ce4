"""Training, prediction, evaluation, judged errors and fingerprints, through the loop's API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.tidemark.modelling.streams import bakery, loaves, parcels, sorter
from tidemark.modelling.fingerprint import data_fingerprint
from tidemark.modelling.frames import DataError, TrainingDataError
from tidemark.modelling.metrics import Metrics
from tidemark.modelling.training import evaluate, judged_errors, predict, train
from tidemark.project.spec import ErrorKind

BAKERY = bakery()
SORTER = sorter()


@pytest.fixture(scope="module")
def exact_model() -> object:
    return train(BAKERY, loaves(300), seed=0).model


def test_relative_metrics_on_a_hand_checked_example(exact_model: object) -> None:
    one = loaves(2, seed=5)
    predicted = predict(BAKERY, exact_model, one).values
    # The scale says 20 % less than predicted for the first loaf, 10 % more for the second.
    truth = one.assign(loaf_g=[predicted[0] / 1.25, predicted[1] / 0.9])
    metrics = evaluate(BAKERY, exact_model, truth)
    errors = predicted - truth.loaf_g.to_numpy()
    assert metrics.n == 2
    assert metrics.kind is ErrorKind.RELATIVE
    assert metrics.mae == pytest.approx(np.mean(np.abs(errors)), rel=1e-12)
    assert metrics.rmse == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-12)
    assert metrics.judged == pytest.approx((0.25 + 0.1) / 2, rel=1e-9)
    assert judged_errors(BAKERY, exact_model, truth) == pytest.approx([0.25, 0.1], rel=1e-9)


def test_absolute_metrics_judge_the_error_in_the_targets_unit() -> None:
    model = train(SORTER, parcels(300), seed=0).model
    three = parcels(3, seed=7)
    predicted = predict(SORTER, model, three).values
    truth = three.assign(delay_s=predicted + np.array([-30.0, 0.0, 60.0]))
    metrics = evaluate(SORTER, model, truth)
    assert metrics.kind is ErrorKind.ABSOLUTE
    assert metrics.judged == metrics.mae == pytest.approx(30.0, rel=1e-9)
    assert metrics.rmse == pytest.approx(np.sqrt((900 + 3600) / 3), rel=1e-9)
    assert judged_errors(SORTER, model, truth) == pytest.approx([30.0, 0.0, 60.0], rel=1e-9)


def test_metrics_keep_their_names_for_mlflow() -> None:
    relative = Metrics(mae=1.0, rmse=2.0, judged=0.1, n=3)
    assert relative.as_dict("test_") == {
        "test_mae": 1.0,
        "test_rmse": 2.0,
        "test_mean_relative_error": 0.1,
        "test_n": 3.0,
    }
    absolute = Metrics(mae=1.0, rmse=2.0, judged=1.0, n=3, kind=ErrorKind.ABSOLUTE)
    assert absolute.judged_name == "mean_absolute_error"
    assert absolute.as_dict() == {"mae": 1.0, "rmse": 2.0, "mean_absolute_error": 1.0, "n": 3.0}


def test_judged_errors_follow_the_rows_order(exact_model: object) -> None:
    data = loaves(40, seed=3, noise_sd=0.1)
    errors = judged_errors(BAKERY, exact_model, data)
    shuffled = data.sample(frac=1.0, random_state=2)
    assert judged_errors(BAKERY, exact_model, shuffled).tolist() == (
        pd.Series(errors, index=data.index).loc[shuffled.index].tolist()
    )


def test_training_returns_its_segments_and_fingerprint() -> None:
    data = loaves(60, absent_share=0.2)
    result = train(BAKERY, data, seed=0)
    assert result.segments == frozenset({"rye", "spelt", "wheat"})
    assert result.fingerprint == data_fingerprint(BAKERY, data)
    assert result.metrics.n == 60
    assert train(bakery(segment=None), data, seed=0).segments == frozenset()


def test_training_refuses_small_or_bad_data() -> None:
    data = loaves(30)
    with pytest.raises(TrainingDataError, match="19 rows, fewer than the minimum of 20"):
        train(BAKERY, data.head(19), seed=0)
    assert train(BAKERY, data.head(5), seed=0, min_rows=5).metrics.n == 5
    with pytest.raises(TrainingDataError, match=r"lacks the columns \['loaf_g'\]"):
        train(BAKERY, data.drop(columns="loaf_g"), seed=0)
    no_target = data.astype({"loaf_g": object})
    no_target.loc[3, "loaf_g"] = None
    with pytest.raises(TrainingDataError, match=r"loaf_g is missing, .* at index \[3\]"):
        train(BAKERY, no_target, seed=0)


def test_prediction_on_no_rows_and_on_absurd_features(exact_model: object) -> None:
    empty = predict(BAKERY, exact_model, loaves(3).iloc[:0])
    assert empty.values.shape == empty.segment_known.shape == (0,)
    absurd = loaves(3).assign(dough_g=[500.0, 1e300, 600.0])
    absurd.index = pd.Index([7, 8, 9])
    with pytest.raises(DataError, match=r"no usable loaf_g at rows \[8\]"):
        predict(BAKERY, exact_model, absurd)
    with pytest.raises(DataError, match=r"dough_g is .* at index \[8\]"):
        predict(BAKERY, exact_model, absurd.assign(dough_g=[500.0, -1.0, 600.0]))


def test_a_target_that_is_not_positive_may_be_predicted_below_zero() -> None:
    model = train(SORTER, parcels(300), seed=0).model
    early = pd.DataFrame(
        {"lane": ["north"], "carrier": ["courier"], "distance_m": [1.0], "temperature_c": [30.0]}
    )
    assert predict(SORTER, model, early).values[0] < 0


def test_segments_known_come_from_the_caller_when_given(exact_model: object) -> None:
    frame = loaves(3)
    assert predict(BAKERY, exact_model, frame).segment_known.all()
    flags = predict(BAKERY, exact_model, frame, segments={"rye"}).segment_known
    assert flags.tolist() == [True, False, False]


def test_fingerprint_ignores_order_index_ids_and_number_types() -> None:
    data = loaves(50, absent_share=0.3)
    reference = data_fingerprint(BAKERY, data)
    assert len(reference) == 64
    shuffled = data.sample(frac=1.0, random_state=1).assign(loaf_id="x", shift="night")
    assert data_fingerprint(BAKERY, shuffled) == reference
    whole = data.assign(dough_g=data.dough_g.round())
    assert data_fingerprint(BAKERY, whole) == data_fingerprint(
        BAKERY, whole.astype({"dough_g": "float32"})
    )
    # An optional column left out is the same as one absent everywhere.
    no_glaze = data.assign(glaze=None)
    assert data_fingerprint(BAKERY, no_glaze) == data_fingerprint(
        BAKERY, no_glaze.drop(columns="glaze")
    )


def test_fingerprint_changes_with_the_data() -> None:
    data = loaves(50, absent_share=0.3)
    reference = data_fingerprint(BAKERY, data)
    changed = data.copy()
    changed.loc[0, "loaf_g"] += 1e-9
    assert data_fingerprint(BAKERY, changed) != reference
    assert data_fingerprint(BAKERY, pd.concat([data, data.head(1)])) != reference
    assert data_fingerprint(BAKERY, data.assign(oven="wood-fired")) != reference
    assert data_fingerprint(BAKERY, data.assign(glaze=None)) != reference
