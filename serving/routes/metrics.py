"""GET /metrics: the Prometheus exposition of the server's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.dependencies import ServingDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(serving: ServingDep) -> Response:
    """Requests and latency by endpoint and model version, predictions by species, the version."""
    return Response(generate_latest(serving.metrics.registry), media_type=CONTENT_TYPE_LATEST)
