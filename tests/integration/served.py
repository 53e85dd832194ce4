"""A flow served by a process of its own (``flow.serve``), ready only once that process polls.

The deployment's name outlives the process that served it: another module on the same stack
may have served ``retrain/retrain`` before, so finding the deployment proves nothing. Ready is
the server having seen *this* process poll for runs (the deployment's ``last_polled`` after
the process started): a test that pauses Prefect right after could otherwise kill a runner
still registering its deployment, and the runs it triggers would stay scheduled forever.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from infra.local.components import prefect_env
from infra.local.stack import Stack
from tidemark.orchestration import prefect_api


@contextmanager
def served(
    stack: Stack,
    script: Path,
    deployment: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 180,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``script`` (which serves ``deployment``) until the block ends; wait for its poll."""
    full_env = (
        os.environ
        | prefect_env(stack.settings, stack.state)
        | {"PREFECT_RUNNER_POLL_FREQUENCY": "1"}
        | (env or {})
    )
    started = datetime.now(UTC)
    process = subprocess.Popen([sys.executable, str(script)], env=full_env)
    try:
        _wait_for_poll(stack, process, deployment, started, timeout_s)
        yield process
    finally:
        # Stop the serving process before the Prefect server: a runner whose server went first
        # hangs on shutdown.
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_poll(
    stack: Stack,
    process: subprocess.Popen[bytes],
    deployment: str,
    started: datetime,
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    with prefect_api(stack.settings.orchestration):
        while True:
            assert process.poll() is None, f"the process serving {deployment} exited"
            assert time.monotonic() < deadline, f"{deployment} not served within {timeout_s:.0f} s"
            try:
                with get_client(sync_client=True) as client:
                    polled = client.read_deployment_by_name(deployment).last_polled
            except ObjectNotFound:
                polled = None
            if polled is not None and polled >= started:
                return
            time.sleep(0.5)
