"""``tidemark projects`` (list, schema, messages) and ``tidemark init`` (a project from a CSV)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tidemark.project.catalog import load_catalog, topics_of
from tidemark.project.infer import infer_project, read_csv
from tidemark.project.spec import ProjectError, schema_text

console = Console()
app = typer.Typer(
    help="The projects (prediction streams) of the stack.", invoke_without_command=True
)

Folder = Annotated[
    Path, typer.Option("--dir", help="The folder of project files.", file_okay=False)
]


def _fail(error: ProjectError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(2)


@app.callback()
def projects(ctx: typer.Context, folder: Folder = Path("projects")) -> None:
    """List every project: its name, key, segment, target, features and topics."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        catalog = load_catalog(folder)
    except ProjectError as error:
        raise _fail(error) from None
    table = Table("project", "key", "segment", "target (error)", "features", "topics")
    for project in catalog:
        topics = topics_of(project)
        features = ", ".join(f.name + (f" [{f.unit}]" if f.unit else "") for f in project.features)
        target = project.target
        table.add_row(
            project.name + (" (default)" if project is catalog.default else ""),
            project.key,
            project.segment or "-",
            f"{target.name}{f' [{target.unit}]' if target.unit else ''} ({target.judged_by})",
            features,
            f"{topics['input']} → {topics['truth']}",
        )
    console.print(table)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a project file (published as docs/project.schema.json)."""
    typer.echo(schema_text(), nl=False)


@app.command()
def messages(
    name: Annotated[str, typer.Argument(help="The project's name.")],
    folder: Folder = Path("projects"),
) -> None:
    """Print the JSON Schema of each of a project's messages (input, truth, prediction …)."""
    try:
        contracts = load_catalog(folder).contracts(name)
    except ProjectError as error:
        raise _fail(error) from None
    typer.echo(json.dumps(contracts.json_schemas(), indent=2))


def init_command(
    name: Annotated[str, typer.Argument(help="The project's name (lower-case, digits, '-').")],
    csv: Annotated[Path, typer.Option(help="A CSV of past items with their truth.")],
    target: Annotated[str, typer.Option(help="The column to predict.")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write it (default: projects/NAME.toml).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a project file inferred from a CSV: types, bounds, a segment guess; add units."""
    path = out or Path("projects") / f"{name}.toml"
    if path.exists() and not force:
        console.print(f"[bold red]error:[/] {path} exists (--force to overwrite it)")
        raise typer.Exit(2)
    try:
        text, notes = infer_project(name, read_csv(csv), target, str(csv))
    except ProjectError as error:
        raise _fail(error) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    console.print(f"wrote {path}")
    for note in notes:
        console.print(f"  - {note}")
    console.print("Check every guess, add the units, then: tidemark train --project " + name)
