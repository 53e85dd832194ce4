"""Waiting on the loop's processes, and reading its retrain runs from Prefect."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from tests.integration.conftest import Processes
from tidemark.config import Settings
from tidemark.orchestration import RETRAIN_FLOW, prefect_api
from tidemark.registry import writer as registry


def wait(condition: Callable[[], bool], timeout_s: float, what: str, processes: Processes) -> None:
    """Poll ``condition`` every second; fail if a process of the test exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        processes.check_alive()
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s: {what}"
        time.sleep(1)


def ready(check: Callable[[], None]) -> bool:
    """Whether ``check`` passes now (it raises until what it checks is ready)."""
    try:
        check()
    except Exception:
        return False
    return True


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def retrain_runs(settings: Settings) -> list[str]:
    """The ids of every run of the retrain deployment."""
    with (
        prefect_api(settings.orchestration),
        get_client(sync_client=True) as client,
    ):
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[RETRAIN_FLOW]))
        )
    return [str(run.id) for run in runs]


def what_the_loop_did(settings: Settings, requests: Sequence[object]) -> str:
    """For a failed story's message: the monitor's requests, the retrain runs as Prefect ended
    them, and each registered version with its decision and the first line of its reason."""
    with (
        prefect_api(settings.orchestration),
        get_client(sync_client=True) as client,
    ):
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[RETRAIN_FLOW]))
        )
    lines = [f"requests: {list(requests)}", "retrain runs:"]
    lines += [
        f"  {run.id} {run.state_name} tags={sorted(run.tags)} created={run.created}" for run in runs
    ]
    lines.append("registered versions (per segment: held out, candidate / champion error, harm p):")
    for info in registry.list_versions(settings.registry):
        lines.append(
            f"  v{info.version} {info.tags.get('decision', '?')} {info.aliases}: "
            f"{(info.description or '').splitlines()[:1]}"
        )
        tags = info.tags
        for segment in sorted(t.split(".", 1)[1] for t in tags if t.startswith("heldout_n.")):
            figures = [
                tags.get(f"{name}.{segment}", "-")
                for name in (
                    "heldout_n",
                    "candidate_mean_relative_error",
                    "champion_mean_relative_error",
                    "harm_p_value",
                )
            ]
            lines.append(f"    {segment}: {' '.join(figures)}")
    return "\n".join(lines)
