"""``tidemark stack``: start, inspect and stop the local stack (what ``make up`` runs)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.local.provision import ProvisionError
from infra.local.services import platform_services
from infra.local.stack import Stack, StackError
from infra.local.urls import admin_token_hint, people_urls
from tidemark.config import get_settings

app = typer.Typer(help="The local stack: Kafka, FerretDB, MLflow, Prefect and the services.")
console = Console()

InfraOnly = Annotated[
    bool, typer.Option("--infra-only", help="Only Kafka, FerretDB, MLflow and Prefect.")
]


def _stack(infra_only: bool = False) -> Stack:
    return Stack(get_settings(), services=None if infra_only else platform_services)


@app.command()
def up(infra_only: InfraOnly = False) -> None:
    """Start the stack and wait until every component is healthy."""
    started = time.monotonic()
    stack = _stack(infra_only)
    try:
        with console.status("starting the stack (the first run fetches and builds it)"):
            stack.up()
    except (StackError, ProvisionError) as error:
        console.print(f"[bold red]make up failed:[/] {error}")
        raise typer.Exit(1) from error
    console.print(f"[green]Tidemark is up[/] in {time.monotonic() - started:.1f} s")
    if infra_only:
        console.print(f"  MLflow UI   {stack.settings.registry.tracking_uri}")
        console.print(f"  Prefect UI  {stack.settings.orchestration.ui_url}")
    else:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column("url", no_wrap=True)
        table.add_column("what")
        for url, what in people_urls(stack.settings):
            table.add_row(url, what)
        console.print(table)
        console.print(admin_token_hint(stack.settings, stack.state))
    console.print(f"state and logs in {stack.state.resolve()}")


@app.command()
def down() -> None:
    """Stop every process that this stack started."""
    if _stack(infra_only=True).down():
        console.print("[green]stack stopped[/]")
    else:
        console.print("no stack was running")


@app.command()
def status(infra_only: InfraOnly = False) -> None:
    """Show each component with its process state, health and URL; exit 1 if any is unhealthy."""
    rows = _stack(infra_only).status()
    table = Table("component", "process", "pid", "uptime", "health", "url")
    for row in rows:
        health = "[green]healthy[/]" if row.healthy else f"[red]{row.detail}[/]"
        uptime = f"{row.uptime_s // 60}m{row.uptime_s % 60:02d}s" if row.pid else "-"
        table.add_row(row.name, row.state, str(row.pid or "-"), uptime, health, row.url)
    console.print(table)
    if not all(row.healthy for row in rows):
        raise typer.Exit(1)


@app.command()
def logs(
    component: Annotated[
        str | None, typer.Argument(help="One component; all when omitted.")
    ] = None,
) -> None:
    """Follow the logs of the stack (Ctrl-C to stop)."""
    stack = _stack()
    files = (
        [stack.log_of(component)]
        if component
        else sorted(Path(stack.supervisor.logs).glob("*.log"))
    )
    if not files:
        console.print(f"no logs in {stack.supervisor.logs}: is the stack up?")
        raise typer.Exit(1)
    # tail takes over this process, so Ctrl-C stops it with nothing left behind.
    os.execvp("tail", ["tail", "-n", "20", "-F", *map(str, files)])  # noqa: S606
