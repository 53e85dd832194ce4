"""Thresholds, the production-version rule, in-flight and cooldown gating."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring.policy import (
    LastRun,
    Thresholds,
    WindowSpan,
    alarm,
    gate,
    judged_records,
    training_start,
)
from monitoring.windows import ClosedWindow, ErrorStats
from tests.unit.monitoring.scored import T0, scored
from tidemark.schemas import RetrainReason

THRESHOLDS = Thresholds(error=0.10, min_count=30, drift_share=0.5)


def stats(mre: float, count: int = 100) -> ErrorStats:
    return ErrorStats(count=count, mae=0.1, rmse=0.1, mean_relative_error=mre)


def test_an_error_above_the_threshold_fires() -> None:
    fired = alarm(stats(0.21), False, 0.0, THRESHOLDS)
    assert fired is not None
    assert (fired.reason, fired.metric, fired.value, fired.threshold) == (
        RetrainReason.ERROR,
        "mean_relative_error",
        0.21,
        0.10,
    )


def test_an_error_at_or_below_the_threshold_does_not() -> None:
    assert alarm(stats(0.10), False, 0.0, THRESHOLDS) is None
    assert alarm(stats(0.06), False, 1 / 3, THRESHOLDS) is None


def test_drift_fires_when_detected_unless_disabled() -> None:
    fired = alarm(stats(0.06), True, 1.0, THRESHOLDS)
    assert fired is not None
    assert (fired.reason, fired.metric, fired.value) == (RetrainReason.DRIFT, "drift_share", 1.0)
    no_drift = Thresholds(error=0.10, min_count=30, drift_share=0.5, retrain_on_drift=False)
    assert alarm(stats(0.06), True, 1.0, no_drift) is None


def test_error_wins_when_both_fire() -> None:
    fired = alarm(stats(0.3), True, 1.0, THRESHOLDS)
    assert fired is not None
    assert fired.reason is RetrainReason.ERROR


def test_too_few_judged_fish_never_fire() -> None:
    assert alarm(stats(0.9, count=29), True, 1.0, THRESHOLDS) is None
    assert alarm(None, True, 1.0, THRESHOLDS) is None


def test_only_the_production_versions_fish_are_judged() -> None:
    window = ClosedWindow.of(
        T0,
        T0 + timedelta(seconds=60),
        [scored(1, version="1", rel_error=0.3), scored(2, version="2", rel_error=0.02)],
    )
    assert [r.model_version for r in judged_records(window, "2")] == ["2"]
    assert judged_records(window, "3") == []
    assert len(judged_records(window, None)) == 2


def run(state: str, final: bool, seconds_ago: float) -> LastRun:
    return LastRun("run-1", T0 - timedelta(seconds=seconds_ago), state, final)


NOW = T0


def test_the_first_retrain_may_start() -> None:
    assert gate(None, NOW, 300).open


@pytest.mark.parametrize("state", ["SCHEDULED", "PENDING", "RUNNING"])
def test_a_run_in_flight_holds_back_a_new_one_even_after_the_cooldown(state: str) -> None:
    held = gate(run(state, final=False, seconds_ago=3600), NOW, 300)
    assert not held.open
    assert "still" in held.why


def test_a_finished_run_holds_back_a_new_one_during_the_cooldown() -> None:
    held = gate(run("COMPLETED", final=True, seconds_ago=120), NOW, 300)
    assert not held.open
    assert "cooldown" in held.why


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED", "CRASHED"])
def test_after_the_cooldown_a_finished_run_lets_a_new_one_start(state: str) -> None:
    assert gate(run(state, final=True, seconds_ago=301), NOW, 300).open


def span(start_s: float, count: int) -> WindowSpan:
    return WindowSpan(T0 + timedelta(seconds=start_s), count)


def test_training_takes_earlier_windows_while_they_hold_no_more_fish() -> None:
    fired = span(180, 60)
    before = [span(120, 30), span(60, 30), span(0, 30)]
    assert training_start(fired, before, max_windows=3) == T0 + timedelta(seconds=60)
    assert training_start(fired, before, max_windows=4) == T0 + timedelta(seconds=60)
    assert training_start(fired, before, max_windows=1) == fired.start


def test_training_stays_in_the_window_that_fired_after_a_dense_one() -> None:
    # A busy stationary stretch before a quiet shift: its fish would crowd out the new ones.
    assert training_start(span(60, 92), [span(0, 514)], max_windows=3) == T0 + timedelta(seconds=60)
    assert training_start(span(60, 92), [], max_windows=3) == T0 + timedelta(seconds=60)
