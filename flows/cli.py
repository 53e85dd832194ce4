"""``tidemark train | retrain | promote | rollback | shadow | models | worker | serve-flows``.

The commands run the flows in this process (the Prefect server records them), so they work
without the deployment server. Flows and MLflow are imported inside the commands, to keep
every other ``tidemark`` command quick to start.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from tidemark.config import Settings, get_settings
from tidemark.judging.decisions import Decision
from tidemark.modelling.metrics import JUDGED_METRIC
from tidemark.orchestration import prefect_api

if TYPE_CHECKING:
    from flows.outcome import FlowOutcome

console = Console()
_PIPED_WIDTH = 1_000


ProjectOption = Annotated[
    str | None, typer.Option("--project", help="The project (default: the stack's default one).")
]


def _project_settings(settings: Settings, project: str | None) -> Settings:
    """The settings ``project`` runs with; exits with the catalog's error when it is unknown."""
    from tidemark.project.catalog import stack_catalog
    from tidemark.project.spec import ProjectError

    try:
        return stack_catalog(settings.projects).settings(settings, project)
    except ProjectError as error:
        console.print(f"[bold red]failed:[/] {error}")
        raise typer.Exit(1) from error


def _run(settings: Settings, flow: Callable[[], FlowOutcome]) -> FlowOutcome:
    from tidemark.registry.writer import RegistryError

    try:
        with prefect_api(settings.orchestration):
            return flow()
    except (ValueError, RegistryError) as error:
        console.print(f"[bold red]failed:[/] {error}")
        raise typer.Exit(1) from error


def _show(outcome: FlowOutcome) -> None:
    colour = {Decision.PROMOTED: "green", Decision.FORCED: "yellow", Decision.REJECTED: "red"}.get(
        outcome.decision, "cyan"
    )
    version = f"v{outcome.version}" if outcome.version else "no new version"
    console.print(
        f"{outcome.model_name} {version}: [{colour}]{outcome.decision}[/] - {outcome.reason}"
    )
    for name, metrics in (("candidate", outcome.candidate), ("champion", outcome.champion)):
        if metrics:
            judged = ", ".join(
                f"{key.replace('_', ' ')} {value:.4f}"
                for key, value in metrics.items()
                if key not in ("mae", "rmse", "n")
            )
            console.print(
                f"  {name:9} MAE {metrics['mae']:.4f}  RMSE {metrics['rmse']:.4f}  "
                f"{judged}  (n={int(metrics['n'])})"
            )
    for segment, n in outcome.heldout_n_by_segment.items():
        theirs = (outcome.champion_error_by_segment or {}).get(segment)
        ours = outcome.candidate_error_by_segment[segment]
        console.print(
            f"  {segment:9} {n} held out  candidate {ours:.4f}"
            + (f"  champion {theirs:.4f}" if theirs is not None else "")
        )
    if outcome.p_value is not None:
        console.print(f"  paired test p-value {outcome.p_value:.3g}")
    for segment, rows in outcome.rows_short.items():
        console.print(f"  {segment:9} needs {rows} more rows")
    console.print(f"  production: v{outcome.production_version or '-'}")


def train_command(
    project: Annotated[
        str | None,
        typer.Option("--project", help="The project to train (default: every project)."),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(help="A CSV in the project's shape (default: its bootstrap CSV)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the model.")] = 42,
    if_no_production: Annotated[
        bool,
        typer.Option("--if-no-production", help="Skip a project whose model is in production."),
    ] = False,
) -> None:
    """Train a project's model (bootstrap) and promote it if nothing is in production or it is
    better; without --project, every project of the stack from its bootstrap CSV."""
    from tidemark.project.catalog import stack_catalog

    settings = get_settings()
    if csv is not None and project is None:
        console.print("[bold red]failed:[/] --csv trains one project: name it with --project")
        raise typer.Exit(2)
    catalog = stack_catalog(settings.projects)
    names = [project] if project is not None else list(catalog.names)
    for name in names:
        spec, own = catalog.get(name), _project_settings(settings, name)
        if if_no_production and (current := _production(own)) is not None:
            console.print(
                f"{own.registry.model_name} v{current}: [cyan]{Decision.SKIPPED}[/] - "
                f"v{current} is in production already"
            )
            continue
        if csv is None and spec.bootstrap is None and project is None:
            console.print(
                f"{own.registry.model_name}: [cyan]{Decision.SKIPPED}[/] - its project file "
                "names no bootstrap CSV (train it with --project and --csv)"
            )
            continue
        _show(_run(settings, _training(name, csv, seed, if_no_production)))


