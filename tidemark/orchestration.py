"""The orchestration contract: the registry's flows as Prefect deployments, and the way to them.

Each flow is deployed under its own name (``retrain/retrain`` …); the monitor, the
demo, the stack's health check and the tests start or look up runs by these names. Prefect is
imported inside the functions, so that reading a name costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tidemark.config import OrchestrationSettings

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

TRAIN_FLOW = "train"
RETRAIN_FLOW = "retrain"
PROMOTE_FLOW = "promote"
ROLLBACK_FLOW = "rollback"
SHADOW_FLOW = "shadow"
RETIRE_CHALLENGER_FLOW = "retire-challenger"
SHADOW_VERDICT_FLOW = "shadow-verdict"
FLOW_NAMES = (
    TRAIN_FLOW,
    RETRAIN_FLOW,
    PROMOTE_FLOW,
    ROLLBACK_FLOW,
    SHADOW_FLOW,
    RETIRE_CHALLENGER_FLOW,
    SHADOW_VERDICT_FLOW,
)


def deployment_name(flow: str) -> str:
    """A flow's deployment by its full name (``flow/deployment``), as Prefect looks it up."""
    return f"{flow}/{flow}"


TRAIN_DEPLOYMENT = deployment_name(TRAIN_FLOW)
RETRAIN_DEPLOYMENT = deployment_name(RETRAIN_FLOW)
PROMOTE_DEPLOYMENT = deployment_name(PROMOTE_FLOW)
ROLLBACK_DEPLOYMENT = deployment_name(ROLLBACK_FLOW)
SHADOW_VERDICT_DEPLOYMENT = deployment_name(SHADOW_VERDICT_FLOW)
RETIRE_CHALLENGER_DEPLOYMENT = deployment_name(RETIRE_CHALLENGER_FLOW)


@contextmanager
def prefect_api(orchestration: OrchestrationSettings) -> Iterator[None]:
    """Within the block, Prefect's client (flows, deployments, runs) talks to our server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: orchestration.api_url}):
        yield


def open_client(orchestration: OrchestrationSettings) -> SyncPrefectClient:
    """A started synchronous client of our server, for a caller that queries it often (exit it
    to close it). A client made per query reads Prefect's settings afresh and builds a TLS
    context: that was a third of the monitor's CPU when it made two per gated alarm."""
    from prefect.client.orchestration import get_client

    with prefect_api(orchestration):
        client = get_client(sync_client=True)
    return client.__enter__()


def deployments_ready(orchestration: OrchestrationSettings, timeout_s: float = 3.0) -> None:
    """Raise unless every flow's deployment exists and a runner is polling it
    (status READY): a runner or a worker of its work pool."""
    import httpx

    api = orchestration.api_url.rstrip("/")
    for flow in FLOW_NAMES:
        name = deployment_name(flow)
        response = httpx.get(f"{api}/deployments/name/{name}", timeout=timeout_s)
        response.raise_for_status()
        status = response.json().get("status")
        if status != "READY":
            raise RuntimeError(f"deployment {name} is {status}")


def work_pool_ready(orchestration: OrchestrationSettings, timeout_s: float = 3.0) -> None:
    """Raise unless every flow is deployed to the work pool and a worker of that pool is
    online (it has sent a heartbeat recently: the server then calls the pool READY).

    Only GET requests: they need no CSRF token, which the server asks of any other.
    """
    import httpx

    api = orchestration.api_url.rstrip("/")
    pool = orchestration.work_pool
    for flow in FLOW_NAMES:
        name = deployment_name(flow)
        response = httpx.get(f"{api}/deployments/name/{name}", timeout=timeout_s)
        response.raise_for_status()
        if response.json().get("work_pool_name") != pool:
            raise RuntimeError(f"deployment {name} is not on the work pool {pool!r}")
    response = httpx.get(f"{api}/work_pools/{pool}", timeout=timeout_s)
    response.raise_for_status()
    if response.json().get("status") != "READY":
        raise RuntimeError(f"no worker of the work pool {pool!r} is online")
    deployments_ready(orchestration, timeout_s)


def crash_stale_runs(
    client: SyncPrefectClient,
    deployment: str,
    older_than_s: float,
    now: datetime | None = None,
) -> list[str]:
    """Mark crashed every run of ``deployment`` that has been pending or running for longer
    than ``older_than_s``; returns their ids.

    A run whose worker was killed stays RUNNING for ever in Prefect's eyes (the stack runs no
    heartbeat automation), and the monitor waits on a run in flight before it starts another
    for the same incident: a stale run would hold its incident for good. Crashing it frees the
    incident, and the next alarm starts a new run. Raises ``prefect.exceptions.ObjectNotFound``
    when the deployment does not exist.
    """
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    moment = now or datetime.now(UTC)
    bound = moment - timedelta(seconds=older_than_s)
    crashed: list[str] = []
    with client:
        found = client.read_deployment_by_name(deployment)
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING])
                )
            ),
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
        )
        for run in runs:
            state = run.state
            if state is None or state.timestamp is None or state.timestamp > bound:
                continue
            message = (
                f"{state.type.value.lower()} since {state.timestamp.isoformat()}, longer than "
                f"{older_than_s:g} s: its worker is gone"
            )
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            crashed.append(str(run.id))
    return crashed


class SegmentStart(BaseModel):
    """Where a retrain reads one segment's items from, and why (the ``retrain`` flow's
    ``segment_starts`` parameter, one per segment, sent by the monitor).

    An incident of a segment says that segment's items no longer follow the law the model
    learned from some moment on: the retrain reads that segment only from there (the items
    measured at or after ``start``), never its items from before the change.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: AwareDatetime
    reason: str = Field(min_length=1, max_length=500)
