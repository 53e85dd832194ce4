"""``tidemark monitor``: the service ``make up`` runs.

Heavy modules (Evidently, MLflow, Prefect) are imported inside the command, so that other
``tidemark`` sub-commands start quickly.
"""

from __future__ import annotations

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
    from tidemark.stream.service import serve, stop_on_signals

    settings = get_settings()
    stop = stop_on_signals()
    service = Monitor.create(settings)
    try:
        serve("monitor", service.run, stop, metrics_port or settings.monitor.metrics_port, REGISTRY)
    finally:
        service.close()
