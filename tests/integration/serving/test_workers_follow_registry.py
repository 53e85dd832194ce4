"""``tidemark serve --workers 2`` against a real MLflow registry: every worker follows it, a
promotion under load fails no request, and the metrics count the requests of both workers."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from infra.local.components import venv_bin
from infra.local.stack import Stack
from tests.integration.serving.test_server_follows_registry import (
    SALMON,
    WALLEYE,
    register,
    wait_until,
)
from tidemark.config import Settings

WORKERS = 2
POLL_INTERVAL_S = 2.0
# Loading a version (download, skops, the fast path's check) on a busy 2-core machine.
LOAD_ALLOWANCE_S = 15.0


@dataclass
class Server:
    url: str
    settings: Settings
    versions: dict[str, str] = field(default_factory=dict)


def versions_by_worker(url: str) -> dict[str, str]:
    """The version each worker (pid) serves, from the aggregated /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=5.0).text
    serving: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "tidemark_serving_model_info":
            for sample in family.samples:
                if sample.value == 1.0:
                    serving[sample.labels["pid"]] = sample.labels["model_version"]
    return serving


def predict_requests_counted(url: str) -> int:
    """/predict requests in the aggregated /metrics, every status and version."""
    text = httpx.get(f"{url}/metrics", timeout=5.0).text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == "tidemark_serving_requests"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["endpoint"] == "/predict"
    )


@pytest.fixture(scope="module")
def server(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two workers of ``tidemark serve`` on a registered model of their own, v1 in production."""
    settings = stack.settings.override(registry_model_name=f"workers-{uuid.uuid4().hex[:6]}")
    versions = {
        "salmon": register(settings, ["salmon"]),
        "mixed": register(settings, ["salmon", "walleye"]),
    }
    MlflowClient(settings.registry.tracking_uri).set_registered_model_alias(
        settings.registry.model_name, "production", versions["salmon"]
    )
    env = {
        **os.environ,
        "TIDEMARK_REGISTRY_TRACKING_URI": settings.registry.tracking_uri,
        "TIDEMARK_REGISTRY_MODEL_NAME": settings.registry.model_name,
        "TIDEMARK_SERVING_HOST": settings.serving.host,
        "TIDEMARK_SERVING_PORT": str(settings.serving.port),
        "TIDEMARK_REGISTRY_POLL_INTERVAL_S": str(POLL_INTERVAL_S),
        "TIDEMARK_SERVING_WORKERS": str(WORKERS),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the server makes a folder of its own
    workdir: Path = tmp_path_factory.mktemp("workers")
    log = (workdir / "serving.log").open("w")
    process = subprocess.Popen(
        [venv_bin("tidemark"), "serve"], env=env, cwd=workdir, stdout=log, stderr=log
    )
    url = settings.serving.url
    try:

        def both_loaded() -> bool:
            try:
                return len(versions_by_worker(url)) == WORKERS
            except httpx.HTTPError:
                return False

        wait_until(lambda: process.poll() is None and both_loaded(), 120, "both workers")
        yield Server(url=url, settings=settings, versions=versions)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


class Load:
    """Threads posting fish without pause, each request on a connection of its own so that the
    kernel hands requests to both workers; records every answer's version, in order."""

    def __init__(self, url: str, threads: int = 3) -> None:
        self.url = url
        self.failures: list[str] = []
        self.answers: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def count(self) -> int:
        with self._lock:
            return len(self.answers) + len(self.failures)

    def _run(self) -> None:
        bodies: list[object] = [SALMON, [SALMON, WALLEYE] * 20]
        n = 0
        while not self._stop.is_set():
            body = bodies[n % 2]
            n += 1
            try:
                response = httpx.post(
                    f"{self.url}/predict", json=body, headers={"Connection": "close"}, timeout=10
                )
            except httpx.HTTPError as error:
                with self._lock:
                    self.failures.append(f"{type(error).__name__}: {error}")
                continue
            with self._lock:
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text}")
                elif response.headers["x-model-version"] != response.json()["model_version"]:
                    self.failures.append(f"header and body disagree: {response.headers}")
                else:
                    self.answers.append(response.json()["model_version"])


def test_a_promotion_under_load_reaches_every_worker_within_a_poll_and_fails_nothing(
    server: Server,
) -> None:
    first, second = server.versions["salmon"], server.versions["mixed"]
    workers = versions_by_worker(server.url)
    assert set(workers.values()) == {first}
    counted_before = predict_requests_counted(server.url)
    with Load(server.url) as load:
        wait_until(lambda: load.count() > 50, 60, "the load to start")
        MlflowClient(server.settings.registry.tracking_uri).set_registered_model_alias(
            server.settings.registry.model_name, "production", second
        )
        # Each worker asks the registry every poll: within one, plus the time to load it.
        wait_until(
            lambda: versions_by_worker(server.url) == dict.fromkeys(workers, second),
            POLL_INTERVAL_S + LOAD_ALLOWANCE_S,
            "both workers to serve the promoted version",
        )
        both_swapped = load.count()
        wait_until(lambda: load.count() > both_swapped + 100, 60, "more requests")
    assert load.failures == []
    assert set(load.answers) == {first, second}
    # Once both workers serve it, whichever answers, it is the promoted version (past the
    # requests that were in flight, one per thread).
    assert set(load.answers[both_swapped + len(load.threads) :]) == {second}
    # The same two workers throughout (none restarted), and /metrics counts both workers'
    # requests: each worker's counts reach the shared folder within a second.
    assert set(versions_by_worker(server.url)) == set(workers)
    made = counted_before + len(load.answers)
    wait_until(lambda: predict_requests_counted(server.url) == made, 10, "every request counted")
