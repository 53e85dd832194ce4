"""The promotion policy and the holdout split, as pure logic."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tidemark.model import Metrics, TrainingDataError
from tidemark.promotion import (
    Decision,
    decide,
    decision_tags,
    metric_tags,
    split_holdout,
)


def metrics(mre: float, n: int = 10) -> Metrics:
    return Metrics(mae=mre * 3, rmse=mre * 4, mean_relative_error=mre, n=n)


def test_without_a_champion_the_candidate_is_promoted() -> None:
    verdict = decide(metrics(0.08), None, margin=0.05)
    assert verdict.decision is Decision.PROMOTED
    assert verdict.promote
    assert "no model in production" in verdict.reason


def test_a_clearly_better_candidate_is_promoted() -> None:
    verdict = decide(metrics(0.06), metrics(0.20), margin=0.05, champion_version="1")
    assert verdict.decision is Decision.PROMOTED
    assert "v1" in verdict.reason
    assert "70.0% below" in verdict.reason


@pytest.mark.parametrize("candidate", [0.0570, 0.0561, 0.0600])
def test_a_candidate_within_the_margin_is_rejected(candidate: float) -> None:
    verdict = decide(metrics(candidate), metrics(0.0590), margin=0.05, champion_version="3")
    assert verdict.decision is Decision.REJECTED
    assert not verdict.promote
    assert "not at least 5% below champion v3" in verdict.reason


def test_the_margin_is_a_share_of_the_champion_error() -> None:
    champion = metrics(0.10)
    assert decide(metrics(0.0899), champion, margin=0.10).promote
    assert not decide(metrics(0.0901), champion, margin=0.10).promote


def test_with_no_margin_an_equal_candidate_is_still_rejected() -> None:
    assert not decide(metrics(0.05), metrics(0.05), margin=0.0).promote


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_candidate_with_unusable_metrics_is_never_promoted(bad: float) -> None:
    broken = Metrics(mae=bad, rmse=0.1, mean_relative_error=0.01, n=10)
    assert decide(broken, None, margin=0.05).decision is Decision.REJECTED
    assert decide(metrics(bad), metrics(0.2), margin=0.05).decision is Decision.REJECTED


def test_a_champion_that_cannot_score_the_holdout_loses() -> None:
    verdict = decide(
        metrics(0.07), None, margin=0.05, champion_version="2", champion_error="sizes out of range"
    )
    assert verdict.promote
    assert "v2 could not score the holdout (sizes out of range)" in verdict.reason


def test_a_margin_outside_its_range_is_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        decide(metrics(0.05), None, margin=1.0)


def records(n: int) -> pd.DataFrame:
    times = pd.date_range("2026-11-25", periods=n, freq="min", tz="UTC")
    # Shuffled on purpose: the split must order by time, not trust the row order.
    return pd.DataFrame({"fish_id": [f"f{i}" for i in range(n)], "measured_at": times}).sample(
        frac=1.0, random_state=3
    )


def test_the_holdout_is_the_most_recent_share() -> None:
    train, holdout = split_holdout(records(50), fraction=0.2, min_holdout=5, min_train=20)
    assert len(train) == 40
    assert len(holdout) == 10
    assert train["measured_at"].max() < holdout["measured_at"].min()
    assert list(holdout["fish_id"]) == [f"f{i}" for i in range(40, 50)]


def test_the_holdout_has_at_least_its_minimum() -> None:
    train, holdout = split_holdout(records(30), fraction=0.1, min_holdout=8, min_train=20)
    assert (len(train), len(holdout)) == (22, 8)


def test_without_timestamps_the_row_order_is_kept() -> None:
    frame = pd.DataFrame({"fish_id": [f"f{i}" for i in range(10)]})
    train, holdout = split_holdout(frame, fraction=0.3, min_holdout=1, min_train=1)
    assert list(holdout["fish_id"]) == ["f7", "f8", "f9"]
    assert list(train["fish_id"]) == [f"f{i}" for i in range(7)]


def test_too_few_records_are_a_training_data_error() -> None:
    with pytest.raises(TrainingDataError, match="24 records are too few"):
        split_holdout(records(24), fraction=0.2, min_holdout=5, min_train=20)
    with pytest.raises(TrainingDataError, match="no records"):
        split_holdout(records(0), fraction=0.2, min_holdout=5, min_train=20)


def test_tags_are_strings_with_none_for_a_missing_champion() -> None:
    assert metric_tags("champion", None) == {
        "champion_mae": "none",
        "champion_rmse": "none",
        "champion_mre": "none",
    }
    tags = metric_tags("candidate", metrics(0.05))
    assert float(tags["candidate_mre"]) == 0.05
    assert float(tags["candidate_mae"]) == pytest.approx(0.15)
    verdict = decide(metrics(0.05), None, margin=0.05)
    assert decision_tags(verdict) == {"decision": "promoted", "decision_reason": verdict.reason}
