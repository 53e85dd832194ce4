"""A real stack (Kafka, FerretDB, MLflow, Prefect) for the whole test session.

It runs on free ports under a temporary folder, so it never meets a stack that `make up`
started, and it is torn down at the end, checking that no process it started is left behind.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from infra.local.stack import Stack
from tidemark.config import FLAT_NAMES, Settings


def free_ports(count: int) -> list[int]:
    """Ports that nothing listens on now (held open together so they differ)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not read its status yet.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings that point every client at the session's private stack.

    Every ``*_port`` setting (the controller's, metrics ports of the services …) gets a free
    port too, so nothing of the test stack collides with a stack that `make up` started.
    """
    extra = [name for name in FLAT_NAMES if name.endswith("_port")]
    kafka, mongo, mlflow, prefect, *ports = free_ports(4 + len(extra))
    return Settings(
        kafka_bootstrap_servers=f"127.0.0.1:{kafka}",
        mongo_uri=f"mongodb://127.0.0.1:{mongo}/",
        mlflow_tracking_uri=f"http://127.0.0.1:{mlflow}",
        prefect_api_url=f"http://127.0.0.1:{prefect}/api",
        state_dir=tmp_path_factory.mktemp("stack"),
        kafka_session_timeout_ms=6_000,
        **dict(zip(extra, ports, strict=True)),
    )


@pytest.fixture(scope="session")
def stack(stack_settings: Settings) -> Iterator[Stack]:
    """The running stack; its teardown fails the session if a process survives it."""
    running = Stack(stack_settings)
    try:
        running.up()
    except BaseException:
        running.down()
        raise
    pids = [row.pid for row in running.status() if row.pid]
    yield running
    running.down()
    survivors = [pid for pid in pids if _alive(pid)]
    assert not survivors, f"processes left behind by the test stack: {survivors}"
