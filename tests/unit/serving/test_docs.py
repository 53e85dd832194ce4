"""The API docs: their scripts come from the server itself, and "Try it out" has real fish."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from serving.examples import typical_fish
from tidemark.scenario import load_scenario


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


def test_predict_examples_are_typical_fish_of_each_species_and_a_batch(
    client: TestClient,
) -> None:
    body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    examples = body["content"]["application/json"]["examples"]
    assert set(examples) == {"salmon", "walleye", "batch"}
    assert examples["salmon"]["value"]["length_cm"] == 70.0
    assert examples["batch"]["value"] == [examples["salmon"]["value"], examples["walleye"]["value"]]
    for name in ("salmon", "walleye"):
        answer = client.post("/predict", json=examples[name]["value"])
        assert answer.status_code == 200, answer.text
    batch = client.post("/predict", json=examples["batch"]["value"]).json()
    assert batch["count"] == 2


def test_a_typical_fish_has_its_species_mean_length_and_height() -> None:
    walleye = typical_fish(load_scenario())["walleye"]
    assert walleye["length_cm"] == 50.0
    assert walleye["height_cm"] == pytest.approx(50.0 * 0.22)
