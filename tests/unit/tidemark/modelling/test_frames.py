"""The model's tables: checks that name the bad columns and rows, its input, frames of items."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tests.unit.tidemark.modelling.streams import bakery, loaves, parcels, sorter
from tidemark.modelling.frames import (
    DataError,
    TrainingDataError,
    check_frame,
    frame_of,
    model_input,
)
from tidemark.project.contracts import Contracts

BAKERY = bakery()
SORTER = sorter()


def with_value(df: pd.DataFrame, column: str, value: object) -> pd.DataFrame:
    bad = df.copy()
    bad[column] = bad[column].astype(object)
    bad.loc[5, column] = value
    return bad


@pytest.mark.parametrize(
    ("column", "value", "what"),
    [
        ("dough_g", np.nan, "missing, not a number, infinite or not positive"),
        ("dough_g", np.inf, "missing, not a number"),
        ("dough_g", 0.0, "not positive"),
        ("proof_min", -1.0, "not a number, infinite or not positive"),
        ("proof_min", "long", "not a number"),
        ("loaf_g", -2.0, "not positive"),
        ("loaf_g", "heavy", "not a number"),
        ("recipe", None, "missing, empty, not text or not lower-case and trimmed"),
        ("recipe", "", "empty"),
        ("recipe", "Rye", "lower-case"),
        ("recipe", " rye", "trimmed"),
        ("oven", 3, "not text"),
        ("glaze", "egg ", "not text or not trimmed"),
    ],
)
def test_bad_values_are_named_with_their_rows(column: str, value: object, what: str) -> None:
    bad = with_value(loaves(30), column, value)
    with pytest.raises(
        TrainingDataError, match=rf"{column} is .*{what}.* in 1 rows, at index \[5\]"
    ):
        check_frame(BAKERY, bad, target=True, min_rows=1, error=TrainingDataError)


def test_every_bad_column_is_reported_at_once() -> None:
    bad = loaves(30).assign(dough_g=-1.0)
    bad.loc[[2, 4], "recipe"] = "Rye"
    with pytest.raises(DataError) as raised:
        check_frame(BAKERY, bad, target=True, min_rows=1)
    assert "recipe is" in str(raised.value)
    assert "at index [2, 4]" in str(raised.value)
    assert "dough_g is" in str(raised.value)
    assert "30 rows, at index [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...]" in str(raised.value)


def test_a_number_that_is_not_positive_is_fine_where_the_model_takes_it_as_it_is() -> None:
    frame = parcels(30).assign(temperature_c=-12.0, distance_m=0.0, delay_s=-40.0)
    check_frame(SORTER, frame, target=True, min_rows=1)


def test_optional_features_may_be_absent_but_required_ones_not() -> None:
    frame = loaves(30, absent_share=0.5)
    assert frame.proof_min.isna().any()
    assert frame.glaze.isna().any()
    check_frame(BAKERY, frame, target=True, min_rows=1)
    check_frame(BAKERY, frame.drop(columns=["proof_min", "glaze"]), target=True, min_rows=1)
    with pytest.raises(DataError, match=r"lacks the columns \['oven', 'loaf_g'\]"):
        check_frame(BAKERY, frame.drop(columns=["oven", "loaf_g"]), target=True, min_rows=1)
    # Without the target, only the features are needed.
    check_frame(BAKERY, frame.drop(columns=["loaf_g"]), target=False, min_rows=1)


def test_empty_and_small_frames() -> None:
    frame = loaves(30)
    with pytest.raises(TrainingDataError, match="empty"):
        check_frame(BAKERY, frame.iloc[:0], target=True, min_rows=1, error=TrainingDataError)
    with pytest.raises(DataError, match="19 rows, fewer than the minimum of 20"):
        check_frame(BAKERY, frame.head(19), target=True, min_rows=20)
    check_frame(BAKERY, frame.iloc[:0], target=True, min_rows=0)


def test_the_model_input_has_the_features_in_order_and_nan_for_absent_values() -> None:
    frame = loaves(6, absent_share=0.5).drop(columns=["glaze"])
    frame = frame.assign(extra="ignored")[
        ["extra", "loaf_g", "dough_g", "proof_min", "oven", "recipe"]
    ]
    frame.index = pd.Index([10, 11, 12, 13, 14, 15])
    given = model_input(BAKERY, frame)
    assert list(given.columns) == ["recipe", "dough_g", "oven", "proof_min", "glaze"]
    assert given.index.tolist() == [10, 11, 12, 13, 14, 15]
    assert given["dough_g"].dtype == np.float64
    assert given["proof_min"].dtype == np.float64
    assert given["recipe"].dtype == object
    assert given["glaze"].dtype == object
    assert given["glaze"].isna().all()
    assert given["proof_min"].isna().tolist() == frame["proof_min"].isna().tolist()


def test_a_frame_of_items_and_of_dict_records() -> None:
    contracts = Contracts(BAKERY)
    at = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    item = contracts.item(
        contracts.input.model_validate(
            {"loaf_id": "a", "recipe": "Rye", "dough_g": 800, "oven": "deck", "seen_at": at}
        ).__dict__
    )
    record = {
        "recipe": "spelt",
        "dough_g": 600.0,
        "oven": "deck",
        "proof_min": 45.0,
        "glaze": "egg",
    }
    frame = frame_of(BAKERY, [item, record])
    assert list(frame.columns) == ["recipe", "dough_g", "oven", "proof_min", "glaze"]
    assert frame["recipe"].tolist() == ["rye", "spelt"]
    assert frame["dough_g"].tolist() == [800.0, 600.0]
    assert np.isnan(frame["proof_min"][0])
    assert frame["proof_min"][1] == 45.0
    assert pd.isna(frame["glaze"][0])
    assert frame["glaze"][1] == "egg"
    check_frame(BAKERY, frame, target=False, min_rows=2)
    with_target = frame_of(BAKERY, [{**record, "loaf_g": 700.0}, record], target=True)
    assert with_target["loaf_g"].tolist()[0] == 700.0
    assert np.isnan(with_target["loaf_g"][1])
    assert frame_of(BAKERY, []).empty
