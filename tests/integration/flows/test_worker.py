"""A retrain that the monitor starts runs on a worker of the flows' process work pool.

``tidemark worker --deploy`` (what ``make up`` supervises) runs as a real process against the
session's Prefect server: it creates a pool of the test's own, deploys every flow to it and
polls it. The run is started the way the monitor starts it, through ``RetrainTrigger``.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from monitoring.trigger import RetrainTrigger
from tests.integration.flows.conftest import StartWorker, flow_run
from tests.integration.joined import store_phase
from tests.integration.streaming.streams import wait_for
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.orchestration import prefect_api
from tidemark.registry import writer as registry
from tidemark.schemas import RetrainReason, RetrainRequest, utc_now


def test_a_retrain_the_monitor_starts_runs_on_a_worker_of_the_pool(
    pooled: Settings, start_worker: StartWorker
) -> None:
    tag = uuid.uuid4().hex[:6]
    pooled = pooled.override(
        registry_model_name=f"worker-{tag}", store_collection=f"training_data_worker_{tag}"
    )
    start_worker(pooled)
    now = utc_now()
    # Joined fish in the window, too few for evidence: the retrain ends, as it should, with
    # insufficient_evidence, registering nothing (an empty window would fail it).
    store_phase(pooled, "salmon", 3, now - timedelta(seconds=50), 20, prefix="worker")
    request = RetrainRequest(
        reason=RetrainReason.ERROR,
        window_start=now - timedelta(minutes=1),
        window_end=now,
        metric="mean_relative_error",
        metric_value=0.2,
        threshold=0.1,
        requested_at=now,
    )
    producer = kafka_io.producer(pooled.kafka)
    try:
        run_id = RetrainTrigger(pooled, producer).start_run(request, request.window_start)
    finally:
        producer.close()
    started = time.monotonic()

    wait_for(
        lambda: (s := flow_run(pooled, run_id).state) is not None and s.is_final(), 240, "the run"
    )
    run = flow_run(pooled, run_id)
    assert run.work_pool_name == pooled.orchestration.work_pool
    # A worker submitted it (its process id is recorded) and the flow itself ran.
    assert run.infrastructure_pid
    assert run.start_time is not None
    assert run.state is not None
    assert run.state.type == StateType.COMPLETED, run.state
    with prefect_api(pooled.orchestration), get_client(sync_client=True) as client:
        states = [s.type for s in client.read_flow_run_states(run.id)]
    assert StateType.PENDING in states, states
    assert StateType.RUNNING in states, states
    # Too few fish to judge: nothing registered.
    assert registry.list_versions(pooled.registry) == []
    print(f"run {run_id}: {run.state.type.value} after {time.monotonic() - started:.1f} s")
