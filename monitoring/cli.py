"""``tidemark monitor``: the service ``make up`` runs.

Heavy modules (Evidently, MLflow, Prefect) are imported inside the command, so that other
``tidemark`` sub-commands start quickly.
"""

from __future__ import annotations

from contextlib import closing
from typing import Annotated

import typer

from tidemark.config import get_settings


def monitor(
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Prometheus port (default: settings.monitor.metrics_port)."),
    ] = None,
) -> None:
    """Judge fish.scored window by window (error, drift) and trigger retrains through Prefect."""
    from monitoring.metrics import REGISTRY
    from monitoring.monitor import Monitor
    from tidemark.stream.service import run_service

    settings = get_settings()
    with closing(Monitor.create(settings)) as monitor:
        port = metrics_port or settings.monitor.metrics_port
        run_service("monitor", monitor, settings, port, REGISTRY)
