"""The ``tidemark`` command line: one entry point, a sub-command per lifecycle stage.

The sub-commands live with the code they run (``streaming.cli:simulate``, the ``infra.local.cli``
group …) and are declared as entry points of the group ``tidemark.commands`` in pyproject.toml.
This module imports none of them: a sub-command's module is loaded when that sub-command runs
(or when ``--help`` lists them all), so the kernel has no arrow up to a service and each
command pays only for what it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import typer
from typer.core import MarkupMode, TyperGroup
from typer.main import get_command_from_info, get_group
from typer.models import CommandInfo

from tidemark import kafka_io
from tidemark.config import get_settings
from tidemark.logs import configure

if TYPE_CHECKING:
    # Typer vendors click: its commands and contexts are these classes, not click's.
    from typer._click import Command, Context

COMMANDS = "tidemark.commands"
# Old names of renamed sub-commands: each still runs its command, hidden from --help and
# marked deprecated, so that scripts written against it keep working.
RENAMED = {"challenge": "shadow"}


def declared_commands() -> dict[str, EntryPoint]:
    """The sub-commands that installed packages declare, by name."""
    return {point.name: point for point in entry_points(group=COMMANDS)}


def as_command(
    name: str,
    target: typer.Typer | Callable[..., Any],
    markup: MarkupMode = "rich",
    *,
    old_name: bool = False,
) -> Command:
    """The command an entry point names, called ``name``: a Typer app is a group of
    sub-commands (``tidemark stack up``), a function a command of its own. Under an
    ``old_name`` it is hidden from the listing and deprecated."""
    if isinstance(target, typer.Typer):
        group = get_group(target)
        group.name = name
        group.hidden = group.deprecated = old_name
        return group
    return get_command_from_info(
        CommandInfo(name=name, callback=target, hidden=old_name, deprecated=old_name),
        pretty_exceptions_short=True,
        rich_markup_mode=markup,
    )


class DeclaredCommands(TyperGroup):
    """The commands defined here, then the declared ones, each imported only when asked for."""

    def list_commands(self, ctx: Context) -> list[str]:
        """Every command's name in alphabetical order, without importing any declared one."""
        return sorted({*declared_commands(), *super().list_commands(ctx)})

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        """A command defined here, or the declared one of that name (or of the name it was
        renamed to), imported now."""
        command = super().get_command(ctx, cmd_name)
        point = declared_commands().get(RENAMED.get(cmd_name, cmd_name))
        if command is None and point is not None:
            command = as_command(
                cmd_name, point.load(), self.rich_markup_mode, old_name=cmd_name in RENAMED
            )
        return command


app = typer.Typer(
    cls=DeclaredCommands,
    help="Tidemark: real-time predictions with a closed retraining loop.",
)


@app.callback()
def main(log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR.")) -> None:
    """Configure logging once for whichever sub-command runs."""
    configure(log_level.upper())


@app.command()
def topics() -> None:
    """Create the Kafka topics of every project of the stack that do not exist yet."""
    from tidemark.project.catalog import stack_catalog

    settings = get_settings()
    catalog = stack_catalog(settings.projects)
    created = [
        topic
        for project in catalog
        for topic in kafka_io.ensure_topics(catalog.settings(settings, project.name).kafka)
    ]
    typer.echo(f"created: {', '.join(created)}" if created else "all topics exist")
