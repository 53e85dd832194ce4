"""The ``tidemark`` command line: one entry point, a sub-command per lifecycle stage."""

from __future__ import annotations

import typer

from flows.cli import app as flows_app
from infra.local.cli import app as stack_app
from monitoring.cli import demo, monitor, report
from serving.cli import serve
from streaming.cli import join, score, simulate
from tidemark import kafka_io
from tidemark.config import get_settings
from tidemark.logs import configure

app = typer.Typer(help="Tidemark: real-time fish weight prediction with a closed retraining loop.")
app.add_typer(stack_app, name="stack")
app.add_typer(flows_app)
app.command()(simulate)
app.command()(score)
app.command()(join)
app.command()(serve)
app.command()(monitor)
app.command()(report)
app.command()(demo)


@app.callback()
def main(log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR.")) -> None:
    """Configure logging once for whichever sub-command runs."""
    configure(log_level.upper())


@app.command()
def topics() -> None:
    """Create the data contract's Kafka topics that do not exist yet."""
    created = kafka_io.ensure_topics(get_settings())
    typer.echo(f"created: {', '.join(created)}" if created else "all topics exist")
