"""GET /metrics: the Prometheus exposition of the server's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.dependencies import MetricsDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    """Requests and latency by endpoint and model version, predictions by species, the version."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
