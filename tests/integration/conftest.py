"""A real stack (Kafka, FerretDB, MLflow, Prefect) for the whole test session.

It runs on free ports under a temporary folder, so it never meets a stack that `make up`
started, and it is torn down at the end, checking that no process it started is left behind.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from infra.local.components import prefect_env
from infra.local.stack import Stack
from tidemark import kafka_io
from tidemark.config import NAMES, SECTIONS, Settings

# The modules that take longest, first. `make test` runs the integration tests on two workers,
# each with a stack of its own, and a worker takes a whole module at a time (a module's fixtures
# are often one story that several tests read): started first, the long modules end about
# together and the short ones fill in around them. The others keep their order.
LONGEST_FIRST = (
    "test_penguin_story.py",
    "test_loop_evidence.py",
    "test_loop_regime.py",
    "streaming/test_pipeline.py",
    "streaming/test_cluster.py",
    "streaming/test_faults.py",
    "browser/test_pages.py",
    "monitoring/test_shadow.py",
    "flows/test_faults.py",
    "monitoring/test_monitor.py",
    "streaming/test_scorers.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The integration tests of :data:`LONGEST_FIRST` before the others, in its order."""
    here = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        if here not in item.path.parents:
            return -1
        name = item.path.relative_to(here).as_posix()
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


def free_ports(count: int) -> list[int]:
    """Ports that nothing listens on now (held open together so they differ)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def private_settings(base: Settings, tag: str, **changes: Any) -> Settings:
    """``base`` with topics (created) and consumer groups of ``tag``'s own, and ``changes``: the
    processes of one test or story meet no other's records or offsets."""
    topics = base.kafka.topics
    settings = base.override(
        kafka_topics_input=f"{tag}.{topics.input}",
        kafka_topics_truth=f"{tag}.{topics.truth}",
        kafka_topics_predictions=f"{tag}.{topics.predictions}",
        kafka_topics_scored=f"{tag}.{topics.scored}",
        kafka_topics_retrain_requests=f"{tag}.{topics.retrain_requests}",
        kafka_topics_dead_letter=f"{tag}.{topics.dead_letter}",
        stream_scorer_group_id=f"scorer-{tag}",
        stream_joiner_group_id=f"joiner-{tag}",
        monitor_group_id=f"monitor-{tag}",
        **changes,
    )
    kafka_io.ensure_topics(settings.kafka)
    return settings


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie has exited: it is not alive)."""
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
    extra = [name for name in NAMES if name.endswith("_port")]
    kafka, mongo, mlflow, prefect, *ports = free_ports(4 + len(extra))
    return Settings(
        kafka_bootstrap_servers=f"127.0.0.1:{kafka}",
        store_uri=f"mongodb://127.0.0.1:{mongo}/",
        registry_tracking_uri=f"http://127.0.0.1:{mlflow}",
        orchestration_api_url=f"http://127.0.0.1:{prefect}/api",
        stack_state_dir=tmp_path_factory.mktemp("stack"),
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
    survivors = [pid for pid in pids if alive(pid)]
    assert not survivors, f"processes left behind by the test stack: {survivors}"


class Processes:
    """``python -m tidemark ...`` processes of this test, stopped (SIGTERM) at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, *command: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{command[0]}.log").open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "tidemark", *command],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.running.append((command[0], process))
        return process

    def check_alive(self) -> None:
        for name, process in self.running:
            assert process.poll() is None, f"{name} exited; see {self.logs / name}.log"

    def stop(self) -> None:
        # Reverse order: the deployment server last, and before the Prefect server stops.
        for _, process in reversed(self.running):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def loop(stack: Stack, tmp_path: Path) -> Iterator[tuple[Settings, Processes]]:
    """Settings of this test's own (topics, groups, database, model) and its processes."""
    with own_loop(stack, tmp_path) as mine:
        yield mine


@pytest.fixture(scope="module")
def module_loop(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Processes]]:
    """The ``loop`` of a whole module: the tests of one story share its processes."""
    with own_loop(stack, tmp_path_factory.mktemp("loop")) as mine:
        yield mine


def loop_changes() -> dict[str, Any]:
    """What the settings of every loop's processes change: metrics ports of their own for the
    scorer, the joiner and the monitor, the registry polled every second, and a retrain that
    failed for a passing reason retried after half a second."""
    scorer, joiner, monitor = free_ports(3)
    return {
        "stream_scorer_metrics_port": scorer,
        "stream_joiner_metrics_port": joiner,
        "monitor_metrics_port": monitor,
        "registry_poll_interval_s": 1.0,
        "retrain_transient_retry_delay_s": 0.5,
    }


def loop_processes(settings: Settings, stack: Stack, logs: Path) -> Processes:
    """The processes of a loop on ``settings`` (none started yet), pointed at the stack's Prefect
    server, whose deployments they serve polling every 2 s; their logs go to ``logs``."""
    env = (
        os.environ
        | settings.as_env(*SECTIONS)
        | prefect_env(settings, stack.state)
        | {"PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    )
    return Processes(env, logs)


@contextmanager
def own_loop(stack: Stack, logs: Path) -> Iterator[tuple[Settings, Processes]]:
    """Settings of a loop's own (topics, groups, database, model) and its processes, stopped at
    the end; their logs go to ``logs``."""
    tag = uuid.uuid4().hex[:8]
    settings = private_settings(
        stack.settings,
        tag,
        registry_model_name=f"loop-{tag}",
        registry_experiment=f"loop-{tag}",
        store_database=f"loop_{tag}",
        # The scorer and the joiner serve every project named: the fish alone here.
        projects_names="fish-weight",
        **loop_changes(),
    )
    processes = loop_processes(settings, stack, logs)
    try:
        yield settings, processes
    finally:
        processes.stop()


@pytest.fixture(scope="package", autouse=True)
def repository_projects() -> Iterator[None]:
    """The platform's processes run in temporary folders here, where no projects/ folder is:
    they read the repository's projects, as `make up` gives them the folder it started from.
    Set for the integration tests only, and taken back after them."""
    name = "TIDEMARK_PROJECTS_DIR"
    before = os.environ.get(name)
    os.environ.setdefault(name, str(Path(__file__).resolve().parents[2] / "projects"))
    yield
    if before is None:
        os.environ.pop(name, None)
