"""Register models of the tests' own in the session stack's MLflow registry.

Tests move aliases with MlflowClient themselves where the point is the registry's reaction;
the platform's own registry code (tidemark.registry.writer, flows/) is tested in test_registry_loop.
"""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from sklearn.pipeline import Pipeline

from tests.integration.projects import example
from tidemark.config import Settings
from tidemark.modelling.training import train
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario


def register_scenario_model(
    settings: Settings,
    phases: list[str],
    *,
    name: str | None = None,
    experiment: str = "integration-tests",
    production: bool = False,
    tags: dict[str, str] | None = None,
) -> tuple[str, Pipeline]:
    """Train the platform's default model on phases of the example project's default scenario,
    register a version; returns (version, model)."""
    name = name or settings.registry.model_name
    project = example("fish-weight")
    frame = generate_frame(load_scenario(project), seed=1, phases=phases)
    fitted = train(project, frame, seed=0).model
    mlflow.set_tracking_uri(settings.registry.tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            fitted,
            name="model",
            registered_model_name=name,
            input_example=frame.loc[:5, [f.name for f in project.features]],
            # Explicit requirements spare log_model a subprocess that re-loads the model.
            pip_requirements=["scikit-learn"],
        )
    version = str(info.registered_model_version)
    client = MlflowClient(settings.registry.tracking_uri)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, value)
    if production:
        client.set_registered_model_alias(name, settings.registry.production_alias, version)
    return version, fitted
