"""Fixtures of the monitoring tests: a production model with its reference data, a served
``retrain/retrain`` deployment, and settings with topics of each test's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.pipeline import Pipeline

from benchmarks.fish import FISH, fish_scenario
from infra.local.stack import Stack
from tests.integration.conftest import private_settings
from tests.integration.served import served
from tidemark.config import Settings
from tidemark.modelling.training import train
from tidemark.orchestration import RETRAIN_DEPLOYMENT
from tidemark.registry.writer import REFERENCE_DIR, REFERENCE_FILE
from tidemark.simulation.generate import generate_frame


@pytest.fixture(scope="session")
def salmon_model(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Pipeline]:
    """A model of the tests' own, trained on salmon, in production, its training data logged."""
    return registered_model(stack.settings, tmp_path_factory, ["salmon"])


def registered_model(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, phases: list[str]
) -> tuple[str, Pipeline]:
    """A registered model of its own, trained on ``phases`` of the fish scenario, in
    production, its training data logged: its name and the fitted pipeline."""
    name = f"monitoring-{uuid.uuid4().hex[:6]}"
    frame = generate_frame(fish_scenario(), seed=1, phases=phases)
    fitted = train(FISH, frame, seed=0).model
    reference = tmp_path_factory.mktemp("reference") / REFERENCE_FILE
    frame.to_parquet(reference)
    mlflow.set_tracking_uri(settings.registry.tracking_uri)
    mlflow.set_experiment("monitoring-tests")
    with mlflow.start_run():
        mlflow.log_artifact(str(reference), artifact_path=REFERENCE_DIR)
        info = mlflow.sklearn.log_model(
            fitted,
            name="model",
            registered_model_name=name,
            input_example=frame.loc[:5, [f.name for f in FISH.features]],
            pip_requirements=["scikit-learn"],
        )
    MlflowClient(settings.registry.tracking_uri).set_registered_model_alias(
        name, settings.registry.production_alias, info.registered_model_version
    )
    return name, fitted


@pytest.fixture(scope="module")
def retrain_deployment(stack: Stack) -> Iterator[str]:
    """The stub retrain flow served as ``retrain/retrain`` by a process of its own.

    Module-scoped: while it runs it would take the retrain runs that other tests trigger on
    the session's Prefect server, since they all use the deployment's real name.
    """
    with served(stack, Path(__file__).with_name("retrain_stub.py"), RETRAIN_DEPLOYMENT):
        yield RETRAIN_DEPLOYMENT


@pytest.fixture
def monitored(stack: Stack, salmon_model: tuple[str, Pipeline], tmp_path: Path) -> Settings:
    """Settings with this test's topics, group and report folders, and 2-second windows."""
    return private_settings(
        stack.settings,
        uuid.uuid4().hex[:8],
        registry_model_name=salmon_model[0],
        monitor_window_s=2.0,
        monitor_allowed_lateness_s=0.5,
        stack_state_dir=tmp_path,
    )
