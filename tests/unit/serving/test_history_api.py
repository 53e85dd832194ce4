"""GET /models/{name}/history: the intervals of a project's model, 404 and 503 that say why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.unit.serving.conftest import InMemorySource
from tidemark.config import RegistrySettings, Settings
from tidemark.registry.history import HowItCame, ProductionMove, move_tag
from tidemark.registry.reader import RegistryUnavailableError

AT = datetime(2026, 12, 2, 14, 5, tzinfo=UTC)


class Registry:
    """Registered models' tags by model name; ``down`` makes every read fail."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.down = False
        self.asked: list[str] = []

    def __call__(self, registry: RegistrySettings) -> dict[str, str] | None:
        self.asked.append(registry.model_name)
        if self.down:
            raise RegistryUnavailableError("connection refused")
        return self.tags.get(registry.model_name)


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def history_client(
    settings: Settings, source: InMemorySource, registry: Registry
) -> Iterator[TestClient]:
    with TestClient(create_app(settings, source, model_tags=registry)) as test_client:
        yield test_client


def record(registry: Registry, model: str, *moves: ProductionMove) -> None:
    registry.tags.setdefault(model, {}).update({move_tag(m.at): m.model_dump_json() for m in moves})


def test_history_lists_the_intervals_of_the_named_project(
    history_client: TestClient, registry: Registry
) -> None:
    first = ProductionMove(
        version="1", previous=None, at=AT, how=HowItCame.BOOTSTRAP, reason="first model"
    )
    second = ProductionMove(
        version="2",
        previous="1",
        at=AT.replace(minute=30),
        how=HowItCame.EVIDENCE,
        reason="better on held-out items",
    )
    record(registry, "penguin-mass", first, second)
    answer = history_client.get("/models/penguin-mass/history")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert registry.asked == ["penguin-mass"]
    assert body["production_version"] == "2"
    assert [(i["version"], i["came"]["how"]) for i in body["intervals"]] == [
        ("1", "bootstrap"),
        ("2", "evidence"),
    ]
    assert body["intervals"][0]["end"] == body["intervals"][1]["start"]
    assert body["intervals"][0]["left"]["reason"] == "better on held-out items"
    assert body["intervals"][1]["end"] is None


def test_a_model_never_promoted_has_an_empty_history(history_client: TestClient) -> None:
    body = history_client.get("/models/fish-weight/history").json()
    assert (body["production_version"], body["intervals"]) == (None, [])


def test_an_unknown_model_is_404_naming_the_served_ones(history_client: TestClient) -> None:
    answer = history_client.get("/models/loaves/history")
    assert answer.status_code == 404
    assert "fish-weight" in answer.json()["detail"]
    assert "penguin-mass" in answer.json()["detail"]


def test_an_unreachable_registry_is_503(history_client: TestClient, registry: Registry) -> None:
    registry.down = True
    answer = history_client.get("/models/fish-weight/history")
    assert answer.status_code == 503
    assert "connection refused" in answer.json()["detail"]
