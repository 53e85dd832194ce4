"""The watcher follows the production alias of a real MLflow registry."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
from mlflow import MlflowClient

from benchmarks.fish import FISH
from infra.local.stack import Stack
from tests.integration.registered import register_scenario_model
from tidemark.config import Settings
from tidemark.registry.watcher import ModelWatcher


def _register(settings: Settings, name: str, phases: list[str]) -> str:
    return register_scenario_model(settings, phases, name=name, experiment="watcher")[0]


@pytest.fixture
def watched(stack: Stack) -> Settings:
    """Settings naming a registered model of its own, so tests do not share versions."""
    return stack.settings.override(registry_model_name=f"watched-{uuid.uuid4().hex[:6]}")


def test_no_production_model_is_not_an_error(watched: Settings) -> None:
    watcher = ModelWatcher(watched.registry, FISH)
    assert watcher.check_now() is False
    assert watcher.current is None
    assert watcher.registry_ok
    with pytest.raises(TimeoutError, match="no production version"):
        watcher.wait_for_model(timeout_s=1)


def test_follows_promotion_and_rollback(watched: Settings) -> None:
    client = MlflowClient(watched.registry.tracking_uri)
    first = _register(watched, watched.registry.model_name, ["salmon"])
    second = _register(watched, watched.registry.model_name, ["salmon", "walleye"])
    client.set_registered_model_alias(watched.registry.model_name, "production", first)

    watcher = ModelWatcher(watched.registry, FISH, poll_interval_s=0.2)
    swaps: list[str] = []
    watcher.add_listener(lambda served: swaps.append(served.version))
    loaded = watcher.wait_for_model(timeout_s=60)
    assert loaded.version == first
    assert loaded.segments == {"salmon"}

    client.set_registered_model_alias(watched.registry.model_name, "production", second)
    assert watcher.check_now() is True
    assert watcher.current is not None
    assert watcher.current.version == second
    assert watcher.current.segments == {"salmon", "walleye"}
    assert watcher.check_now() is False  # nothing moved since

    client.set_registered_model_alias(watched.registry.model_name, "production", first)
    watcher.start()
    try:
        for _ in range(100):
            if watcher.current.version == first:
                break
            watcher._stop.wait(0.1)
    finally:
        watcher.stop()
    assert watcher.current.version == first
    assert swaps == [first, second, first]

    fish = pd.DataFrame({"species": ["walleye"], "length_cm": [50.0], "height_cm": [10.0]})
    assert watcher.current.predict(fish).segment_known.tolist() == [False]


def test_unreachable_registry_keeps_the_last_model(stack: Stack, watched: Settings) -> None:
    client = MlflowClient(watched.registry.tracking_uri)
    version = _register(watched, watched.registry.model_name, ["salmon"])
    client.set_registered_model_alias(watched.registry.model_name, "production", version)
    watcher = ModelWatcher(watched.registry, FISH)
    watcher.wait_for_model(timeout_s=60)

    with stack.paused("mlflow"):
        assert watcher.check_now() is False
        assert not watcher.registry_ok
        assert watcher.last_error is not None
        assert "ConnectError" in watcher.last_error
        assert watcher.current is not None
        assert watcher.current.version == version
    assert watcher.check_now() is False
    assert watcher.registry_ok
