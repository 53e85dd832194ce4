"""Faults of the flows on the real stack: a worker killed mid-retrain, a promotion and a rollback
retried. Nothing is lost and nothing is done twice (issue 21, point 3).

``tidemark worker --deploy`` (what ``make up`` supervises) runs as a real process against the
session's Prefect server: it creates a pool of the test's own, deploys every flow to it and
polls it. Runs are started the way the monitor starts them, through ``RetrainTrigger``; the
worker that takes over after the kill also shows a retrain the monitor starts running on a
worker of the pool to its end (one worker for both: each start costs the imports of a Python
process and a deployment of every flow).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from infra.local.stack import Stack
from monitoring.policy import IncidentKey, IncidentKind
from monitoring.trigger import RetrainTrigger
from tests.integration.conftest import free_ports
from tests.integration.flows.conftest import StartWorker, flow_run, kill_group, kill_run
from tests.integration.joined import store_phase
from tests.integration.registered import register_scenario_model
from tests.integration.streaming.streams import wait_for
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.orchestration import prefect_api
from tidemark.registry import writer as registry
from tidemark.schemas import RetrainReason, RetrainRequest, utc_now

INCIDENT = IncidentKey(IncidentKind.DRIFT)


def _request(minutes_ago: int) -> RetrainRequest:
    now = utc_now()
    return RetrainRequest(
        reason=RetrainReason.DRIFT,
        window_start=now - timedelta(minutes=minutes_ago + 1),
        window_end=now - timedelta(minutes=minutes_ago),
        metric="drift_share",
        metric_value=0.8,
        threshold=0.5,
        requested_at=now,
    )


def _states(settings: Settings, run_id: str) -> list[StateType]:
    with prefect_api(settings.orchestration), get_client(sync_client=True) as client:
        return [s.type for s in client.read_flow_run_states(uuid.UUID(run_id))]


def test_a_retrain_whose_worker_is_killed_ends_crashed_and_the_next_alarm_retrains(
    pooled: Settings, start_worker: StartWorker
) -> None:
    # The first worker's runs read a store that never answers, so the run stays in its first
    # task, RUNNING, long enough to be killed there.
    (port,) = free_ports(1)
    silent = pooled.override(store_uri=f"mongodb://127.0.0.1:{port}/", store_timeout_ms=300_000)
    worker = start_worker(silent)
    producer = kafka_io.producer(pooled.kafka)
    try:
        patient = RetrainTrigger(pooled, producer)
        stuck = patient.start_run(_request(10), _request(10).window_start, [INCIDENT])
        wait_for(
            lambda: (
                (s := flow_run(pooled, stuck).state) is not None and s.type is StateType.RUNNING
            ),
            240,
            "the retrain to run",
        )
        # The machine dies: the worker and the run's process.
        kill_group(worker)
        kill_run(flow_run(pooled, stuck))
        # Nobody is left to report on it: within the default bound it holds its incident.
        time.sleep(2)
        assert flow_run(pooled, stuck).state.type is StateType.RUNNING  # type: ignore[union-attr]
        held = patient.in_flight()
        assert held is not None
        assert held.flow_run_id == stuck
        # Past the bound, the monitor's next look crashes it and sees nothing in flight.
        hasty = RetrainTrigger(pooled.override(retrain_max_run_s=1.0), producer)
        assert hasty.in_flight() is None
        crashed = flow_run(pooled, stuck)
        assert crashed.state is not None
        assert crashed.state.type is StateType.CRASHED
        assert "longer than 1 s" in (crashed.state.message or "")
        last = hasty.last_run(INCIDENT)
        assert last is not None
        assert last.flow_run_id == stuck
        assert last.final

        # The next alarm of the same incident starts a retrain, which a live worker runs: one
        # with a model and a collection of its own, for the retrain that follows.
        tag = uuid.uuid4().hex[:6]
        live = pooled.override(
            registry_model_name=f"worker-{tag}", store_collection=f"training_data_worker_{tag}"
        )
        start_worker(live)
        after = hasty.start_run(_request(5), _request(5).window_start, [INCIDENT])
        assert after != stuck
        wait_for(
            lambda: (s := flow_run(pooled, after).state) is not None and s.is_final(), 240, "it"
        )
        states = _states(pooled, after)
        assert StateType.RUNNING in states, states
        # An empty window: the retrain ran and refused to train on nothing.
        final = flow_run(pooled, after).state
        assert final is not None
        assert final.type is StateType.FAILED, final
        assert "no joined records" in (final.message or ""), final.message

        # A retrain the monitor starts on a window of joined fish runs on the pool's worker to
        # its end. Too few fish for evidence: it ends, as it should, with insufficient_evidence,
        # registering nothing.
        now = utc_now()
        store_phase(live, "salmon", 3, now - timedelta(seconds=50), 20, prefix="worker")
        request = RetrainRequest(
            reason=RetrainReason.ERROR,
            window_start=now - timedelta(minutes=1),
            window_end=now,
            metric="mean_relative_error",
            metric_value=0.2,
            threshold=0.1,
            requested_at=now,
        )
        run_id = RetrainTrigger(live, producer).start_run(request, request.window_start)
    finally:
        producer.close()
    started = time.monotonic()
    wait_for(
        lambda: (s := flow_run(live, run_id).state) is not None and s.is_final(), 240, "the run"
    )
    run = flow_run(live, run_id)
    assert run.work_pool_name == live.orchestration.work_pool
    # A worker submitted it (its process id is recorded) and the flow itself ran.
    assert run.infrastructure_pid
    assert run.start_time is not None
    assert run.state is not None
    assert run.state.type == StateType.COMPLETED, run.state
    states = _states(live, run_id)
    assert StateType.PENDING in states, states
    assert StateType.RUNNING in states, states
    assert registry.list_versions(live.registry) == []
    print(f"run {run_id}: {run.state.type.value} after {time.monotonic() - started:.1f} s")


@pytest.fixture
def versions(stack: Stack) -> tuple[Settings, list[str]]:
    """A registered model of the test's own with three versions, none in production."""
    settings = stack.settings.override(registry_model_name=f"retried-{uuid.uuid4().hex[:6]}")
    found = [
        register_scenario_model(settings, phases, experiment="retried")[0]
        for phases in (["salmon"], ["salmon", "walleye"], ["walleye"])
    ]
    return settings, found


