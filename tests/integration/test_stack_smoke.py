"""The stack's four components answer Tidemark's own clients."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import mlflow
import numpy as np
import orjson
import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prefect import flow
from prefect.client.orchestration import get_client
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError
from sklearn.linear_model import LinearRegression

from infra.local.stack import Stack
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.orchestration import prefect_api
from tidemark.project.catalog import stack_catalog
from tidemark.registry.reader import RegistryReader


def test_every_component_is_healthy(stack: Stack) -> None:
    rows = stack.status()
    assert [r.name for r in rows] == ["kafka", "ferretdb", "mlflow", "prefect"]
    assert all(r.healthy for r in rows), rows


def test_every_projects_topics_exist_with_three_partitions(stack: Stack) -> None:
    catalog = stack_catalog(stack.settings.projects)
    names = [
        topic
        for project in catalog
        for topic in catalog.settings(stack.settings, project.name).kafka.topics.names
    ]
    assert "fish.measurements" in names
    client = kafka_io.admin(stack.settings.kafka)
    try:
        described = {t["name"]: t for t in client.describe_topics(names)}
    finally:
        client.close()
    assert set(described) == set(names)
    assert {len(t["partitions"]) for t in described.values()} == {3}


def test_measurement_round_trips_through_a_consumer_group(
    stack: Stack, measurement: dict[str, Any]
) -> None:
    settings = stack_catalog(stack.settings.projects).settings(stack.settings)
    topic = settings.kafka.topics.input
    producer = kafka_io.producer(settings.kafka)
    value = orjson.dumps(measurement)
    producer.send(topic, key=measurement["fish_id"].encode(), value=value).get(30)
    producer.close()

    group = f"smoke-{uuid.uuid4().hex[:8]}"
    consumer = kafka_io.consumer(settings.kafka, group, topic, consumer_timeout_ms=30_000)
    received = next(iter(consumer))
    consumer.commit()
    consumer.close()
    assert received.value == value
    assert received.key == measurement["fish_id"].encode()

    # The group committed: its offsets are the topic's ends, where the same group starts again.
    again = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, group_id=group)
    try:
        partitions = [TopicPartition(topic, p) for p in again.partitions_for_topic(topic) or []]
        ends = again.end_offsets(partitions)
        assert {p: again.committed(p) or 0 for p in partitions} == ends
    finally:
        again.close()


def test_mongo_inserts_queries_and_keeps_ids_unique(stack: Stack) -> None:
    with MongoClient(stack.settings.store.uri, serverSelectionTimeoutMS=5000) as client:
        collection = client[stack.settings.store.database]["smoke"]
        collection.insert_one({"_id": "fish-1", "species": "salmon", "weight_kg": 4.2})
        assert collection.find_one({"species": "salmon"}) == {
            "_id": "fish-1",
            "species": "salmon",
            "weight_kg": 4.2,
        }
        with pytest.raises(DuplicateKeyError):
            collection.insert_one({"_id": "fish-1", "species": "walleye"})


def test_mlflow_logs_registers_and_loads_a_model(stack: Stack) -> None:
    mlflow.set_tracking_uri(stack.settings.registry.tracking_uri)
    mlflow.set_experiment("smoke")
    x = np.array([[1.0], [2.0], [3.0]])
    model = LinearRegression().fit(x, np.array([2.0, 4.0, 6.0]))
    with mlflow.start_run():
        mlflow.log_metric("mae", 0.0)
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name="smoke-model", input_example=x[:1]
        )
    client = MlflowClient(stack.settings.registry.tracking_uri)
    client.set_registered_model_alias("smoke-model", "production", info.registered_model_version)
    # Loaded as Tidemark loads a version (skops, trusted types only); MLflow's own loader
    # deserialises nothing in a Tidemark process.
    smoke = stack.settings.registry.model_copy(update={"model_name": "smoke-model"})
    with RegistryReader(smoke) as reader:
        production = reader.alias()
        assert production is not None
        loaded = reader.load_model(production)
    assert loaded.predict(np.array([[10.0]]))[0] == pytest.approx(20.0)
    with pytest.raises(MlflowException, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        mlflow.pyfunc.load_model("models:/smoke-model@production")


@flow(name="smoke")
def _double(x: int) -> int:
    return 2 * x


async def _final_state(api_url: str, flow_run_id: uuid.UUID) -> str:
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        assert run.state is not None
        return run.state.type.value


def test_a_flow_runs_against_the_prefect_server(stack: Stack) -> None:
    import asyncio

    api = stack.settings.orchestration.api_url
    with prefect_api(stack.settings.orchestration):
        state = _double(21, return_state=True)
        assert state.result() == 42
        assert asyncio.run(_final_state(api, state.state_details.flow_run_id)) == "COMPLETED"


def test_prefect_takes_no_state_change_without_a_csrf_token_nor_another_origin(
    stack: Stack,
) -> None:
    # The flow above ran through Prefect's client, which fetched a token; a bare POST has none.
    api = stack.settings.orchestration.api_url.rstrip("/")
    refused = httpx.post(f"{api}/flows/filter", json={}, timeout=5.0)
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Missing CSRF token."}

    def preflight(origin: str) -> httpx.Response:
        headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        return httpx.options(f"{api}/flows/filter", headers=headers, timeout=5.0)

    ui = stack.settings.orchestration.ui_url
    assert preflight(ui).headers["access-control-allow-origin"] == ui
    elsewhere = preflight("http://attacker.example")
    assert elsewhere.status_code == 400
    assert "access-control-allow-origin" not in elsewhere.headers


def test_stack_status_command_reports_the_private_stack(stack: Stack) -> None:
    settings: Settings = stack.settings
    env = os.environ | {
        "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "TIDEMARK_STACK_KAFKA_CONTROLLER_PORT": str(settings.stack.kafka_controller_port),
        "TIDEMARK_STORE_URI": settings.store.uri,
        "TIDEMARK_STACK_FERRETDB_DEBUG_PORT": str(settings.stack.ferretdb_debug_port),
        "TIDEMARK_REGISTRY_TRACKING_URI": settings.registry.tracking_uri,
        "TIDEMARK_ORCHESTRATION_API_URL": settings.orchestration.api_url,
        "TIDEMARK_STACK_STATE_DIR": str(stack.state),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tidemark", "stack", "status", "--infra-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("kafka", "ferretdb", "mlflow", "prefect"):
        assert name in done.stdout
    assert settings.registry.tracking_uri in done.stdout
