"""The API docs: their scripts come from the server itself, and "Try it out" has real fish."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from benchmarks.fish import FISH, fish_scenario
from serving.examples import project_examples
from tidemark.project.contracts import FieldNames
from tidemark.simulation.generate import generate_frame


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_every_asset_from_the_server(client: TestClient, page: str) -> None:
    html = client.get(page).text
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 1000, asset


def test_predict_examples_are_typical_items_of_each_segment_and_a_batch(
    client: TestClient,
) -> None:
    body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    examples = body["content"]["application/json"]["examples"]
    # The fish project's default scenario brings salmon, then walleye.
    assert set(examples) == {"salmon", "walleye", "batch"}
    assert examples["salmon"]["value"][FISH.segment] == "salmon"
    assert examples["batch"]["value"] == [examples["salmon"]["value"], examples["walleye"]["value"]]
    for name in ("salmon", "walleye"):
        answer = client.post("/predict", json=examples[name]["value"])
        assert answer.status_code == 200, answer.text
    batch = client.post("/predict", json=examples["batch"]["value"]).json()
    assert batch["count"] == 2


def test_a_typical_item_has_its_segments_median_features() -> None:
    walleye = project_examples(FISH)["walleye"]["value"]
    frame = generate_frame(fish_scenario(), seed=0)
    drawn = frame[frame[FISH.segment] == "walleye"]
    for feature in FISH.features:
        if feature.name != FISH.segment:
            assert walleye[feature.name] == pytest.approx(drawn[feature.name].median(), rel=0.02)
    assert walleye[FISH.key] == "example-walleye"


def test_the_predict_route_is_documented_with_the_projects_field_names(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    answer = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]
    refs = [ref["$ref"].rsplit("/", 1)[1] for ref in answer["schema"]["anyOf"]]
    (name,) = [ref for ref in refs if ref.endswith("PredictionResponse")]
    single = spec["components"]["schemas"][name]["properties"]
    names = FieldNames.of(FISH)
    assert {FISH.key, FISH.segment, names.predicted, names.known} <= set(single)
    request = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    one = request["schema"]["oneOf"][0]["properties"]
    assert set(one) == {FISH.key, *(f.name for f in FISH.features)}
