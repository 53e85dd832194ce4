"""``tidemark monitor``: the service ``make up`` runs, one process for every project.

Heavy modules (Evidently, MLflow, Prefect) are imported inside the command, so that other
``tidemark`` sub-commands start quickly.
"""

from __future__ import annotations

from contextlib import ExitStack, closing
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
        list[str] | None,
        typer.Option(
            "--project",
            help="A project this process judges; repeat it for several (default: every project "
            "of the stack). Each has its own loop and consumer group, in one process.",
        ),
    ] = None,
) -> None:
    """Judge every project's scored stream window by window (error, drift) and trigger retrains
    through Prefect."""
    from monitoring.metrics import REGISTRY
    from monitoring.monitor import Monitor
    from tidemark.project.catalog import stack_catalog
    from tidemark.project.spec import ProjectError
    from tidemark.stream.projects import ProjectLoop, run_project_loops

    settings = get_settings()
    try:
        catalog = stack_catalog(settings.projects)
        names = list(dict.fromkeys(project)) if project else list(catalog.names)
        served = [(project_monitor_settings(settings, n), catalog.contracts(n)) for n in names]
    except ProjectError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    with ExitStack() as resources:
        loops = []
        for own, contracts in served:
            watched = resources.enter_context(closing(Monitor.create(own, contracts)))
            loops.append(ProjectLoop(contracts.project.name, watched, own))
        port = metrics_port or settings.monitor.metrics_port
        run_project_loops("monitor", loops, port, REGISTRY)
