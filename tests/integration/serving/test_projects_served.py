"""The server speaks of every project on the real registry: a real ``tidemark serve`` lists the
stack's projects, predicts for the penguins with their own model (read from MLflow, never
unpickled), follows that model's promotion, and keeps answering /predict for the default one."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from mlflow import MlflowClient

from infra.local.components import venv_bin
from infra.local.stack import Stack
from tests.integration.conftest import free_ports
from tests.integration.registered import register_scenario_model
from tidemark.config import Settings
from tidemark.modelling.frames import frame_of
from tidemark.modelling.storage import TRUSTED_TYPES
from tidemark.modelling.training import predict, train
from tidemark.project.catalog import load_catalog
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario

PROJECTS = Path("projects").resolve()
PENGUINS = load_catalog(PROJECTS).get("penguin-mass")
ADELIE = {
    "penguin_id": "p-1", "species": "Adelie", "island": "Torgersen", "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7, "flipper_length_mm": 181.0, "sex": "male",
}  # fmt: skip
SALMON = {"fish_id": "f-1", "species": "salmon", "length_cm": 70.0, "height_cm": 17.0}


@dataclass
class Served:
    url: str
    settings: Settings
    penguin_models: dict[str, Any]


def register_penguins(settings: Settings, phases: int, alias: bool) -> tuple[str, Any]:
    """Train the penguins' default model on the first ``phases`` phases of their scenario and
    register it under the project's model name; returns (version, model)."""
    scenario = load_scenario(PENGUINS)
    frame = generate_frame(scenario, 3, [p.name for p in scenario.phases[:phases]])
    model = train(PENGUINS, frame, seed=0).model
    mlflow.set_tracking_uri(settings.registry.tracking_uri)
    mlflow.set_experiment("served-projects")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=PENGUINS.name,
            skops_trusted_types=list(TRUSTED_TYPES),
            pip_requirements=["scikit-learn"],
        )
    version = str(info.registered_model_version)
    if alias:
        MlflowClient(settings.registry.tracking_uri).set_registered_model_alias(
            PENGUINS.name, "production", version
        )
    return version, model


@pytest.fixture(scope="module")
def served(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``tidemark serve`` with the repository's projects: the default one under a model name
    of this module's own, the penguins under theirs, each with a version in production."""
    settings = stack.settings.override(
        registry_model_name=f"served-{uuid.uuid4().hex[:6]}", serving_port=free_ports(1)[0]
    )
    register_scenario_model(settings, ["salmon"], experiment="served-projects", production=True)
    version, model = register_penguins(settings, 1, alias=True)
    env = os.environ | {
        "TIDEMARK_REGISTRY_TRACKING_URI": settings.registry.tracking_uri,
        "TIDEMARK_REGISTRY_MODEL_NAME": settings.registry.model_name,
        "TIDEMARK_REGISTRY_POLL_INTERVAL_S": "0.5",
        "TIDEMARK_SERVING_PORT": str(settings.serving.port),
        "TIDEMARK_SERVING_ADMIN_TOKEN": "served-projects-token",
        "TIDEMARK_PROJECTS_DIR": str(PROJECTS),
    }
    workdir = tmp_path_factory.mktemp("served-projects")
    with (workdir / "serving.log").open("w") as log:
        process = subprocess.Popen(
            [venv_bin("tidemark"), "serve"], env=env, cwd=workdir, stdout=log, stderr=log
        )
        try:
            url = settings.serving.url
            wait_for(lambda: _versions(url).get(PENGUINS.name) == version, "the penguins' model")
            yield Served(url, settings, {version: model})
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_for(condition: Any, what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def _versions(url: str) -> dict[str, str | None]:
    listed = httpx.get(f"{url}/models", timeout=10).json()
    return {m["project"]: m["production_version"] for m in listed}


def test_models_lists_each_project_with_its_version(served: Served) -> None:
    listed = {m["project"]: m for m in httpx.get(f"{served.url}/models", timeout=10).json()}
    default = next(iter(listed.values()))
    assert default["default"] is True
    assert default["model_name"] == served.settings.registry.model_name
    assert default["production_version"] == "1"
    penguins = listed[PENGUINS.name]
    assert penguins["production_version"] in served.penguin_models
    assert "flipper_length_mm" in penguins["input_schema"]["properties"]


def test_the_penguins_are_predicted_by_their_own_model(served: Served) -> None:
    ((version, model),) = served.penguin_models.items()
    answer = httpx.post(f"{served.url}/models/{PENGUINS.name}/predict", json=ADELIE, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = predict(PENGUINS, model, frame_of(PENGUINS, [ADELIE])).values[0]
    assert body["model_version"] == answer.headers["x-model-version"] == version
    assert body["predicted_body_mass_g"] == pytest.approx(expected, rel=1e-9)
    assert body["species_known"] is True
    refused = httpx.post(
        f"{served.url}/models/{PENGUINS.name}/predict",
        json={**ADELIE, "island": "Atlantis"},
        timeout=10,
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "island"


def test_predict_keeps_answering_the_default_project(served: Served) -> None:
    theirs = httpx.post(f"{served.url}/predict", json=SALMON, timeout=10)
    assert theirs.status_code == 200
    assert theirs.json()["model_version"] == "1"
    ours = httpx.post(f"{served.url}/models/fish-weight/predict", json=SALMON, timeout=10)
    assert ours.content == theirs.content


def test_the_penguins_model_is_followed_on_promotion(served: Served) -> None:
    version, model = register_penguins(served.settings, 2, alias=True)
    wait_for(lambda: _versions(served.url)[PENGUINS.name] == version, "the promoted version")
    gentoo = {**ADELIE, "species": "Gentoo", "island": "Biscoe", "flipper_length_mm": 217.0}
    body = httpx.post(
        f"{served.url}/models/{PENGUINS.name}/predict", json=[ADELIE, gentoo], timeout=10
    ).json()
    assert body["model_version"] == version
    expected = predict(PENGUINS, model, frame_of(PENGUINS, [ADELIE, gentoo])).values
    assert [p["predicted_body_mass_g"] for p in body["predictions"]] == pytest.approx(
        expected.tolist(), rel=1e-9
    )


def test_the_docs_show_each_projects_examples(served: Served) -> None:
    paths = httpx.get(f"{served.url}/openapi.json", timeout=10).json()["paths"]
    body = paths[f"/models/{PENGUINS.name}/predict"]["post"]["requestBody"]
    assert "Adelie" in body["content"]["application/json"]["examples"]
