"""``tidemark monitor``: the service ``make up`` runs, one per project.

Heavy modules (Evidently, MLflow, Prefect) are imported inside the command, so that other
``tidemark`` sub-commands start quickly.
"""

from __future__ import annotations

from contextlib import closing
from typing import Annotated

import typer

from tidemark.config import Settings, get_settings


def project_monitor_settings(settings: Settings, project: str | None) -> Settings:
    """The settings of the monitor of one ``project`` of the stack (the default one for None):
    its topics, registered model and collection, its loop overrides, and a consumer group of
    its own (the group id suffixed with the project's name, but for the default project), so
    that the monitors of several projects never share a group."""
    from tidemark.project.catalog import stack_catalog

    catalog = stack_catalog(settings.projects)
    chosen = catalog.get(project)
    scoped = catalog.settings(settings, chosen.name)
    if chosen is catalog.default:
        return scoped
    monitor = scoped.monitor.model_copy(
        update={"group_id": f"{scoped.monitor.group_id}.{chosen.name}"}
    )
    return scoped.model_copy(update={"monitor": monitor})


def monitor(
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Prometheus port (default: settings.monitor.metrics_port)."),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            help="The project whose scored stream this monitor judges (default: the stack's "
            "default project). Run one monitor per project.",
        ),
    ] = None,
) -> None:
    """Judge a project's scored stream window by window (error, drift) and trigger retrains
    through Prefect."""
    from monitoring.metrics import REGISTRY
    from monitoring.monitor import Monitor
    from tidemark.project.catalog import stack_catalog
    from tidemark.stream.service import run_service

    settings = project_monitor_settings(get_settings(), project)
    contracts = stack_catalog(settings.projects).contracts(project)
    with closing(Monitor.create(settings, contracts)) as watched:
        port = metrics_port or settings.monitor.metrics_port
        run_service("monitor", watched, settings, port, REGISTRY)
