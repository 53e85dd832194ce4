"""GET /models/{name}/predictions/{key} and /predictions/{key}: found, 404, 409, 503."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from kafka.errors import KafkaTimeoutError

from serving.app import create_app
from serving.projects import ServedProject
from tests.unit.serving.conftest import InMemorySource
from tidemark.config import Settings
from tidemark.explain import Explanation, ItemNotFoundError, ItemStatus, PredictedBy

AT = datetime(2026, 12, 2, 14, 5, tzinfo=UTC)


class Topics:
    """Explanations by (project, key); ``down`` makes every read fail as Kafka would."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Explanation] = {}
        self.down = False

    def add(self, project: str, key: str) -> None:
        self.items[project, key] = Explanation(
            project=project, key=key, status=ItemStatus.WAITING, note="waiting", inputs={},
            prediction=PredictedBy(model_name=project, version="2", value=1.0,
                                   segment_known=True, predicted_at=AT),
            challenger=None, lineage=None, truth=None, found=[],
        )  # fmt: skip

    def __call__(self, served: ServedProject, key: str) -> Explanation:
        if self.down:
            raise KafkaTimeoutError("no broker answered")
        try:
            return self.items[served.name, key]
        except KeyError:
            raise ItemNotFoundError(f"no prediction of {key!r}") from None


@pytest.fixture
def topics() -> Topics:
    return Topics()


@pytest.fixture
def explain_client(
    settings: Settings, source: InMemorySource, topics: Topics
) -> Iterator[TestClient]:
    with TestClient(create_app(settings, source, explainer=topics)) as test_client:
        yield test_client


def test_an_item_of_a_named_project_is_explained(
    explain_client: TestClient, topics: Topics
) -> None:
    topics.add("penguin-mass", "p-1")
    answer = explain_client.get("/models/penguin-mass/predictions/p-1")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "waiting_for_truth"
    assert explain_client.get("/models/fish-weight/predictions/p-1").status_code == 404


def test_an_unknown_key_is_a_clear_404(explain_client: TestClient) -> None:
    answer = explain_client.get("/models/penguin-mass/predictions/nobody")
    assert answer.status_code == 404
    assert answer.json()["detail"] == "no prediction of 'nobody'"
    answer = explain_client.get("/predictions/nobody")
    assert answer.status_code == 404
    assert "fish-weight, penguin-mass" in answer.json()["detail"]


def test_predictions_by_key_finds_the_project_that_scored_it(
    explain_client: TestClient, topics: Topics
) -> None:
    topics.add("penguin-mass", "k-1")
    assert explain_client.get("/predictions/k-1").json()["project"] == "penguin-mass"
    topics.add("fish-weight", "k-1")
    answer = explain_client.get("/predictions/k-1")
    assert answer.status_code == 409
    assert "fish-weight, penguin-mass" in answer.json()["detail"]


def test_kafka_down_is_503(explain_client: TestClient, topics: Topics) -> None:
    topics.down = True
    answer = explain_client.get("/models/fish-weight/predictions/k-1")
    assert answer.status_code == 503
    assert "Kafka" in answer.json()["detail"]
