"""One scorer and one joiner serve every project of a stack: the fish and the penguins, on the
real stack, each with a model of its own registered; every item of both is predicted and joined
once, to its own project's topics and collection."""

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
from tests.integration.registered import register_scenario_model
from tests.integration.streaming.streams import Service, wait_for
from tests.integration.topics import read_topic, topic_size
from tidemark import kafka_io
from tidemark.config import SECTIONS, Settings
from tidemark.modelling.training import train
from tidemark.project.catalog import stack_catalog
from tidemark.project.contracts import Contracts
from tidemark.project.spec import Feature, FeatureType, Project, parse_project, save_project
from tidemark.schemas import utc_now
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario
from tidemark.store import TrainingStore

ITEMS = 60


def _value(feature: Feature, value: object) -> float | str:
    return float(value) if feature.type is FeatureType.NUMBER else str(value)  # type: ignore[arg-type]


class StackService(Service):
    """``python -m tidemark <command>`` for every project of the test's stack (no --project)."""

    def __init__(self, settings: Settings, command: str, metrics_port: int, log: Path) -> None:
        self.command = command
        self.log = log
        self.metrics_port = metrics_port
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tidemark", command, "--metrics-port", str(metrics_port)],
                env=os.environ | settings.as_env(*SECTIONS),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )


@pytest.fixture
def two_projects(stack: Stack, tmp_path: Path) -> tuple[Settings, list[Project]]:
    """Settings whose projects are a fish project and a penguin project of this test's own
    (their own names, so their topics, registered models and collections are new)."""
    tag = uuid.uuid4().hex[:6]
    folder = tmp_path / "projects"
    folder.mkdir()
    fish = parse_project(
        example("fish-weight").model_dump(mode="json")
        | {"name": f"fish-{tag}", "scenarios": str(REPO / "examples" / "fish" / "scenarios")}
        | {"topics": {"prefix": f"fish-{tag}", "input": "measurements", "truth": "weights"}},
        "the fish of a test",
    )
    penguins = parse_project(
        example("penguin-mass").model_dump(mode="json")
        | {
            "name": f"penguins-{tag}",
            "scenarios": str(REPO / "examples" / "penguins" / "scenarios"),
        },
        "the penguins of a test",
    )
    for project in (fish, penguins):
        save_project(project, folder / f"{project.name}.yaml")
    settings = stack.settings.override(
        projects_dir=str(folder),
        projects_names=f"{fish.name},{penguins.name}",
        store_database=f"projects_{tag}",
        stream_scorer_group_id=f"scorer-{tag}",
        stream_joiner_group_id=f"joiner-{tag}",
        registry_poll_interval_s=1.0,
    )
    catalog = stack_catalog(settings.projects)
    for project in (fish, penguins):
        kafka_io.ensure_topics(catalog.settings(settings, project.name).kafka)
    return settings, [fish, penguins]


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def _register(own: Settings, project: Project, rows: pd.DataFrame) -> None:
    """A model of the project trained on ``rows``, in production."""
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


def _send(own: Settings, contracts: Contracts, rows: pd.DataFrame, prefix: str) -> list[str]:
    """Each row's input and truth to the project's topics, through its contracts; the keys."""
    project = contracts.project
    now = utc_now()
    producer = kafka_io.producer(own.kafka)
    keys = []
    for index, row in rows.reset_index(drop=True).iterrows():
        key = f"{prefix}-{index}"
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
        producer.send(own.kafka.topics.input, key=key.encode(), value=orjson.dumps(item))
        producer.send(own.kafka.topics.truth, key=key.encode(), value=orjson.dumps(truth))
        keys.append(key)
    producer.flush()
    producer.close()
    return keys


def test_one_scorer_and_one_joiner_predict_and_join_every_item_of_both_projects_once(
    two_projects: tuple[Settings, list[Project]], services: list[Service], tmp_path: Path
) -> None:
    settings, (fish, penguins) = two_projects
    catalog = stack_catalog(settings.projects)
    own = {p.name: catalog.settings(settings, p.name) for p in (fish, penguins)}
    contracts = {p.name: Contracts(catalog.get(p.name)) for p in (fish, penguins)}
    assert own[fish.name].kafka.topics.input != own[penguins.name].kafka.topics.input

    penguin_rows = pd.read_csv(REPO / "examples" / "penguins" / "bootstrap.csv").dropna()
    _register(own[penguins.name], penguins, penguin_rows)
    register_scenario_model(
        own[fish.name], ["salmon", "walleye"], name=fish.name, experiment=fish.name, production=True
    )
    fish_rows = generate_frame(load_scenario(fish), 5, ["salmon"]).head(ITEMS)
    sent = {
        fish.name: _send(own[fish.name], contracts[fish.name], fish_rows, "f"),
        penguins.name: _send(
            own[penguins.name], contracts[penguins.name], penguin_rows.head(ITEMS), "p"
        ),
    }

    ports = free_ports(2)
    for command, port in zip(("score", "join"), ports, strict=True):
        services.append(StackService(settings, command, port, tmp_path / f"{command}.log"))
    wait_for(
        lambda: all(topic_size(own[n], own[n].kafka.topics.scored) >= ITEMS for n in sent),
        240,
        "every item of both projects joined",
    )

    for name, keys in sent.items():
        topics, contract = own[name].kafka.topics, contracts[name]
        predictions = [
            contract.decode_prediction(r.value) for r in read_topic(own[name], topics.predictions)
        ]
        # Every item of the project once, and no item of the other project.
        assert sorted(p.key for p in predictions) == sorted(keys)
        assert {p.model_name for p in predictions} == {name}
        scored = [contract.decode_scored(r.value) for r in read_topic(own[name], topics.scored)]
        assert sorted(s.key for s in scored) == sorted(keys)
        # A model trained on these items predicts them within a fifth of their target.
        errors = sorted(contract.error(s) for s in scored)
        assert errors[len(errors) // 2] < 0.2
        assert read_topic(own[name], topics.dead_letter) == []
        with TrainingStore(own[name].store, contract) as store:
            assert store.count() == ITEMS
    for service in services:
        assert service.alive()
        assert service.metric("tidemark_stream_loop_restarts_total") == 0.0
