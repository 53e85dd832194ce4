"""Health, readiness, model metadata, metrics, reload and swaps, against an in-memory registry."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline

from benchmarks.fish import FISH
from serving.app import create_app
from tests.unit.serving.conftest import ADMIN_TOKEN, InMemorySource, served
from tidemark.config import Settings
from tidemark.judging.shadow import ShadowEvaluation, ShadowRules
from tidemark.registry.reader import RegistryUnavailableError, VersionRef

SALMON = {"species": "salmon", "length_cm": 70.0, "height_cm": 17.0}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_health_and_ready_with_a_model(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["model_version"] == "1"
    assert "serving version 1" in ready.json()["reason"]


def test_without_a_production_model_ready_says_so_and_predict_answers_503(
    settings: Settings,
) -> None:
    with TestClient(create_app(settings, InMemorySource())) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "no production model" in ready.json()["reason"]
        response = client.post("/predict", json=SALMON)
        assert response.status_code == 503
        assert "no production model" in response.json()["detail"]
        assert response.headers["retry-after"] == "2"
        assert client.get("/model").status_code == 503
        assert client.get("/health").status_code == 200


def test_an_unreachable_registry_keeps_the_last_model_serving(
    client: TestClient, source: InMemorySource
) -> None:
    source.registry_ok, source.last_error = False, "ConnectError: connection refused"
    ready = client.get("/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["registry_reachable"] is False
    assert "unreachable" in body["reason"]
    assert "connection refused" in body["reason"]
    assert client.post("/predict", json=SALMON).json()["model_version"] == "1"


def test_unreachable_registry_and_no_model_is_not_ready(settings: Settings) -> None:
    source = InMemorySource(registry_ok=False, last_error="ConnectError: refused")
    with TestClient(create_app(settings, source)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "unreachable" in ready.json()["reason"]
        assert "unreachable" in client.post("/predict", json=SALMON).json()["detail"]


def test_model_describes_the_version_in_service(client: TestClient) -> None:
    info = client.get("/model").json()
    assert (info["name"], info["version"], info["run_id"]) == ("fish-weight", "1", "run-1")
    assert info["training_window_start"].startswith("2026-11-01")
    assert info["training_window_end"].startswith("2026-11-20")
    assert info["metrics"] == {"candidate_mae": 0.21}
    assert (info["segment"], info["known_segments"]) == (FISH.segment, ["salmon"])
    assert info["champion_version"] == "3"
    assert info["fast_path"] is True
    assert info["loaded_at"]
    assert info["challenger"] is None


def test_model_shows_the_challenger_and_its_running_evidence(
    settings: Settings, source: InMemorySource
) -> None:
    state = ShadowEvaluation.start("1", "2", ShadowRules(min_items=2)).update(
        ["salmon"] * 4, [0.10, 0.12, 0.08, 0.11], [0.05, 0.06, 0.04, 0.05]
    )
    tags = {
        "shadow_champion": "1",
        "shadow_role": "challenger",
        "shadow_started_at": "2026-11-26T10:00:00+00:00",
        "shadow_start_reason": "not proven better on the holdout",
        "shadow_state": state.to_json(),
    }
    ref = VersionRef(name="fish-weight", version="2", run_id="run-2", tags=tags)
    with TestClient(create_app(settings, source, challenger=lambda: ref)) as client:
        shown = client.get("/model").json()["challenger"]
    assert (shown["version"], shown["champion_version"], shown["role"]) == ("2", "1", "challenger")
    assert (shown["n"], shown["windows"], shown["verdict"]) == (4, 1, state.verdict.value)
    assert shown["statistic"] == state.statistic
    assert shown["p_value"] == state.p_value
    assert shown["challenger_mre"] < shown["champion_mre"]
    assert shown["reason"] == state.reason


def test_model_answers_when_the_challenger_cannot_be_read(
    settings: Settings, source: InMemorySource
) -> None:
    def unreachable() -> VersionRef | None:
        raise RegistryUnavailableError("ConnectError: refused")

    with TestClient(create_app(settings, source, challenger=unreachable)) as client:
        response = client.get("/model")
    assert response.status_code == 200
    assert response.json()["version"] == "1"
    assert response.json()["challenger"] is None
    assert "refused" in response.json()["challenger_error"]


def test_reload_needs_the_admin_token(client: TestClient) -> None:
    assert client.post("/reload").status_code == 401
    wrong = client.post("/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    response = client.post("/reload", headers=ADMIN)
    assert response.status_code == 200
    assert response.json()["swapped"] is False
    assert response.json()["model_version"] == "1"


def test_a_promotion_is_served_after_reload_and_named_in_answers(
    client: TestClient, source: InMemorySource, mixed_model: Pipeline
) -> None:
    assert (
        client.post("/predict", json={**SALMON, "species": "walleye"}).json()["species_known"]
        is False
    )
    source.publish(served(mixed_model, "2"))
    response = client.post("/reload", headers=ADMIN).json()
    assert response == {
        "swapped": True,
        "model_version": "2",
        "registry_reachable": True,
        "registry_error": None,
    }
    answer = client.post("/predict", json={**SALMON, "species": "walleye"})
    assert answer.json()["model_version"] == "2"
    assert answer.json()["species_known"] is True
    assert answer.headers["x-model-version"] == "2"
    assert client.get("/health").headers["x-model-version"] == "2"


def test_metrics_count_requests_predictions_and_the_version(client: TestClient) -> None:
    client.post("/predict", json=[SALMON, {**SALMON, "species": "cod"}, SALMON])
    client.post("/predict", json={**SALMON, "length_cm": -1.0})
    client.get("/nowhere")
    text = client.get("/metrics").text
    predictions = 'tidemark_serving_predictions_total{model_version="1",project="fish-weight"'
    assert f'{predictions},segment="salmon"}} 2.0' in text
    assert f'{predictions},segment="unknown"}} 1.0' in text
    assert (
        'tidemark_serving_requests_total{endpoint="/predict",method="POST",'
        'model_version="1",status="200"} 1.0'
    ) in text
    assert 'endpoint="/predict",method="POST",model_version="1",status="422"' in text
    assert 'endpoint="unmatched"' in text
    assert 'tidemark_serving_request_duration_seconds_count{endpoint="/predict"' in text
    assert (
        'tidemark_serving_model_info{model_name="fish-weight",model_version="1",run_id="run-1"} 1.0'
    ) in text
    assert "tidemark_serving_registry_reachable 1.0" in text
    assert "tidemark_serving_model_swaps_total 1.0" in text


def test_openapi_documents_predict(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    one, batch = body["schema"]["oneOf"]
    assert set(one["required"]) == {f.name for f in FISH.features if f.required}
    assert batch["maxItems"] == 50
