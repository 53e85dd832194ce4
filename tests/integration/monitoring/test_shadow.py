"""Shadow evaluation on the real stack: the monitor judges a challenger on ``fish.scored`` and
the served ``shadow-verdict`` flow carries its verdict out in the MLflow registry.

The scored records are synthetic (scored by the salmon model, the challenger's answer a scaled
copy), so each test chooses how much better or worse the challenger is; the registry, Kafka,
Prefect and the monitor are real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from sklearn.pipeline import Pipeline

from infra.local.components import prefect_env
from infra.local.stack import Stack
from tests.integration.monitoring.fish import produce, scored_fish, window_aligned_start
from tests.integration.monitoring.test_monitor import run_monitor
from tidemark import kafka_io, registry
from tidemark.config import Settings
from tidemark.model import FEATURES
from tidemark.orchestration import SHADOW_VERDICT_DEPLOYMENT, prefect_api
from tidemark.scenario import generate_frame, load_scenario
from tidemark.schemas import ModelDecision, ModelEvent, Scored, ShadowVerdict

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def verdict_deployment(stack: Stack) -> Iterator[None]:
    """``shadow-verdict/shadow-verdict`` served by a process of its own, on this stack."""
    settings = stack.settings
    env = (
        os.environ
        | prefect_env(settings, stack.state)
        | {
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "TIDEMARK_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        }
    )
    # Each test's model has a name of its own: the flow takes it from the decision.
    server = Path(__file__).with_name("shadow_verdict_server.py")
    process = subprocess.Popen([sys.executable, str(server)], env=env)
    try:
        deadline = time.monotonic() + 300
        with prefect_api(settings):
            while True:
                assert process.poll() is None, "the shadow-verdict server exited"
                assert time.monotonic() < deadline, "shadow-verdict not served within 300 s"
                try:
                    with get_client(sync_client=True) as client:
                        client.read_deployment_by_name(SHADOW_VERDICT_DEPLOYMENT)
                    break
                except ObjectNotFound:
                    time.sleep(1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def shadowed(
    monitored: Settings, salmon_model: tuple[str, Pipeline], verdict_deployment: None
) -> Settings:
    """A model of its own with v1 in production and v2 in shadow, a small shadow_min_fish."""
    settings = monitored.model_copy(
        update={
            "model_name": f"shadow-{uuid.uuid4().hex[:6]}",
            "topic_model_decisions": f"{uuid.uuid4().hex[:8]}.fish.model-decisions",
            "shadow_min_fish": 50,
        }
    )
    kafka_io.ensure_topics(settings)
    frame = generate_frame(load_scenario(), seed=1, phases=["salmon"])
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment("shadow-tests")
    for _ in range(2):
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                salmon_model[1],
                name="model",
                registered_model_name=settings.model_name,
                input_example=frame.loc[:5, list(FEATURES)],
                pip_requirements=["scikit-learn"],
            )
    MlflowClient(settings.mlflow_tracking_uri).set_registered_model_alias(
        settings.model_name, settings.production_alias, "1"
    )
    registry.set_challenger(settings, "2", reason="shadow test")
    return settings


def with_challenger(records: list[Scored], scale: float) -> list[Scored]:
    """The records with v2's answer in shadow: production's error scaled by ``scale``."""
    shadowed = []
    for record in records:
        other = record.weight_kg + (record.predicted_weight_kg - record.weight_kg) * scale
        other = max(other, 0.001)
        error = abs(other - record.weight_kg)
        shadowed.append(
            record.model_copy(
                update={
                    "challenger_version": "2",
                    "challenger_predicted_weight_kg": other,
                    "challenger_abs_error_kg": error,
                    "challenger_rel_error": error / record.weight_kg,
                }
            )
        )
    return shadowed


def decisions(settings: Settings) -> list[ModelDecision]:
    consumer = kafka_io.consumer(
        settings, f"check-{uuid.uuid4().hex[:6]}", settings.topic_model_decisions,
        consumer_timeout_ms=8_000,
    )  # fmt: skip
    try:
        return [ModelDecision.from_json(m.value) for m in consumer]
    finally:
        consumer.close()


def wait_for(condition: str, check: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {condition}"
        time.sleep(1)


def test_a_worse_challenger_is_retired_and_never_promoted(
    shadowed: Settings, salmon_model: tuple[str, Pipeline]
) -> None:
    first = window_aligned_start(shadowed)
    fish = scored_fish(salmon_model[1], "1", "salmon", 8, first, shadowed, bias=1.05)
    produce(shadowed, with_challenger(fish, scale=3.0))
    run_monitor(shadowed, until=lambda verdicts: len(verdicts) >= 7)

    wait_for("v2 leaves shadow", lambda: registry.challenger_version(shadowed) is None)
    assert registry.production_version(shadowed) == "1"
    tags = registry.version_info(shadowed, "2").tags
    assert tags["shadow_verdict"] == ShadowVerdict.RETIRE.value
    assert int(tags["shadow_n"]) >= shadowed.shadow_min_fish
    [decision] = decisions(shadowed)
    assert (decision.kind, decision.champion_version, decision.challenger_version) == (
        ModelEvent.RETIREMENT,
        "1",
        "2",
    )
    assert decision.p_value is not None
    assert decision.p_value <= shadowed.shadow_alpha


def test_a_better_challenger_is_promoted_on_the_live_evidence(
    shadowed: Settings, salmon_model: tuple[str, Pipeline]
) -> None:
    first = window_aligned_start(shadowed)
    fish = scored_fish(salmon_model[1], "1", "salmon", 8, first, shadowed, bias=1.05)
    produce(shadowed, with_challenger(fish, scale=0.2))
    run_monitor(shadowed, until=lambda verdicts: len(verdicts) >= 7)

    wait_for("v2 in production", lambda: registry.production_version(shadowed) == "2")
    assert registry.challenger_version(shadowed) is None
    [decision] = decisions(shadowed)
    assert decision.kind is ModelEvent.PROMOTION
    assert decision.n >= shadowed.shadow_min_fish
