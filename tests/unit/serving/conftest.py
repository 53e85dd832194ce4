"""A model trained in-process and an in-memory model source standing in for the registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sklearn.pipeline import Pipeline

from benchmarks.fish import FISH, fish_scenario
from serving.app import create_app
from tidemark.config import Settings
from tidemark.modelling.default import known_segments
from tidemark.modelling.training import train
from tidemark.registry.watcher import ServedModel
from tidemark.simulation.generate import generate_frame

ADMIN_TOKEN = "test-admin-token"
MAX_BATCH = 50
MAX_BODY_BYTES = 16_384


@dataclass
class InMemorySource:
    """The registry as a list: ``publish`` is a promotion, ``check_now`` picks it up."""

    current: ServedModel | None = None
    registry_ok: bool = True
    last_error: str | None = None
    last_checked_at: datetime | None = None
    pending: ServedModel | None = None
    listeners: list[Callable[[ServedModel], None]] = field(default_factory=list)

    def publish(self, served: ServedModel) -> None:
        self.pending = served

    def check_now(self) -> bool:
        self.last_checked_at = datetime.now(UTC)
        if not self.registry_ok or self.pending is None or self.pending is self.current:
            return False
        self.current = self.pending
        for listener in self.listeners:
            listener(self.current)
        return True

    def start(self) -> None:
        self.check_now()

    def stop(self) -> None:
        return None

    def add_listener(self, listener: Callable[[ServedModel], None]) -> None:
        self.listeners.append(listener)


def served(model: Pipeline, version: str, **tags: str) -> ServedModel:
    return ServedModel(
        name="fish-weight",
        version=version,
        run_id=f"run-{version}",
        model=model,
        project=FISH,
        segments=known_segments(FISH, model),
        loaded_at=datetime.now(UTC),
        tags=tags,
    )


@pytest.fixture(scope="session")
def salmon_model() -> Pipeline:
    frame = generate_frame(fish_scenario(), seed=1, phases=["salmon"])
    return train(FISH, frame, seed=0).model


@pytest.fixture(scope="session")
def mixed_model() -> Pipeline:
    return train(FISH, generate_frame(fish_scenario(), seed=2), seed=0).model


@pytest.fixture
def settings() -> Settings:
    return Settings(
        serving_admin_token=SecretStr(ADMIN_TOKEN),
        serving_max_batch=MAX_BATCH,
        serving_max_body_bytes=MAX_BODY_BYTES,
        registry_poll_interval_s=2.0,
    )


@pytest.fixture
def source(salmon_model: Pipeline) -> InMemorySource:
    registry = InMemorySource()
    registry.publish(
        served(
            salmon_model,
            "1",
            training_window_start="2026-11-01T00:00:00+00:00",
            training_window_end="2026-11-20T00:00:00+00:00",
            candidate_mae="0.21",
            champion_mae="none",
            champion_version="3",
        )
    )
    return registry


@pytest.fixture
def client(settings: Settings, source: InMemorySource) -> Iterator[TestClient]:
    with TestClient(create_app(settings, source)) as test_client:
        yield test_client
