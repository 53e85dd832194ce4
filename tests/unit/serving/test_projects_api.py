"""GET /models and POST /models/{name}/predict: every project of the stack, each with its own
contracts, model and documented examples; the default project's path is /predict itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.project_models import ProjectModels
from serving.projects import ServedProject, ServedProjects
from tests.unit.serving.conftest import InMemorySource
from tidemark.config import ProjectsSettings, Settings
from tidemark.modelling.default import known_segments
from tidemark.modelling.frames import frame_of
from tidemark.modelling.training import predict, train
from tidemark.registry.watcher import ServedModel
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario

ADELIE = {
    "penguin_id": "p-1", "species": "Adelie", "island": "Torgersen", "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7, "flipper_length_mm": 181.0, "sex": "male",
}  # fmt: skip
GENTOO = {
    "species": "Gentoo", "island": "Biscoe", "bill_length_mm": 47.5, "bill_depth_mm": 15.0,
    "flipper_length_mm": 217.0,
}  # fmt: skip
SALMON = {"fish_id": "f-1", "species": "salmon", "length_cm": 70.0, "height_cm": 17.0}


@pytest.fixture(scope="module")
def penguins() -> tuple[ServedProject, Any]:
    served = ServedProjects(Settings()).find("penguin-mass")
    assert served is not None
    scenario = load_scenario(served.project)
    frame = generate_frame(scenario, 1, [scenario.phases[0].name])
    return served, train(served.project, frame, seed=0).model


@pytest.fixture
def models(settings: Settings) -> ProjectModels:
    return ProjectModels(ServedProjects(settings).all, 1.0, follow=False)


@pytest.fixture
def projects_client(
    settings: Settings, source: InMemorySource, models: ProjectModels
) -> Iterator[TestClient]:
    with TestClient(create_app(settings, source, project_models=models)) as test_client:
        yield test_client


def test_models_lists_every_project_with_its_version_and_input(
    projects_client: TestClient, models: ProjectModels, penguins: tuple[ServedProject, Any]
) -> None:
    listed = {m["project"]: m for m in projects_client.get("/models").json()}
    assert listed["penguin-mass"]["production_version"] is None
    models.swap(penguins[0], "3", "run-3", penguins[1])
    listed = {m["project"]: m for m in projects_client.get("/models").json()}
    assert list(listed) == ["fish-weight", "penguin-mass"]
    fish, penguin = listed["fish-weight"], listed["penguin-mass"]
    assert (fish["default"], fish["production_version"]) == (True, "1")
    assert (penguin["default"], penguin["production_version"]) == (False, "3")
    assert penguin["predict_path"] == "/models/penguin-mass/predict"
    assert (penguin["target"], penguin["unit"], penguin["segment"]) == (
        "body_mass_g",
        "g",
        "species",
    )
    schema = penguin["input_schema"]
    assert set(schema["required"]) == {
        "species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
    }  # fmt: skip
    assert "sex" in schema["properties"]
    assert "measured_at" not in schema["properties"]


def test_a_project_predicts_with_its_own_model_and_names(
    projects_client: TestClient, models: ProjectModels, penguins: tuple[ServedProject, Any]
) -> None:
    served, model = penguins
    models.swap(served, "3", "run-3", model)
    answer = projects_client.post("/models/penguin-mass/predict", json=ADELIE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert answer.headers["x-model-version"] == "3"
    expected = predict(served.project, model, frame_of(served.project, [ADELIE]))
    assert body == {
        "model_name": "penguin-mass", "model_version": "3", "penguin_id": "p-1",
        "species": "Adelie", "predicted_body_mass_g": pytest.approx(expected.values[0]),
        "species_known": True,
    }  # fmt: skip
    batch = projects_client.post("/models/penguin-mass/predict", json=[ADELIE, GENTOO]).json()
    assert batch["count"] == 2
    # The first phase has no Gentoo: the shared law answers, flagged.
    assert [p["species_known"] for p in batch["predictions"]] == [True, False]
    assert batch["predictions"][1]["penguin_id"] is None


def test_a_project_refuses_what_its_contract_refuses(
    projects_client: TestClient, models: ProjectModels, penguins: tuple[ServedProject, Any]
) -> None:
    models.swap(*penguins[:1], "3", "run-3", penguins[1])
    for bad, field in (
        ({**ADELIE, "bill_length_mm": -1.0}, "bill_length_mm"),
        ({**ADELIE, "island": "Atlantis"}, "island"),
        ({**ADELIE, "length_cm": 3.0}, "length_cm"),
        ({k: v for k, v in ADELIE.items() if k != "flipper_length_mm"}, "flipper_length_mm"),
    ):
        answer = projects_client.post("/models/penguin-mass/predict", json=bad)
        assert answer.status_code == 422, bad
        assert [e["field"] for e in answer.json()["errors"]] == [field]
    answer = projects_client.post(
        "/models/penguin-mass/predict", json=[ADELIE, {**GENTOO, "sex": "x"}]
    )
    assert [e["field"] for e in answer.json()["errors"]] == ["1.sex"]


def test_a_project_without_a_model_yet_is_503(projects_client: TestClient) -> None:
    answer = projects_client.post("/models/penguin-mass/predict", json=ADELIE)
    assert answer.status_code == 503
    assert "penguin-mass" in answer.json()["detail"]


def test_the_default_projects_path_is_predict_itself(projects_client: TestClient) -> None:
    ours = projects_client.post("/models/fish-weight/predict", json=SALMON)
    theirs = projects_client.post("/predict", json=SALMON)
    assert ours.status_code == 200
    assert ours.content == theirs.content
    assert ours.headers["x-model-version"] == theirs.headers["x-model-version"] == "1"


def test_an_unknown_project_is_404_naming_the_projects(projects_client: TestClient) -> None:
    answer = projects_client.post("/models/loaves/predict", json=SALMON)
    assert answer.status_code == 404
    assert "fish-weight, penguin-mass" in answer.json()["detail"]


def test_each_project_is_documented_with_its_own_examples(projects_client: TestClient) -> None:
    paths = projects_client.get("/openapi.json").json()["paths"]
    body = paths["/models/penguin-mass/predict"]["post"]["requestBody"]["content"]
    examples = body["application/json"]["examples"]
    assert {"Adelie", "Chinstrap", "batch"} <= set(examples)
    assert examples["Adelie"]["value"]["species"] == "Adelie"
    assert (
        "salmon"
        in paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    )
    fish = paths["/models/fish-weight/predict"]["post"]["requestBody"]
    assert fish == paths["/predict"]["post"]["requestBody"]
    assert "/models/{name}/predict" not in paths


def test_predict_answers_for_whichever_project_is_the_default(
    settings: Settings, penguins: tuple[ServedProject, Any]
) -> None:
    project, model = penguins[0].project, penguins[1]
    penguins_first = settings.model_copy(
        update={"projects": ProjectsSettings(names="penguin-mass,fish-weight")}
    )
    source = InMemorySource()
    source.publish(
        ServedModel(
            name="penguin-mass",
            version="5",
            run_id="run-5",
            model=model,
            project=project,
            segments=known_segments(project, model),
            loaded_at=datetime.now(UTC),
            tags={},
        )
    )
    with TestClient(create_app(penguins_first, source)) as client:
        answer = client.post("/predict", json=ADELIE)
        assert answer.status_code == 200, answer.text
        expected = predict(project, model, frame_of(project, [ADELIE])).values[0]
        assert answer.json() == {
            "model_name": "penguin-mass", "model_version": "5", "penguin_id": "p-1",
            "species": "Adelie", "predicted_body_mass_g": pytest.approx(expected),
            "species_known": True,
        }  # fmt: skip
        refused = client.post("/predict", json=[ADELIE, {**GENTOO, "bill_depth_mm": -2.0}])
        assert [e["field"] for e in refused.json()["errors"]] == ["1.bill_depth_mm"]
        assert client.post("/predict", json=SALMON).status_code == 422
        paths = client.get("/openapi.json").json()["paths"]
        examples = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]
        assert examples["examples"]["Adelie"]["value"]["species"] == "Adelie"
        assert client.get("/model").json()["known_segments"] == ["Adelie", "Chinstrap"]
        text = client.get("/metrics").text
        assert (
            'tidemark_serving_predictions_total{model_version="5",project="penguin-mass",'
            'segment="Adelie"} 1.0'
        ) in text
