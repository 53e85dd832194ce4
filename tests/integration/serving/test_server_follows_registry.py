"""The real server (``tidemark serve``) against a real MLflow registry: swaps under load, auth,
and a registry that goes away."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from infra.local.components import venv_bin
from infra.local.stack import Stack
from tests.integration.registered import register_scenario_model
from tidemark.config import Settings

TOKEN = "integration-admin-token"
SALMON = {"species": "salmon", "length_cm": 70.0, "height_cm": 17.0}
WALLEYE = {"species": "walleye", "length_cm": 50.0, "height_cm": 11.0}


def register(settings: Settings, phases: list[str], **tags: str) -> str:
    """Train on the scenario's phases, log and register a version; returns its number."""
    return register_scenario_model(settings, phases, experiment="serving", tags=tags)[0]


@dataclass
class Server:
    url: str
    settings: Settings
    versions: dict[str, str] = field(default_factory=dict)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def server(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``tidemark serve`` as a subprocess, on a registered model of its own, v1 in production."""
    settings = stack.settings.override(registry_model_name=f"serving-{uuid.uuid4().hex[:6]}")
    versions = {
        "salmon": register(
            settings, ["salmon"], training_window_start="2026-11-01T00:00:00+00:00",
            candidate_mae="0.25", champion_mae="none",
        ),
        "mixed": register(settings, ["salmon", "walleye"]),
    }  # fmt: skip
    client = MlflowClient(settings.registry.tracking_uri)
    client.set_registered_model_alias(
        settings.registry.model_name, "production", versions["salmon"]
    )
    env = {
        **os.environ,
        "TIDEMARK_REGISTRY_TRACKING_URI": settings.registry.tracking_uri,
        "TIDEMARK_REGISTRY_MODEL_NAME": settings.registry.model_name,
        "TIDEMARK_SERVING_HOST": settings.serving.host,
        "TIDEMARK_SERVING_PORT": str(settings.serving.port),
        "TIDEMARK_REGISTRY_POLL_INTERVAL_S": "0.5",
        "TIDEMARK_SERVING_ADMIN_TOKEN": TOKEN,
    }
    workdir: Path = tmp_path_factory.mktemp("serving")  # no stray .env file applies
    log = (workdir / "serving.log").open("w")
    process = subprocess.Popen(
        [venv_bin("tidemark"), "serve"], env=env, cwd=workdir, stdout=log, stderr=log
    )
    url = settings.serving.url
    try:
        wait_until(lambda: process.poll() is None and _answers(url), 90, "the server to answer")
        yield Server(url=url, settings=settings, versions=versions)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


class Load:
    """Threads posting single fish and batches without pause, recording every answer."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url
        self.failures: list[str] = []
        self.versions: list[list[str]] = [[] for _ in range(threads)]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def latest(self) -> str | None:
        return self.versions[0][-1] if self.versions[0] else None

    def count(self) -> int:
        return sum(len(v) for v in self.versions)

    def _run(self, index: int) -> None:
        bodies: list[Any] = [SALMON, [SALMON, WALLEYE] * 50]
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            n = 0
            while not self._stop.is_set():
                body = bodies[n % 2]
                n += 1
                try:
                    response = client.post("/predict", json=body)
                except httpx.HTTPError as error:
                    self.failures.append(f"{type(error).__name__}: {error}")
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text}")
                    continue
                answer = response.json()
                version = answer["model_version"]
                if isinstance(body, list) and len(answer["predictions"]) != len(body):
                    self.failures.append(f"batch of {len(body)} answered with fewer predictions")
                self.versions[index].append(version)


def runs(sequence: list[str]) -> list[str]:
    """The sequence with repeats collapsed: [1, 1, 2, 2, 1] -> [1, 2, 1]."""
    return [v for i, v in enumerate(sequence) if i == 0 or sequence[i - 1] != v]


def test_promotion_and_rollback_are_picked_up_under_load_without_a_failed_request(
    server: Server,
) -> None:
    client = MlflowClient(server.settings.registry.tracking_uri)
    first, second = server.versions["salmon"], server.versions["mixed"]
    name = server.settings.registry.model_name
    wait_until(lambda: httpx.get(f"{server.url}/ready").status_code == 200, 60, "readiness")
    with Load(server.url) as load:
        wait_until(lambda: load.count() > 50, 60, "the load to start")
        assert load.latest() == first
        client.set_registered_model_alias(name, "production", second)
        wait_until(lambda: load.latest() == second, 60, "the promotion to be served")
        mark = load.count()
        wait_until(lambda: load.count() > mark + 50, 60, "more requests on the new version")
        client.set_registered_model_alias(name, "production", first)
        wait_until(lambda: load.latest() == first, 60, "the rollback to be served")
        mark = load.count()
        wait_until(lambda: load.count() > mark + 50, 60, "more requests after the rollback")
    assert load.failures == []
    for sequence in load.versions:
        assert runs(sequence) == [first, second, first]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert f'model_version="{first}"' in metrics
    assert f'model_version="{second}"' in metrics


def test_model_reports_the_versions_tags(server: Server) -> None:
    info = httpx.get(f"{server.url}/model").json()
    assert info["name"] == server.settings.registry.model_name
    assert info["version"] == server.versions["salmon"]
    assert info["run_id"]
    assert info["training_window_start"] == "2026-11-01T00:00:00+00:00"
    assert info["metrics"] == {"candidate_mae": 0.25}
    assert info["fast_path"] is True


def test_reload_needs_the_token_and_forces_a_check(server: Server) -> None:
    assert httpx.post(f"{server.url}/reload").status_code == 401
    bad = httpx.post(f"{server.url}/reload", headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    good = httpx.post(
        f"{server.url}/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert good.status_code == 200
    assert good.json()["registry_reachable"] is True
    assert good.json()["model_version"] == server.versions["salmon"]


def test_an_unreachable_registry_keeps_the_model_serving_and_ready_says_so(
    stack: Stack, server: Server
) -> None:
    with stack.paused("mlflow"):
        wait_until(
            lambda: httpx.get(f"{server.url}/ready").json()["registry_reachable"] is False,
            30,
            "the server to notice the registry is gone",
        )
        ready = httpx.get(f"{server.url}/ready")
        assert ready.status_code == 200
        assert "unreachable" in ready.json()["reason"]
        answer = httpx.post(f"{server.url}/predict", json=SALMON)
        assert answer.status_code == 200
        assert answer.json()["model_version"] == server.versions["salmon"]
    wait_until(
        lambda: httpx.get(f"{server.url}/ready").json()["registry_reachable"] is True,
        30,
        "the server to find the registry again",
    )
