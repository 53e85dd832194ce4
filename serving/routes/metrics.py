"""GET /metrics: the Prometheus exposition of the server's metrics (of all its workers)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from serving.dependencies import ServingDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(serving: ServingDep) -> Response:
    """Requests and latency by endpoint and model version, predictions by project and segment,
    the version in service."""
    return Response(serving.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