def _failing_once(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``registry.<name>`` fail on its next call, as MLflow failing half-way would."""
    original: Callable[..., Any] = getattr(registry, name)
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("MLflow went away")
        return original(*args, **kwargs)

    monkeypatch.setattr(registry, name, flaky)


def test_a_promotion_or_rollback_retried_is_done_once(
    versions: tuple[Settings, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, (v1, v2, v3) = versions
    reg = settings.registry
    registry.promote(reg, v1)
    registry.promote(reg, v2)
    registry.promote(reg, v2)
    assert registry.production_history(reg) == [v1, v2]
    assert registry.production_version(reg) == v2

    # The history is written, then the alias fails to move; the retry adds no second entry.
    _failing_once(monkeypatch, "_point_production")
    with pytest.raises(ConnectionError):
        registry.promote(reg, v3)
    assert registry.production_history(reg) == [v1, v2, v3]
    assert registry.production_version(reg) == v2
    registry.promote(reg, v3)
    assert registry.production_history(reg) == [v1, v2, v3]
    assert registry.production_version(reg) == v3

    # A rollback of v3 that failed after its history, retried, then retried again once done:
    # v2 is restored once, and v2 itself is never rolled back.
    _failing_once(monkeypatch, "_point_production")
    with pytest.raises(ConnectionError):
        registry.rollback_with_reason(reg, "worse on live items", version=v3)
    assert registry.production_history(reg) == [v1, v2]
    for _ in range(2):
        assert registry.rollback_with_reason(reg, "worse on live items", version=v3) == (v3, v2)
        assert registry.production_version(reg) == v2
        assert registry.production_history(reg) == [v1, v2]
    rolled_back = registry.version_info(reg, v3)
    assert rolled_back.description.count("**Rolled back**") == 1, rolled_back.description
    assert rolled_back.tags["rolled_back_to"] == v2
    # Without a version, a rollback is a new request: production goes back one more step.
    assert registry.rollback_with_reason(reg, "by hand") == (v2, v1)
