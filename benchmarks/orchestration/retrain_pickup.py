"""How soon a requested retrain starts: one ``serve`` process against a worker of the pool.

A private Prefect server (the local stack's component, on free ports in a temporary folder)
runs the ``retrain/retrain`` deployment first from ``tidemark serve-flows`` (its runner polling
every 5 s, as ``make up`` ran it before the work pool) and then from ``tidemark worker
--deploy`` (the pool's worker polling every ``prefect_worker_poll_s``). Each run is requested
with ``run_deployment(..., timeout=0)`` as the monitor does, after the previous one ended, and
timed from its creation to PENDING (a runner or worker took it) and to RUNNING (its process
has imported the flow and started it). MongoDB and MLflow point at closed ports, so each run
fails soon after it starts: only the time to start is measured.

Usage: ``python -m benchmarks.orchestration.retrain_pickup [--runs 3]``; prints the table and
writes benchmarks/results/orchestration_retrain_pickup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from rich.console import Console
from rich.table import Table

from infra.local import components
from infra.local.supervisor import Supervisor
from tidemark.config import SECTIONS, Settings
from tidemark.orchestration import (
    FLOW_NAMES,
    RETRAIN_DEPLOYMENT,
    deployment_name,
    deployments_ready,
    prefect_api,
    work_pool_ready,
)

RESULTS = Path(__file__).resolve().parents[1] / "results" / "orchestration_retrain_pickup.json"


def _free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _wait(check: Callable[[], None], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check()
            return
        except Exception:  # not ready yet: every check raises until it is
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _one_run(settings: Settings) -> tuple[float, float]:
    """Seconds from a retrain run's creation to PENDING and to RUNNING."""
    with prefect_api(settings.orchestration):
        run = run_deployment(RETRAIN_DEPLOYMENT, parameters={"reason": "manual"}, timeout=0)
        with get_client(sync_client=True) as client:
            while True:
                current = client.read_flow_run(run.id)  # type: ignore[union-attr]
                if current.state is not None and current.state.is_final():
                    break
                time.sleep(0.5)
            states = client.read_flow_run_states(current.id)
    created = current.created
    assert created is not None
    at = {s.type: s.timestamp for s in reversed(states)}
    return (
        (at[StateType.PENDING] - created).total_seconds(),
        (at[StateType.RUNNING] - created).total_seconds(),
    )


def _measure(
    settings: Settings, mode: str, runs: int, env: dict[str, str]
) -> list[tuple[float, float]]:
    command, ready = {
        "serve": (["serve-flows"], deployments_ready),
        "worker": (["worker", "--deploy"], work_pool_ready),
    }[mode]
    process = subprocess.Popen(
        [sys.executable, "-m", "tidemark", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Generous: on a loaded 2-core machine importing the flows alone takes half a minute.
        _wait(lambda: ready(settings.orchestration), 600)
        return [_one_run(settings) for _ in range(runs)]
    finally:
        process.terminate()
        process.wait(60)
        with prefect_api(settings.orchestration), get_client(sync_client=True) as client:
            for flow in FLOW_NAMES:
                with suppress(ObjectNotFound):  # never deployed: the process did not come up
                    found = client.read_deployment_by_name(deployment_name(flow))
                    client.delete_deployment(found.id)


def main() -> None:
    """Run both modes on one private Prefect server and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    prefect_port, closed_mongo, closed_mlflow = _free_ports(3)
    with tempfile.TemporaryDirectory(prefix="tidemark-bench-") as state_dir:
        state = Path(state_dir)
        settings = Settings(
            orchestration_api_url=f"http://127.0.0.1:{prefect_port}/api",
            store_uri=f"mongodb://127.0.0.1:{closed_mongo}/",
            store_timeout_ms=500,
            registry_tracking_uri=f"http://127.0.0.1:{closed_mlflow}",
            retrain_transient_retries=0,
            stack_state_dir=state,
        )
        server = components.prefect(settings, state)
        server.prepare()
        supervisor = Supervisor(state)
        supervisor.write_config([server])
        supervisor.start()
        try:
            _wait(server.check, settings.stack.start_timeout_s)
            env = os.environ | settings.as_env(*SECTIONS) | components.prefect_env(settings, state)
            results = {
                "serve-flows (runner poll 5 s)": _measure(
                    settings, "serve", runs, env | {"PREFECT_RUNNER_POLL_FREQUENCY": "5"}
                ),
                f"worker (poll {settings.orchestration.worker_poll_s:g} s)": _measure(
                    settings, "worker", runs, env
                ),
            }
        finally:
            supervisor.stop()
    table = Table(title=f"Requested retrain → run taken / running, seconds ({runs} runs each)")
    for column in ("mode", "taken p50", "taken max", "running p50", "running max"):
        table.add_column(column)
    for mode, timings in results.items():
        taken, running = zip(*timings, strict=True)
        table.add_row(
            mode,
            *(f"{f(v):.1f}" for v in (taken, running) for f in (statistics.median, max)),
        )
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                mode: [{"taken_s": taken, "running_s": running} for taken, running in timings]
                for mode, timings in results.items()
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
