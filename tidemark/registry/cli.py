"""``tidemark history`` (the production history of a project's model) and ``tidemark explain``
(the whole chain of one item's prediction).

Both read what the model server's ``GET /models/{name}/history`` and
``GET /models/{name}/predictions/{key}`` read: the registry over its REST API
(``tidemark.registry.reader``) and the project's topics (``tidemark.explain``), without MLflow's
client.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tidemark.config import Settings, get_settings
from tidemark.explain import Explanation, ItemNotFoundError, explain
from tidemark.project.catalog import Catalog, stack_catalog
from tidemark.project.contracts import Contracts
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
    return _project_or_exit(project)[0]


def _project_or_exit(project: str | None) -> tuple[Settings, Contracts]:
    settings = get_settings()
    try:
        catalog: Catalog = stack_catalog(settings.projects)
        return catalog.settings(settings, project), catalog.contracts(project)
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


def explain_command(
    key: Annotated[str, typer.Argument(help="The item's key, as its records carry it.")],
    project: ProjectOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the explanation as JSON (the API's answer).")
    ] = False,
) -> None:
    """Why an item got its prediction: its inputs, the version that predicted and when, the
    challenger's prediction, the version's lineage and evidence, and the truth and window once
    joined. Items are found on the predictions and scored topics, within their retention."""
    settings, contracts = _project_or_exit(project)
    try:
        explanation = explain(settings, contracts, key)
    except ItemNotFoundError as error:
        console.print(f"[bold red]not found:[/] {error}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(explanation.model_dump_json(indent=2))
        return
    show_explanation(explanation)


def show_explanation(explanation: Explanation) -> None:
    """The explanation as a few short tables."""
    out = console if console.is_terminal else Console(width=_PIPED_WIDTH)
    predicted = explanation.prediction
    out.print(f"[bold]{explanation.project} {explanation.key}[/]: {explanation.status.value}")
    out.print(explanation.note)
    item = Table("input", "value", title="inputs")
    for name, value in explanation.inputs.items():
        item.add_row(name, str(value))
    out.print(item)
    made = Table("", "version", "value", "when", title="prediction")
    made.add_row(
        "production",
        f"{predicted.model_name} v{predicted.version}",
        f"{predicted.value:g}" + ("" if predicted.segment_known else " (segment unknown)"),
        f"{predicted.predicted_at:%Y-%m-%d %H:%M:%S}",
    )
    if explanation.challenger is not None:
        made.add_row("challenger", f"v{explanation.challenger.version}",
                     f"{explanation.challenger.value:g}", "same batch")  # fmt: skip
    out.print(made)
    lineage = explanation.lineage
    if lineage is None:
        out.print(f"lineage: unavailable ({explanation.lineage_error or 'version not found'})")
    else:
        facts = Table("lineage", "", title=f"v{lineage.version}")
        window = f"{lineage.training_window_start} .. {lineage.training_window_end}"
        came = lineage.came
        arrival = f"{came.how.value} at {came.at:%Y-%m-%d %H:%M:%S}: {came.reason}" if came else "-"
        for name, value in (
            ("training run", lineage.run_url or lineage.run_id),
            ("training window", window),
            ("training rows", lineage.training_rows),
            ("data fingerprint", lineage.data_fingerprint),
            ("trigger", ", ".join(f"{k} {v}" for k, v in lineage.trigger.items())),
            ("decision", f"{lineage.decision}: {lineage.decision_reason}"),
            ("held-out evidence", f"n = {lineage.heldout_n}, p = {lineage.p_value}, error "
             f"{lineage.candidate_error} vs champion v{lineage.champion_version} "
             f"{lineage.champion_error}"),
            ("came to production", arrival),
            ("MLflow", lineage.mlflow_url),
            ("Prefect", lineage.prefect_url or "-"),
        ):  # fmt: skip
            facts.add_row(name, "-" if value is None else str(value))
        out.print(facts)
        if lineage.segments:
            seg = Table("segment", "held out", "candidate error", "champion error")
            for name, figures in lineage.segments.items():
                seg.add_row(name, str(figures.n), _figure(figures.candidate_error),
                            _figure(figures.champion_error))  # fmt: skip
            out.print(seg)
    truth = explanation.truth
    if truth is not None:
        out.print(
            f"truth {truth.value:g}, error {truth.judged_error:.4f} (abs {truth.abs_error:g}), "
            f"joined {truth.joined_at:%Y-%m-%d %H:%M:%S}, judged in the window "
            f"{truth.window_start:%Y-%m-%d %H:%M:%S} - {truth.window_end:%H:%M:%S} UTC"
        )


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