def _training(
    project: str, csv: Path | None, seed: int, if_no_production: bool
) -> Callable[[], FlowOutcome]:
    """The ``train`` flow of one project, to be run by :func:`_run`."""
    from flows.train import train

    def run() -> FlowOutcome:
        return train(
            project=project,
            csv=str(csv) if csv else None,
            seed=seed,
            if_no_production=if_no_production,
        )

    return run


def _production(settings: Settings) -> str | None:
    """The production version, asked over REST; None when there is none or no answer.

    ``make up`` asks this on every start: one HTTP call answers it before Prefect, MLflow and
    pandas are imported. Without an answer the flow runs and reports the registry's state.
    """
    from tidemark.registry.reader import RegistryReader, RegistryUnavailableError

    try:
        with RegistryReader(settings.registry) as registry:
            found = registry.alias()
    except RegistryUnavailableError:
        return None
    return None if found is None else found.version


def retrain_command(
    reason: Annotated[str, typer.Option(help="error, drift, schedule or manual.")] = "manual",
    window_start: Annotated[datetime | None, typer.Option(help="UTC start of the window.")] = None,
    window_end: Annotated[datetime | None, typer.Option(help="UTC end of the window.")] = None,
    last_n: Annotated[int | None, typer.Option(help="The N most recent records instead.")] = None,
    project: ProjectOption = None,
) -> None:
    """Retrain on recent joined records; promote only if the candidate beats production."""
    from flows.retrain import retrain

    def utc(value: datetime | None) -> datetime | None:
        from datetime import UTC

        return value.replace(tzinfo=value.tzinfo or UTC) if value else None

    settings = get_settings()
    _show(
        _run(
            settings,
            lambda: retrain(
                reason=reason,
                window_start=utc(window_start),
                window_end=utc(window_end),
                last_n=last_n,
                project=project,
            ),
        )
    )


def promote_command(
    version: Annotated[str, typer.Argument(help="The version to put in production.")],
    force: Annotated[bool, typer.Option("--force", help="Skip the promotion policy.")] = False,
    project: ProjectOption = None,
) -> None:
    """Promote a version if it beats production on recent records (or with --force)."""
    from flows.promote import promote

    outcome = _run(get_settings(), lambda: promote(version=version, force=force, project=project))
    _show(outcome)
    if outcome.decision in (Decision.REJECTED, Decision.INSUFFICIENT_EVIDENCE):
        raise typer.Exit(1)


def rollback_command(
    reason: Annotated[
        str, typer.Option(help="Why, recorded on both versions.")
    ] = "rolled back by hand",
    project: ProjectOption = None,
) -> None:
    """Put the previous production version back in production."""
    from flows.rollback import rollback

    _show(_run(get_settings(), lambda: rollback(reason=reason, project=project)))


def shadow_command(
    version: Annotated[
        str | None, typer.Argument(help="The version to run in shadow beside production.")
    ] = None,
    retire: Annotated[
        bool, typer.Option("--retire", help="Take the challenger out of shadow instead.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why, recorded on the version.")] = None,
    project: ProjectOption = None,
) -> None:
    """Put a version in shadow (the challenger), or retire the challenger with --retire."""
    from flows.shadow import retire_challenger, shadow

    settings = get_settings()
    if retire and version is None:
        why = reason or "retired by hand"
        _show(_run(settings, lambda: retire_challenger(reason=why, project=project)))
    elif version is not None and not retire:
        chosen, why = version, reason or "put in shadow by hand"
        _show(_run(settings, lambda: shadow(version=chosen, reason=why, project=project)))
    else:
        console.print("[bold red]failed:[/] give a VERSION to put in shadow, or --retire")
        raise typer.Exit(2)


