"""``tidemark history``: the production history of a project's model, as a table.

It reads the registry over its REST API (``tidemark.registry.reader``), like the model server's
``GET /models/{name}/history``, so it answers in a fraction of a second without MLflow's client.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tidemark.config import Settings, get_settings
from tidemark.project.catalog import stack_catalog
from tidemark.project.spec import ProjectError
from tidemark.registry.history import ProductionInterval, moves_of, production_intervals
from tidemark.registry.reader import RegistryReader, RegistryUnavailableError

console = Console()
# Piped, rich would squeeze the table to 80 columns; a wide console keeps whole values.
_PIPED_WIDTH = 1_000

ProjectOption = Annotated[
    str | None,
    typer.Option("--project", help="The project (default: the stack's first).", show_default=False),
]


def project_settings_or_exit(project: str | None) -> Settings:
    """The settings of the named project of the stack (the default one for None)."""
    settings = get_settings()
    try:
        return stack_catalog(settings.projects).settings(settings, project)
    except ProjectError as error:
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(2) from None


def read_history(settings: Settings) -> list[ProductionInterval]:
    """The intervals of the settings' registered model, oldest first."""
    with RegistryReader(settings.registry) as reader:
        return production_intervals(moves_of(reader.model_tags() or {}))


def history_command(project: ProjectOption = None) -> None:
    """Every interval in which a version served: from when to when, how it came (bootstrap,
    evidence, emergency, shadow_win, forced, rollback), why, the figures, and why it left."""
    settings = project_settings_or_exit(project)
    registry = settings.registry
    try:
        intervals = read_history(settings)
    except RegistryUnavailableError as error:
        console.print(f"[bold red]error:[/] the registry at {registry.tracking_uri}: {error}")
        raise typer.Exit(1) from None
    table = Table(
        "version", "from", "to", "how it came", "why", "figures", "why it left",
        title=f"production history of {registry.model_name} @ {registry.tracking_uri}",
    )  # fmt: skip
    for interval in intervals:
        table.add_row(
            f"v{interval.version}",
            f"{interval.start:%Y-%m-%d %H:%M:%S}",
            f"{interval.end:%Y-%m-%d %H:%M:%S}" if interval.end else "[bold]serving[/]",
            interval.came.how.value,
            interval.came.reason,
            interval.came.figures.summary(),
            interval.why_left or "-",
        )
    (console if console.is_terminal else Console(width=_PIPED_WIDTH)).print(table)
    if not intervals:
        console.print(f"{registry.model_name} has no recorded move of production yet")
