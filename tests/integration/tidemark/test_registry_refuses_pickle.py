"""A version registered as a pickle runs no code in the flows: their loader refuses it.

Whoever can register a version in MLflow could otherwise get code run in the worker that loads
it. The flows load a version as the scorers do (its skops file, skops' trusted types only), and
MLflow's own loaders deserialise nothing in a Tidemark process.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from infra.local.stack import Stack
from tests.integration.registered import register_scenario_model
from tidemark.config import Settings
from tidemark.registry import writer as registry
from tidemark.registry.writer import RegistryError


class Trap(BaseEstimator):  # type: ignore[misc]
    """An estimator whose unpickling leaves a file behind: the proof that a pickle's code ran."""

    def __init__(self, mark: str = "") -> None:
        self.mark = mark

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["mark"]).write_text("code from the registry ran here\n")
        super().__setstate__(state)


@pytest.fixture(scope="module")
def settings(stack: Stack) -> Settings:
    return stack.settings.override(registry_model_name=f"pickled-{uuid.uuid4().hex[:6]}")


def _register_pickle(settings: Settings, mark: Path, *, production: bool) -> str:
    mlflow.set_tracking_uri(settings.registry.tracking_uri)
    mlflow.set_experiment("pickled")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            Pipeline([("trap", Trap(str(mark)))]),
            name="model",
            registered_model_name=settings.registry.model_name,
            serialization_format="pickle",
            pip_requirements=["scikit-learn"],
        )
    version = str(info.registered_model_version)
    if production:
        MlflowClient(settings.registry.tracking_uri).set_registered_model_alias(
            settings.registry.model_name, settings.registry.production_alias, version
        )
    return version


def test_the_flows_loader_refuses_a_pickled_version_without_running_it(
    settings: Settings, tmp_path: Path
) -> None:
    good, _ = register_scenario_model(settings, ["salmon"], experiment="pickled")
    assert isinstance(registry.load_model(settings.registry, good), Pipeline)

    mark = tmp_path / "unpickled"
    pickled = _register_pickle(settings, mark, production=True)
    with pytest.raises(RegistryError, match="not stored with skops"):
        registry.load_model(settings.registry, pickled)
    with pytest.raises(RegistryError, match="not stored with skops"):
        registry.load_model(settings.registry)  # production, which points at it
    # MLflow's own loader, in this (Tidemark) process, refuses it as well.
    with pytest.raises(MlflowException, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        mlflow.sklearn.load_model(f"models:/{settings.registry.model_name}/{pickled}")
    assert not mark.exists()


def test_a_missing_version_is_a_registry_error(settings: Settings) -> None:
    with pytest.raises(RegistryError, match="has no version 999"):
        registry.load_model(settings.registry, "999")
