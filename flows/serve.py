"""One process serving the flows' deployments, without a work pool (``tidemark serve-flows``)."""

from __future__ import annotations

import os

from prefect import serve

from flows.deployments import deployments
from tidemark.config import Settings
from tidemark.orchestration import prefect_api


def serve_flows(settings: Settings) -> None:
    """Register the deployments and run their flow runs until interrupted."""
    # Flow runs are child processes: they read the API address from the environment.
    os.environ["PREFECT_API_URL"] = settings.orchestration.api_url
    with prefect_api(settings.orchestration):
        serve(*deployments())
