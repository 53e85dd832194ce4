"""The retrain flow's parameters for a retrain request."""

from __future__ import annotations

import uuid
from datetime import timedelta

from prefect.client.schemas.objects import FlowRun
from prefect.states import Completed, Running

from monitoring.policy import IncidentKey, IncidentKind
from monitoring.trigger import incident_run, retrain_key, retrain_parameters, run_tags
from tests.unit.monitoring.scored import T0, retrain_request
from tidemark.judging.scored import WHOLE
from tidemark.orchestration import SegmentStart


def test_the_retrain_reads_from_the_training_start_to_the_end_of_the_window() -> None:
    parameters = retrain_parameters(retrain_request(metric_value=0.21), T0 - timedelta(seconds=60))
    assert parameters == {
        "reason": "error",
        "window_start": (T0 - timedelta(seconds=60)).isoformat(),
        "window_end": (T0 + timedelta(seconds=60)).isoformat(),
        "last_n": None,
        "metric": "mean_relative_error",
        "metric_value": 0.21,
        "threshold": 0.10,
        "segments": None,
        "segment_starts": None,
    }


def test_the_window_that_fired_is_always_read() -> None:
    parameters = retrain_parameters(retrain_request(metric_value=0.21), T0 + timedelta(seconds=10))
    assert parameters["window_start"] == T0.isoformat()


def test_a_run_is_tagged_with_its_model_incidents_and_the_version_it_was_asked_on() -> None:
    incidents = [
        IncidentKey(IncidentKind.UNSEEN, "pike"),
        IncidentKey(IncidentKind.DRIFT, "salmon"),
    ]
    assert run_tags(retrain_request(metric_value=0.21), incidents, "fish-weight") == [
        "tidemark-monitor",
        "model:fish-weight",
        "reason:error",
        "incident:drift:salmon",
        "incident:unseen:pike",
        "model-version:1",
    ]


def test_the_gate_reads_a_flow_run_back_from_its_tags_and_parameters() -> None:
    flow_run = FlowRun(
        id=uuid.uuid4(),
        flow_id=uuid.uuid4(),
        created=T0,
        tags=[
            "tidemark-monitor",
            "incident:error:walleye",
            "incident:drift:salmon",
            "model-version:4",
        ],
        parameters=retrain_parameters(
            retrain_request(metric_value=0.21), T0 - timedelta(seconds=60)
        ),
        state=Completed(),
    )
    read = incident_run(flow_run)
    assert (read.flow_run_id, read.created_at, read.state, read.final) == (
        str(flow_run.id),
        T0,
        "COMPLETED",
        True,
    )
    assert read.incidents == {
        IncidentKey(IncidentKind.ERROR, "walleye"),
        IncidentKey(IncidentKind.DRIFT, "salmon"),
    }
    assert (read.data_start, read.model_version) == (T0 - timedelta(seconds=60), "4")
    running = incident_run(flow_run.model_copy(update={"state": Running(), "tags": []}))
    assert (running.final, running.incidents, running.model_version) == (False, frozenset(), None)


def test_the_retrain_is_asked_about_the_species_of_its_incidents() -> None:
    incidents = [
        IncidentKey(IncidentKind.UNSEEN, "pike"),
        IncidentKey(IncidentKind.DRIFT, "salmon"),
    ]
    parameters = retrain_parameters(retrain_request(), T0, incidents)
    assert (parameters["segments"], parameters["threshold"]) == (["pike", "salmon"], 0.10)
    # A run of the monitor before drift had a segment (incident:drift) names none.
    assert (
        retrain_parameters(retrain_request(), T0, [IncidentKey(IncidentKind.DRIFT)])["segments"]
        is None
    )


def test_a_project_without_a_segment_reads_its_one_segment_from_its_change() -> None:
    whole = [IncidentKey(IncidentKind.ERROR, WHOLE)]
    change = SegmentStart(start=T0 + timedelta(seconds=20), reason="a change-point")
    parameters = retrain_parameters(
        retrain_request(), T0 - timedelta(seconds=60), whole, {WHOLE: change}, segmented=False
    )
    assert parameters["window_start"] == (T0 + timedelta(seconds=20)).isoformat()
    assert (parameters["segments"], parameters["segment_starts"]) == (None, None)
    drift = retrain_parameters(
        retrain_request(), T0 - timedelta(seconds=60), [IncidentKey(IncidentKind.DRIFT, WHOLE)],
        {WHOLE: change}, segmented=False,
    )  # fmt: skip
    assert drift["window_start"] == (T0 + timedelta(seconds=20)).isoformat()
    assert (drift["segments"], drift["segment_starts"]) == (None, None)


def test_a_retrain_run_s_key_repeats_for_one_window_and_differs_between_models() -> None:
    """The same window judged again after a restart gets the same run; another project's window
    of the same start, on a version of the same number, with the same incident, its own."""
    request = retrain_request(metric_value=0.21)
    incidents = [IncidentKey(IncidentKind.ERROR, WHOLE), IncidentKey(IncidentKind.DRIFT, WHOLE)]
    key = retrain_key(request, incidents, "fish-weight")
    assert retrain_key(request, list(reversed(incidents)), "fish-weight") == key
    assert retrain_key(request, incidents, "energy") != key
    assert retrain_key(request, incidents[:1], "fish-weight") != key
