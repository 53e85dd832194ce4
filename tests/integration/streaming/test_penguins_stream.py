"""The scorer and the joiner run another project unchanged: the penguins, on the real stack,
with a model of the project's own registered, each process serving one project (--project)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import mlflow
import orjson
import pandas as pd
import pytest
from mlflow import MlflowClient

from infra.local.stack import Stack
from tests.integration.conftest import free_ports
from tests.integration.projects import REPO, example
from tests.integration.streaming.streams import (
    Service,
    wait_for,
)
from tests.integration.topics import read_topic, topic_size
from tidemark import kafka_io
from tidemark.config import SECTIONS, Settings
from tidemark.modelling.training import train
from tidemark.project.catalog import stack_catalog
from tidemark.project.contracts import Contracts
from tidemark.project.spec import Feature, FeatureType, Project, parse_project, save_project
from tidemark.schemas import utc_now
from tidemark.store import TrainingStore

ITEMS = 60


def _value(feature: Feature, value: object) -> float | str:
    return float(value) if feature.type is FeatureType.NUMBER else str(value)  # type: ignore[arg-type]


class ProjectService(Service):
    """``python -m tidemark <command> --project NAME`` against the test stack."""

    def __init__(
        self, settings: Settings, command: str, project: str, metrics_port: int, log: Path
    ) -> None:
        self.command = command
        self.log = log
        self.metrics_port = metrics_port
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tidemark",
                    command,
                    "--project",
                    project,
                    "--metrics-port",
                    str(metrics_port),
                ],
                env=os.environ | settings.as_env(*SECTIONS),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )


@pytest.fixture
def penguins(stack: Stack, tmp_path: Path) -> tuple[Settings, Project]:
    """Settings whose projects are the fish and a penguin project of this test's own (its own
    name, so its topics, registered model and collection are new)."""
    tag = uuid.uuid4().hex[:6]
    folder = tmp_path / "projects"
    folder.mkdir()
    scenarios = {"scenarios": str(REPO / "examples" / "penguins" / "scenarios")}
    project = parse_project(
        example("penguin-mass").model_dump(mode="json") | scenarios | {"name": f"penguins-{tag}"},
        "the penguins of a test",
    )
    fish = example("fish-weight")
    fish = parse_project(
        fish.model_dump(mode="json") | {"scenarios": str(REPO / "examples" / "fish")}, "the fish"
    )
    save_project(fish, folder / "fish-weight.yaml")
    save_project(project, folder / f"{project.name}.yaml")
    settings = stack.settings.override(
        projects_dir=str(folder),
        projects_names=f"fish-weight,{project.name}",
        store_database=f"penguins_{tag}",
    )
    own = stack_catalog(settings.projects).settings(settings, project.name)
    kafka_io.ensure_topics(own.kafka)
    return settings, project


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def test_the_penguins_are_predicted_and_joined_by_the_same_scorer_and_joiner(
    penguins: tuple[Settings, Project], services: list[Service], tmp_path: Path
) -> None:
    settings, project = penguins
    catalog = stack_catalog(settings.projects)
    own = catalog.settings(settings, project.name)
    contracts = Contracts(catalog.get(project.name))
    topics = own.kafka.topics
    assert topics.input != settings.kafka.topics.input

    rows = pd.read_csv(REPO / "examples" / "penguins" / "bootstrap.csv").dropna()
    fitted = train(project, rows, seed=0)
    mlflow.set_tracking_uri(own.registry.tracking_uri)
    mlflow.set_experiment(project.name)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            fitted.model,
            name="model",
            registered_model_name=own.registry.model_name,
            pip_requirements=["scikit-learn"],
        )
    MlflowClient(own.registry.tracking_uri).set_registered_model_alias(
        own.registry.model_name, own.registry.production_alias, str(info.registered_model_version)
    )

    now = utc_now()
    producer = kafka_io.producer(own.kafka)
    sent = rows.head(ITEMS).reset_index(drop=True)
    for index, row in sent.iterrows():
        key = f"p-{index}"
        item: dict[str, object] = {project.key: key, project.times.input: now.isoformat()}
        item |= {f.name: _value(f, row[f.name]) for f in project.features}
        truth: dict[str, object] = {
            project.key: key,
            project.target.name: float(row[project.target.name]),
            project.times.truth: (now + timedelta(seconds=3)).isoformat(),
        }
        truth |= {
            f.name: _value(f, row[f.name])
            for f in project.features
            if f.name in project.truth_fields
        }
        # Through the contracts: what is sent is what a project's producer would send.
        contracts.input.model_validate(item)
        contracts.truth.model_validate(truth)
        producer.send(topics.input, key=key.encode(), value=orjson.dumps(item))
        producer.send(topics.truth, key=key.encode(), value=orjson.dumps(truth))
    producer.flush()
    producer.close()

    ports = free_ports(2)
    for command, port in zip(("score", "join"), ports, strict=True):
        services.append(
            ProjectService(settings, command, project.name, port, tmp_path / f"{command}.log")
        )
    wait_for(lambda: topic_size(own, topics.scored) >= ITEMS, 240, "every penguin joined")

    predictions = [
        contracts.decode_prediction(r.value) for r in read_topic(own, topics.predictions)
    ]
    assert sorted(p.key for p in predictions) == sorted(f"p-{i}" for i in range(ITEMS))
    assert {p.model_name for p in predictions} == {project.name}
    scored = [contracts.decode_scored(r.value) for r in read_topic(own, topics.scored)]
    assert sorted(s.key for s in scored) == sorted(f"p-{i}" for i in range(ITEMS))
    # A model trained on these penguins predicts them within a fifth of their mass.
    errors = sorted(contracts.error(s) for s in scored)
    assert errors[len(errors) // 2] < 0.2
    assert read_topic(own, topics.dead_letter) == []
    with TrainingStore(own.store, contracts) as store:
        assert store.count() == ITEMS
    for service in services:
        assert service.alive()
        assert service.metric("tidemark_stream_loop_restarts_total") == 0.0
