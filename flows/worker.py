"""The flows on a Prefect process work pool, and a worker of that pool (``tidemark worker``).

A flow run of the pool is recorded in the Prefect server until a worker picks it up; any worker
of the pool may, on this machine or another one where Tidemark is installed. The worker starts
each run as a child process with its own environment, so the run reads the same ``TIDEMARK_*``
settings as the worker.
"""

from __future__ import annotations

import os
import socket
import sys

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.workers.process import ProcessWorker

from flows.deployments import deployments
from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.orchestration import prefect_api

log = get_logger("flows.worker")


def ensure_work_pool(settings: Settings) -> None:
    """Create the process work pool ``prefect_work_pool`` unless it exists (kept as it is)."""
    pool = WorkPoolCreate(
        name=settings.orchestration.work_pool,
        type=ProcessWorker.type,
        base_job_template=ProcessWorker.get_default_base_job_template(),
        description="Tidemark's flows: train, retrain, promote, rollback, shadow, retire, "
        "shadow verdicts.",
    )
    with prefect_api(settings.orchestration), get_client(sync_client=True) as client:
        try:
            client.create_work_pool(pool)
            log.info("work pool created", pool=settings.orchestration.work_pool)
        except ObjectAlreadyExists:
            return


def deploy_flows(settings: Settings) -> None:
    """Create the work pool if needed and (re)deploy every flow to it."""
    ensure_work_pool(settings)
    with prefect_api(settings.orchestration):
        for deployment in deployments(settings.orchestration.work_pool):
            deployment.apply()
    log.info("flows deployed", pool=settings.orchestration.work_pool)


def worker_command(settings: Settings) -> list[str]:
    """Prefect's own worker of the pool, named after this machine and process."""
    return [
        sys.executable,
        "-m",
        "prefect",
        "worker",
        "start",
        "--pool",
        settings.orchestration.work_pool,
        "--type",
        ProcessWorker.type,
        "--name",
        f"{socket.gethostname()}-{os.getpid()}",
    ]


def worker_env(settings: Settings) -> dict[str, str]:
    """The worker's environment: ours, its server, and the polling interval of the settings."""
    return os.environ | {
        "PREFECT_API_URL": settings.orchestration.api_url,
        "PREFECT_WORKER_QUERY_SECONDS": str(settings.orchestration.worker_poll_s),
    }


def run_worker(settings: Settings) -> None:
    """Become the worker: this process is replaced, so signals reach Prefect's worker directly."""
    ensure_work_pool(settings)
    command = worker_command(settings)
    log.info("starting worker", pool=settings.orchestration.work_pool, command=" ".join(command))
    sys.stdout.flush()
    # Our own interpreter with a fixed argument list: no shell, nothing from outside.
    os.execve(sys.executable, command, worker_env(settings))  # noqa: S606
