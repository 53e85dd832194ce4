"""Fixtures of the streaming tests: a production model, isolated topics, service processes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra.local.stack import Stack
from tests.integration.conftest import free_ports, private_settings
from tests.integration.registered import register_scenario_model
from tests.integration.streaming.streams import Hold, Service, SimulateInBackground, simulate
from tidemark.config import Settings


@pytest.fixture(scope="session")
def production_model(stack: Stack) -> str:
    """A registered model of the tests' own, trained on salmon and walleye, in production."""
    name = f"streaming-{uuid.uuid4().hex[:6]}"
    register_scenario_model(
        stack.settings, ["salmon", "walleye"], name=name, experiment="streaming", production=True
    )
    return name


@pytest.fixture
def streams(stack: Stack, production_model: str) -> Settings:
    """Settings with topics, groups and a database of this test's own; the processes serve the
    fish alone (a scorer or joiner serves every project of the stack by default)."""
    tag = uuid.uuid4().hex[:8]
    return private_settings(
        stack.settings,
        tag,
        registry_model_name=production_model,
        store_database=f"streaming_{tag}",
        registry_poll_interval_s=1.0,
        projects_names="fish-weight",
    )


@pytest.fixture
def start_service_on(tmp_path: Path) -> Iterator[Callable[[Settings, str], Service]]:
    """Start ``tidemark score`` or ``tidemark join`` on the given settings as a real process;
    all stop at teardown."""
    started: list[Service] = []

    def start(settings: Settings, command: str) -> Service:
        (port,) = free_ports(1)
        service = Service(settings, command, port, tmp_path / f"{command}.log")
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def start_service(
    streams: Settings, start_service_on: Callable[[Settings, str], Service]
) -> Callable[[str], Service]:
    """Start ``tidemark score`` or ``tidemark join`` on the test's settings (``streams``)."""
    return lambda command: start_service_on(streams, command)


@pytest.fixture
def simulate_in_background() -> Iterator[SimulateInBackground]:
    """Run the simulator on a thread (held at a :class:`Hold` if given); teardown releases
    the line, waits for it and fails on its errors."""
    threads: list[threading.Thread] = []
    holds: list[Hold] = []
    failures: list[BaseException] = []

    def start(settings: Settings, rate: float, hold: Hold | None = None) -> threading.Thread:
        if hold is not None:
            holds.append(hold)

        def run() -> None:
            try:
                simulate(settings, rate, hold)
            except BaseException as error:
                failures.append(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    for hold in holds:
        hold.release()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
