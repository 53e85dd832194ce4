"""A retrain that the monitor starts runs on a worker of the flows' process work pool.

``tidemark worker --deploy`` (what ``make up`` supervises) runs as a real process against the
session's Prefect server: it creates a pool of the test's own, deploys every flow to it and
polls it. The run is started the way the monitor starts it, through ``RetrainTrigger``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound

from infra.local.components import prefect_env
from infra.local.stack import Stack
from monitoring.trigger import RetrainTrigger
from tests.integration.streaming.streams import wait_for
from tidemark import kafka_io
from tidemark.config import SECTIONS, Settings
from tidemark.orchestration import FLOW_NAMES, deployment_name, prefect_api, work_pool_ready
from tidemark.project.catalog import load_catalog
from tidemark.registry import writer as registry
from tidemark.scenario import generate_frame, load_scenario
from tidemark.schemas import RetrainReason, RetrainRequest, Scored, utc_now
from tidemark.store import TrainingStore

FISH = load_catalog(Path("projects")).contracts("fish-weight")


def _ready(settings: Settings) -> bool:
    try:
        work_pool_ready(settings.orchestration)
    except Exception:  # not yet: the pool, a deployment or the worker's heartbeat is missing
        return False
    return True


@pytest.fixture
def pooled(stack: Stack, tmp_path: Path) -> Iterator[Settings]:
    """Settings naming a pool of this test's own, with a worker of it running."""
    tag = uuid.uuid4().hex[:6]
    settings = stack.settings.override(
        orchestration_work_pool=f"pool-{tag}",
        orchestration_worker_poll_s=1.0,
        registry_model_name=f"worker-{tag}",
        store_collection=f"training_data_worker_{tag}",
        # Absolute: a process worker runs each flow in a folder of its own, where the default
        # relative `projects` is not found and the retrain fails (ProjectError).
        projects_dir=Path("projects").resolve(),
    )
    log = tmp_path / "worker.log"
    env = os.environ | settings.as_env(*SECTIONS) | prefect_env(settings, stack.state)
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tidemark", "worker", "--deploy"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: worker.poll() is None and _ready(settings), 180, "a worker of the pool")
        yield settings
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        # The deployments keep their names: other tests serve them without a pool.
        with prefect_api(settings.orchestration), get_client(sync_client=True) as client:
            for flow in FLOW_NAMES:
                try:
                    client.delete_deployment(
                        client.read_deployment_by_name(deployment_name(flow)).id
                    )
                except ObjectNotFound:
                    continue
            client.delete_work_pool(settings.orchestration.work_pool)
        assert worker.returncode is not None, log.read_text()


def _run(settings: Settings, run_id: str) -> FlowRun:
    with prefect_api(settings.orchestration), get_client(sync_client=True) as client:
        return client.read_flow_run(uuid.UUID(run_id))


def _store_a_few_fish(settings: Settings, start: datetime, count: int) -> None:
    """``count`` joined salmon, a second apart from ``start``: too few to judge a candidate."""
    frame = generate_frame(load_scenario(), 3, ["salmon"]).head(count)
    records = []
    for i, row in enumerate(frame.itertuples(index=False)):
        at = start + timedelta(seconds=i)
        records.append(
            Scored(
                fish_id=f"worker-{uuid.uuid4().hex[:12]}",
                species=row.species,
                length_cm=row.length_cm,
                height_cm=row.height_cm,
                measured_at=at,
                predicted_weight_kg=row.weight_kg,
                species_known=True,
                model_name=settings.registry.model_name,
                model_version="1",
                predicted_at=at,
                weight_kg=row.weight_kg,
                abs_error_kg=0.0,
                rel_error=0.0,
                joined_at=at,
            )
        )
    with TrainingStore(settings.store, FISH) as store:
        assert store.upsert_many([FISH.decode_scored(r.to_json()) for r in records]) == count


def test_a_retrain_the_monitor_starts_runs_on_a_worker_of_the_pool(pooled: Settings) -> None:
    now = utc_now()
    # Joined fish in the window, too few for evidence: the retrain ends, as it should, with
    # insufficient_evidence, registering nothing (an empty window would fail it).
    _store_a_few_fish(pooled, now - timedelta(seconds=50), 20)
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

    wait_for(lambda: (s := _run(pooled, run_id).state) is not None and s.is_final(), 240, "the run")
    run = _run(pooled, run_id)
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
