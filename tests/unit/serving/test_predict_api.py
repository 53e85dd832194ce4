"""POST /predict through the whole app: answers, versions, and every kind of bad input."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline

from benchmarks.fish import FISH
from tests.unit.serving.conftest import MAX_BATCH, MAX_BODY_BYTES
from tidemark.modelling.training import predict

SALMON: dict[str, Any] = {"species": "salmon", "length_cm": 70.0, "height_cm": 17.0}


def post_raw(client: TestClient, body: bytes | str) -> Any:
    return client.post("/predict", content=body, headers={"content-type": "application/json"})


def test_one_fish_gets_the_pipelines_weight_and_the_version(
    client: TestClient, salmon_model: Pipeline
) -> None:
    response = client.post("/predict", json={**SALMON, "fish_id": "f-1"})
    assert response.status_code == 200
    body = response.json()
    expected = predict(FISH, salmon_model, pd.DataFrame([SALMON])).values[0]
    assert body["predicted_weight_kg"] == pytest.approx(expected, rel=1e-12)
    assert body["fish_id"] == "f-1"
    assert body["species_known"] is True
    assert (body["model_name"], body["model_version"]) == ("fish-weight", "1")
    assert response.headers["x-model-version"] == "1"


def test_a_batch_is_answered_in_order(client: TestClient, salmon_model: Pipeline) -> None:
    fish = [
        {"species": "Salmon", "length_cm": 50.0 + i, "height_cm": 12.0 + i / 10} for i in range(30)
    ]
    response = client.post("/predict", json=fish)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 30
    assert body["model_version"] == "1"
    frame = pd.DataFrame(fish).assign(species="salmon")
    expected = predict(FISH, salmon_model, frame).values
    got = np.array([p["predicted_weight_kg"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert {p["species"] for p in body["predictions"]} == {"salmon"}


def test_an_unknown_species_is_answered_and_flagged(client: TestClient) -> None:
    response = client.post("/predict", json={**SALMON, "species": "walleye"})
    assert response.status_code == 200
    body = response.json()
    assert body["species_known"] is False
    assert body["predicted_weight_kg"] > 0


def test_a_single_row_batch_is_still_a_batch(client: TestClient) -> None:
    body = client.post("/predict", json=[SALMON]).json()
    assert body["count"] == 1
    assert len(body["predictions"]) == 1


def assert_refused(response: Any, field: str, reason: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    fields = {e["field"]: e["reason"] for e in body["errors"]}
    assert field in fields, body
    assert reason.lower() in fields[field].lower(), body
    assert field in body["detail"]


@pytest.mark.parametrize(
    ("fish", "field", "reason"),
    [
        ({"species": "salmon", "height_cm": 17.0}, "length_cm", "Field required"),
        ({**SALMON, "colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({**SALMON, "length_cm": "70"}, "length_cm", "valid number"),
        ({**SALMON, "species": 7}, "species", "valid string"),
        ({**SALMON, "length_cm": -70.0}, "length_cm", "greater than 0"),
        ({**SALMON, "height_cm": 0}, "height_cm", "greater than 0"),
        ({**SALMON, "length_cm": 70_000.0}, "length_cm", "less than or equal to 800"),
        ({**SALMON, "height_cm": 1e30}, "height_cm", "less than or equal to 300"),
        ({**SALMON, "species": ""}, "species", "at least 1 character"),
        ({**SALMON, "fish_id": "no spaces allowed"}, "fish_id", "match pattern"),
    ],
)
def test_bad_fields_are_refused_naming_field_and_reason(
    client: TestClient, fish: dict[str, Any], field: str, reason: str
) -> None:
    assert_refused(client.post("/predict", json=fish), field, reason)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client: TestClient, literal: str) -> None:
    raw = f'{{"species": "salmon", "length_cm": {literal}, "height_cm": 17.0}}'
    assert_refused(post_raw(client, raw), "length_cm", "finite number")


def test_malformed_json_is_refused(client: TestClient) -> None:
    response = post_raw(client, b'{"species": "salmon", "length_cm": 70.0,')
    assert_refused(response, "body", "Invalid JSON")


@pytest.mark.parametrize("raw", ["", "42", '"salmon"', "null"])
def test_a_body_that_is_no_fish_is_refused(client: TestClient, raw: str) -> None:
    response = post_raw(client, raw)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


def test_a_bad_fish_in_a_batch_is_named_by_position(client: TestClient) -> None:
    batch = [SALMON, SALMON, {**SALMON, "height_cm": -1.0}]
    assert_refused(client.post("/predict", json=batch), "2.height_cm", "greater than 0")


def test_an_empty_batch_is_refused(client: TestClient) -> None:
    assert_refused(client.post("/predict", json=[]), "body", "at least 1 item")


def test_a_batch_over_the_limit_is_refused(client: TestClient) -> None:
    response = client.post("/predict", json=[SALMON] * (MAX_BATCH + 1))
    assert_refused(response, "body", f"at most {MAX_BATCH} items")


def test_a_batch_at_the_limit_is_answered(client: TestClient) -> None:
    response = client.post("/predict", json=[SALMON] * MAX_BATCH)
    assert response.status_code == 200
    assert response.json()["count"] == MAX_BATCH


def test_many_bad_rows_give_a_bounded_answer(client: TestClient) -> None:
    response = client.post("/predict", json=[{**SALMON, "length_cm": -1.0}] * MAX_BATCH)
    body = response.json()
    assert response.status_code == 422
    assert len(body["errors"]) == 20
    assert body["detail"].endswith(f"and {MAX_BATCH - 20} more errors")


def test_an_oversized_body_is_refused_with_413(client: TestClient) -> None:
    padding = " " * MAX_BODY_BYTES
    response = post_raw(client, json.dumps(SALMON) + padding)
    assert response.status_code == 413
    assert f"larger than {MAX_BODY_BYTES} bytes" in response.json()["detail"]


def test_an_oversized_chunked_body_is_refused_with_413(client: TestClient) -> None:
    chunks = (b" " * 4096 for _ in range(MAX_BODY_BYTES // 4096 + 2))
    response = client.post("/predict", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_absurdly_small_sizes_that_give_no_weight_are_refused(client: TestClient) -> None:
    response = client.post("/predict", json={**SALMON, "length_cm": 1e-300, "height_cm": 1e-300})
    assert response.status_code == 422
    assert "no usable weight" in response.json()["detail"]