def models_command(project: ProjectOption = None) -> None:
    """The registered versions with their metrics, alias/stage, decision and live verdict, then
    the challenger in shadow with its running evidence."""
    from tidemark.registry import writer as registry

    settings = _project_settings(get_settings(), project)
    registered = settings.registry
    table = Table(
        "version", "alias / stage", "candidate error", "champion error", "rows", "trigger",
        "decision", "live verdict", "created",
        title=f"{registered.model_name} @ {registered.tracking_uri}",
    )  # fmt: skip
    for info in registry.list_versions(settings.registry):
        tags = info.tags
        where = ", ".join([*(f"@{a}" for a in info.aliases), info.stage])
        table.add_row(
            info.version,
            where,
            _short(_judged(tags, "candidate")),
            _short(_judged(tags, "champion")),
            tags.get("row_count", "-"),
            tags.get("trigger_reason", "-"),
            tags.get("decision", "-"),
            _live_verdict(tags),
            info.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    # Piped, rich would assume 80 columns and squeeze the table; a wide console prints it at its
    # natural width instead, so that grep and less see whole values.
    (console if console.is_terminal else Console(width=_PIPED_WIDTH)).print(table)
    _show_challenger(settings)


def _show_challenger(settings: Settings) -> None:
    from tidemark.judging.shadow import ShadowRole
    from tidemark.registry import writer as registry

    version = registry.challenger_version(settings.registry)
    if version is None:
        return
    state = registry.load_shadow_state(settings.registry, version)
    role = ShadowRole.of(registry.version_info(settings.registry, version).tags)
    what = "rollback watch" if role is ShadowRole.ROLLBACK_WATCH else "challenger"
    if state is None:
        console.print(f"{what}: v{version} in shadow, no live evidence yet")
        return
    console.print(
        f"{what}: v{version} in shadow against v{state.champion_version}: "
        f"{state.verdict.value} after {state.n} items in {state.looks} windows "
        f"(log LR {state.statistic:.2f}, always-valid p {state.p_value:.3g}) - {state.reason}"
    )


def _live_verdict(tags: dict[str, str]) -> str:
    # A version's last shadow evaluation on live items, as the shadow-verdict flow recorded it.
    verdict = tags.get("shadow_verdict")
    if verdict is None:
        return "-"
    return (
        f"{verdict} (n {tags.get('shadow_n', '?')}, log LR {_short(tags.get('shadow_statistic'))})"
    )


def _judged(tags: dict[str, str], who: str) -> str | None:
    # The judged error's tag: mean relative or mean absolute, as the project judges.
    for name in JUDGED_METRIC.values():
        if f"{who}_{name}" in tags:
            return tags[f"{who}_{name}"]
    return None


def _short(value: str | None) -> str:
    try:
        return f"{float(value):.4f}" if value not in (None, "none") else "-"
    except ValueError:
        return str(value)


def worker_command(
    deploy: Annotated[
        bool, typer.Option("--deploy", help="First (re)deploy every flow to the work pool.")
    ] = False,
) -> None:
    """Run a Prefect worker of the flows' work pool (TIDEMARK_ORCHESTRATION_WORK_POOL); `make up`
    runs one with --deploy, and more can run on other machines against
    TIDEMARK_ORCHESTRATION_API_URL."""
    from flows.worker import deploy_flows, run_worker

    settings = get_settings()
    if deploy:
        deploy_flows(settings)
    run_worker(settings)


def serve_flows_command() -> None:
    """Serve the flows' deployments from this one process, without a work pool or worker."""
    from flows.serve import serve_flows

    serve_flows(get_settings())
