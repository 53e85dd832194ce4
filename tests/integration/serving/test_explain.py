"""Explain on the real stack: the real scorer and joiner score two items, one before and one
after a promotion (with the replaced version in shadow), and ``tidemark.explain``, ``tidemark
explain`` and a real ``tidemark serve`` give each its whole chain: two items, two versions, two
lineages; an item waiting for its truth says so, and an unknown key is a clear 404."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.fish import fish_scenario
from flows.train import train
from infra.local.components import prefect_env, venv_bin
from infra.local.stack import Stack
from tests.integration.conftest import Processes, free_ports
from tidemark import kafka_io
from tidemark.config import SECTIONS, Settings, get_settings
from tidemark.explain import Explanation, ItemNotFoundError, ItemStatus, explain
from tidemark.orchestration import prefect_api
from tidemark.project.catalog import stack_catalog
from tidemark.registry import writer as registry
from tidemark.simulation.generate import generate_frame


@pytest.fixture
def story(
    loop: tuple[Settings, Processes], stack: Stack
) -> Iterator[tuple[Settings, Processes, dict[str, str]]]:
    """The loop's settings in this process's env too (the flows read them), and its env."""
    settings, processes = loop
    settings = settings.override(
        serving_port=free_ports(1)[0], store_collection=f"explain_{uuid.uuid4().hex[:6]}"
    )
    env = processes.env | settings.as_env(*SECTIONS) | prefect_env(settings, stack.state)
    processes.env = env
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.as_env(*SECTIONS).items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        with prefect_api(settings.orchestration):
            yield settings, processes, env
    get_settings.cache_clear()


def send_input(settings: Settings, key: str, species: str, at: datetime) -> None:
    sizes = {"salmon": (70.0, 17.0), "walleye": (50.0, 11.0)}[species]
    record = {"fish_id": key, "species": species, "length_cm": sizes[0],
              "height_cm": sizes[1], "measured_at": at.isoformat()}  # fmt: skip
    _send(settings, settings.kafka.topics.input, key, record)


def send_truth(settings: Settings, key: str, species: str, weight: float, at: datetime) -> None:
    record = {"fish_id": key, "species": species, "weight_kg": weight,
              "weighed_at": at.isoformat()}  # fmt: skip
    _send(settings, settings.kafka.topics.truth, key, record)


def _send(settings: Settings, topic: str, key: str, record: dict[str, Any]) -> None:
    producer = kafka_io.producer(settings.kafka)
    try:
        producer.send(topic, key=key.encode(), value=json.dumps(record).encode()).get(30)
    finally:
        producer.close()


def explained(
    settings: Settings, key: str, until: Callable[[Explanation], bool], what: str
) -> Explanation:
    contracts = stack_catalog(settings.projects).contracts()
    deadline = time.monotonic() + 120
    while True:
        try:
            found = explain(settings, contracts, key)
            if until(found):
                return found
        except ItemNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_two_items_two_versions_two_lineages(
    story: tuple[Settings, Processes, dict[str, str]], tmp_path: Path
) -> None:
    settings, processes, env = story
    v1 = train(seed=42).version  # the project's bootstrap CSV
    assert v1 is not None
    processes.start("score")
    processes.start("join")
    now = datetime.now(UTC)
    send_input(settings, "item-a", "salmon", now)
    send_truth(settings, "item-a", "salmon", 4.0, now + timedelta(seconds=2))
    first = explained(
        settings, "item-a", lambda e: e.status is ItemStatus.SCORED, "item-a to be joined"
    )

    wider = tmp_path / "salmon-and-walleye.csv"
    frame = generate_frame(fish_scenario(), 7, ["salmon", "walleye"])
    frame.drop(columns=["phase", "fish_id"]).to_csv(wider, index=False)
    promoted = train(csv=str(wider), seed=7)
    assert promoted.decision == "promoted", promoted.reason
    v2 = str(promoted.version)
    registry.set_challenger(settings.registry, v1, reason="explain test: v1 in shadow")
    probe = 0
    while True:  # the scorers follow the registry within a poll: probe until they did
        probe += 1
        key = f"item-b{probe}"
        send_input(settings, key, "walleye", datetime.now(UTC))
        second = explained(settings, key, lambda e: True, f"{key} to be predicted")
        if second.prediction.version == v2 and second.challenger is not None:
            break
        assert probe < 30, "the scorer never predicted with v2 and v1 in shadow"
    assert second.status is ItemStatus.WAITING
    assert "waiting for its truth" in second.note
    assert second.truth is None
    send_truth(settings, key, "walleye", 1.2, datetime.now(UTC))
    second = explained(settings, key, lambda e: e.status is ItemStatus.SCORED, f"{key} joined")

    processes.check_alive()
    # Item A: v1, the bootstrap's lineage, its truth and window.
    assert first.prediction.version == v1
    assert first.inputs["species"] == "salmon"
    assert first.truth is not None
    assert first.truth.value == 4.0
    assert first.truth.window_start <= now < first.truth.window_end
    assert first.lineage is not None
    assert first.lineage.version == v1
    assert first.lineage.trigger["reason"] == "bootstrap"
    assert first.lineage.training_rows == 1200
    assert first.lineage.heldout_n == 300
    assert len(first.lineage.data_fingerprint or "") == 64
    assert first.lineage.came is not None
    assert first.lineage.came.how == "bootstrap"
    assert first.lineage.prefect_url is not None
    assert first.lineage.run_url is not None
    assert first.lineage.run_url.endswith(first.lineage.run_id)
    assert httpx.get(settings.registry.tracking_uri).status_code == 200
    # Item B: v2, judged against v1 on held-out fish, v1's prediction beside it.
    assert second.lineage is not None
    assert second.lineage.version == v2
    assert second.lineage.champion_version == v1
    assert second.lineage.p_value is not None
    assert second.lineage.p_value < 0.05
    assert set(second.lineage.segments) == {"salmon", "walleye"}
    walleye = second.lineage.segments["walleye"]
    assert walleye.candidate_error is not None
    assert walleye.champion_error is not None
    assert walleye.candidate_error < walleye.champion_error
    assert second.challenger is not None
    assert second.challenger.version == v1
    assert second.challenger.abs_error is not None
    assert second.truth is not None
    assert second.truth.abs_error == pytest.approx(abs(second.prediction.value - 1.2))
    assert [p.topic for p in second.found] == [
        settings.kafka.topics.predictions, settings.kafka.topics.scored,
    ]  # fmt: skip
    with pytest.raises(ItemNotFoundError, match="never scored"):
        explain(settings, stack_catalog(settings.projects).contracts(), "nobody-here")

    # The command line.
    shown = subprocess.run(
        [venv_bin("tidemark"), "explain", key, "--json"],
        env=os.environ | env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(shown.stdout)["lineage"]["version"] == v2
    table = subprocess.run(
        [venv_bin("tidemark"), "explain", "item-a"],
        env=os.environ | env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "scored" in table.stdout
    assert f"v{v1}" in table.stdout
    missing = subprocess.run(
        [venv_bin("tidemark"), "explain", "nobody-here"],
        env=os.environ | env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "not found" in missing.stdout

    # The model server.
    with (tmp_path / "serving.log").open("w") as log:
        server = subprocess.Popen(
            [venv_bin("tidemark"), "serve"],
            env=os.environ | env | {"TIDEMARK_PROJECTS_DIR": str(Path("projects").resolve())},
            cwd=tmp_path, stdout=log, stderr=log,
        )  # fmt: skip
        try:
            url, name = settings.serving.url, settings.registry.model_name
            answer = _get_when_up(url, f"/models/{name}/predictions/{key}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["lineage"]["version"] == v2
            assert answer.json()["challenger"]["version"] == v1
            by_key = httpx.get(f"{url}/predictions/item-a", timeout=30)
            assert by_key.status_code == 200, by_key.text
            assert by_key.json()["prediction"]["version"] == v1
            unknown = httpx.get(f"{url}/models/{name}/predictions/nobody-here", timeout=30)
            assert unknown.status_code == 404
            assert "never scored" in unknown.json()["detail"]
        finally:
            server.terminate()
            server.wait(timeout=30)


def _get_when_up(url: str, path: str) -> httpx.Response:
    deadline = time.monotonic() + 90
    while True:
        try:
            return httpx.get(f"{url}{path}", timeout=30)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
