"""Workers of a process work pool of the test's own, against the session's Prefect server.

``tidemark worker --deploy`` (what ``make up`` supervises) runs as a real process: it creates
the pool, deploys every flow to it and polls it. Each worker starts in a session of its own,
so that a test can kill it with the flow runs it started, as a machine that dies would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound

from infra.local.components import prefect_env
from infra.local.stack import Stack
from tests.integration.streaming.streams import wait_for
from tidemark.config import SECTIONS, Settings
from tidemark.orchestration import FLOW_NAMES, deployment_name, prefect_api, work_pool_ready

REPO = Path(__file__).resolve().parents[3]
StartWorker = Callable[[Settings], subprocess.Popen[bytes]]


def _ready(settings: Settings) -> bool:
    try:
        work_pool_ready(settings.orchestration)
    except Exception:  # not yet: the pool, a deployment or the worker's heartbeat is missing
        return False
    return True


def flow_run(settings: Settings, run_id: str) -> FlowRun:
    """A flow run as the Prefect server has it now."""
    with prefect_api(settings.orchestration), get_client(sync_client=True) as client:
        return client.read_flow_run(uuid.UUID(run_id))


def kill_group(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's whole session (the worker and the processes it started there)."""
    with contextlib.suppress(ProcessLookupError):  # the session has ended already
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def kill_run(run: FlowRun) -> None:
    """SIGKILL the process of a flow run that a process worker started (in a session of its
    own, so killing the worker's session spares it): its ``infrastructure_pid``."""
    pid = int(run.infrastructure_pid or 0)
    if pid <= 0:
        return
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        # Only the run's own process: a pid the run no longer holds may be anyone's now.
        if b"prefect.engine" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def pooled(stack: Stack) -> Settings:
    """Settings naming a pool of this test's own, polled every second."""
    return stack.settings.override(
        orchestration_work_pool=f"pool-{uuid.uuid4().hex[:6]}",
        orchestration_worker_poll_s=1.0,
        # A flow run finds the projects wherever the worker starts it.
        projects_dir=str(REPO / "projects"),
    )


@pytest.fixture
def start_worker(stack: Stack, pooled: Settings, tmp_path: Path) -> Iterator[StartWorker]:
    """Start a worker of the pool with the given settings (its flow runs read them) and wait
    until the pool is ready; every worker is stopped, the pool and deployments deleted, after."""
    workers: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings) -> subprocess.Popen[bytes]:
        log = tmp_path / f"worker-{len(workers)}.log"
        env = os.environ | settings.as_env(*SECTIONS) | prefect_env(settings, stack.state)
        with log.open("ab") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tidemark", "worker", "--deploy"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        workers.append(worker)
        wait_for(lambda: worker.poll() is None and _ready(settings), 180, "a worker of the pool")
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    kill_group(worker)
            else:
                kill_group(worker)  # its flow runs may outlive it
        # The deployments keep their names: other tests serve them without a pool.
        with prefect_api(pooled.orchestration), get_client(sync_client=True) as client:
            for flow in FLOW_NAMES:
                try:
                    client.delete_deployment(
                        client.read_deployment_by_name(deployment_name(flow)).id
                    )
                except ObjectNotFound:
                    continue
            client.delete_work_pool(pooled.orchestration.work_pool)
