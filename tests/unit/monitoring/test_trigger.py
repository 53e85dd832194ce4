"""The retrain flow's parameters for a retrain request."""

from __future__ import annotations

from datetime import timedelta

from monitoring.trigger import retrain_parameters
from tests.unit.monitoring.scored import T0, retrain_request


def test_the_retrain_reads_from_the_training_start_to_the_end_of_the_window() -> None:
    parameters = retrain_parameters(retrain_request(metric_value=0.21), T0 - timedelta(seconds=60))
    assert parameters == {
        "reason": "error",
        "window_start": (T0 - timedelta(seconds=60)).isoformat(),
        "window_end": (T0 + timedelta(seconds=60)).isoformat(),
        "last_n": None,
        "metric": "mean_relative_error",
        "metric_value": 0.21,
    }


def test_the_window_that_fired_is_always_read() -> None:
    parameters = retrain_parameters(retrain_request(metric_value=0.21), T0 + timedelta(seconds=10))
    assert parameters["window_start"] == T0.isoformat()
