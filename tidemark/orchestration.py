"""The orchestration contract: the registry's flows as Prefect deployments, and the way to them.

The flows serve each deployment under its flow's name (``retrain/retrain`` …); the monitor, the
demo, the stack's health check and the tests start or look up runs by these names. Prefect is
imported inside the functions, so that reading a name costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tidemark.config import Settings

TRAIN_FLOW = "train"
RETRAIN_FLOW = "retrain"
PROMOTE_FLOW = "promote"
ROLLBACK_FLOW = "rollback"
SHADOW_VERDICT_FLOW = "shadow-verdict"
FLOW_NAMES = (TRAIN_FLOW, RETRAIN_FLOW, PROMOTE_FLOW, ROLLBACK_FLOW, SHADOW_VERDICT_FLOW)


def deployment_name(flow: str) -> str:
    """A flow's deployment by its full name (``flow/deployment``), as Prefect looks it up."""
    return f"{flow}/{flow}"


TRAIN_DEPLOYMENT = deployment_name(TRAIN_FLOW)
RETRAIN_DEPLOYMENT = deployment_name(RETRAIN_FLOW)
PROMOTE_DEPLOYMENT = deployment_name(PROMOTE_FLOW)
ROLLBACK_DEPLOYMENT = deployment_name(ROLLBACK_FLOW)
SHADOW_VERDICT_DEPLOYMENT = deployment_name(SHADOW_VERDICT_FLOW)


@contextmanager
def prefect_api(settings: Settings) -> Iterator[None]:
    """Within the block, Prefect's client (flows, deployments, runs) talks to our server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: settings.prefect_api_url}):
        yield


def deployments_ready(settings: Settings, timeout_s: float = 3.0) -> None:
    """Raise unless every flow's deployment exists and a runner is polling it (status READY)."""
    import httpx

    api = settings.prefect_api_url.rstrip("/")
    for flow in FLOW_NAMES:
        name = deployment_name(flow)
        response = httpx.get(f"{api}/deployments/name/{name}", timeout=timeout_s)
        response.raise_for_status()
        status = response.json().get("status")
        if status != "READY":
            raise RuntimeError(f"deployment {name} is {status}")
