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
from tidemark.orchestration import prefect_api

if TYPE_CHECKING:
    from flows.outcome import FlowOutcome

console = Console()
_PIPED_WIDTH = 1_000


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
            console.print(
                f"  {name:9} MAE {metrics['mae']:.4f}  RMSE {metrics['rmse']:.4f}  "
                f"mean relative error {metrics['mean_relative_error']:.4f}  (n={int(metrics['n'])})"
            )
    for species, n in outcome.heldout_n_by_species.items():
        theirs = (outcome.champion_mre_by_species or {}).get(species)
        console.print(
            f"  {species:9} {n} held out  candidate {outcome.candidate_mre_by_species[species]:.4f}"
            + (f"  champion {theirs:.4f}" if theirs is not None else "")
        )
    if outcome.p_value is not None:
        console.print(f"  paired test p-value {outcome.p_value:.3g}")
    for species, rows in outcome.rows_short.items():
        console.print(f"  {species:9} needs {rows} more rows")
    console.print(f"  production: v{outcome.production_version or '-'}")


def train_command(
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario YAML (default: built in).")
    ] = None,
    phase: Annotated[list[str] | None, typer.Option(help="Scenario phase(s) to train on.")] = None,
    csv: Annotated[Path | None, typer.Option(help="Train on a CSV of fish instead.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated fish.")] = 42,
    if_no_production: Annotated[
        bool, typer.Option("--if-no-production", help="Do nothing if a model is in production.")
    ] = False,
) -> None:
    """Train a model (bootstrap) and promote it if nothing is in production or it is better."""
    settings = get_settings()
    if if_no_production and (current := _production(settings)) is not None:
        console.print(
            f"{settings.registry.model_name} v{current}: [cyan]{Decision.SKIPPED}[/] - "
            f"v{current} is in production already"
        )
        return
    from flows.train import train

    _show(
        _run(
            settings,
            lambda: train(
                scenario=str(scenario) if scenario else None,
                phases=phase or None,
                csv=str(csv) if csv else None,
                seed=seed,
                if_no_production=if_no_production,
            ),
        )
    )


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
            ),
        )
    )


def promote_command(
    version: Annotated[str, typer.Argument(help="The version to put in production.")],
    force: Annotated[bool, typer.Option("--force", help="Skip the promotion policy.")] = False,
) -> None:
    """Promote a version if it beats production on recent records (or with --force)."""
    from flows.promote import promote

    outcome = _run(get_settings(), lambda: promote(version=version, force=force))
    _show(outcome)
    if outcome.decision in (Decision.REJECTED, Decision.INSUFFICIENT_EVIDENCE):
        raise typer.Exit(1)


def rollback_command(
    reason: Annotated[
        str, typer.Option(help="Why, recorded on both versions.")
    ] = "rolled back by hand",
) -> None:
    """Put the previous production version back in production."""
    from flows.rollback import rollback

    _show(_run(get_settings(), lambda: rollback(reason=reason)))


def shadow_command(
    version: Annotated[
        str | None, typer.Argument(help="The version to run in shadow beside production.")
    ] = None,
    retire: Annotated[
        bool, typer.Option("--retire", help="Take the challenger out of shadow instead.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why, recorded on the version.")] = None,
) -> None:
    """Put a version in shadow (the challenger), or retire the challenger with --retire."""
    from flows.shadow import retire_challenger, shadow

    settings = get_settings()
    if retire and version is None:
        why = reason or "retired by hand"
        _show(_run(settings, lambda: retire_challenger(reason=why)))
    elif version is not None and not retire:
        chosen, why = version, reason or "put in shadow by hand"
        _show(_run(settings, lambda: shadow(version=chosen, reason=why)))
    else:
        console.print("[bold red]failed:[/] give a VERSION to put in shadow, or --retire")
        raise typer.Exit(2)


def models_command() -> None:
    """The registered versions with their metrics, alias/stage, decision and live verdict, then
    the challenger in shadow with its running evidence."""
    from tidemark.registry import writer as registry

    settings = get_settings()
    registered = settings.registry
    table = Table(
        "version", "alias / stage", "candidate MRE", "champion MRE", "rows", "trigger",
        "decision", "live verdict", "created",
        title=f"{registered.model_name} @ {registered.tracking_uri}",
    )  # fmt: skip
    for info in registry.list_versions(settings.registry):
        tags = info.tags
        where = ", ".join([*(f"@{a}" for a in info.aliases), info.stage])
        table.add_row(
            info.version,
            where,
            _short(tags.get("candidate_mean_relative_error")),
            _short(tags.get("champion_mean_relative_error")),
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
        f"{state.verdict.value} after {state.n} fish in {state.looks} windows "
        f"(log LR {state.statistic:.2f}, always-valid p {state.p_value:.3g}) - {state.reason}"
    )


def _live_verdict(tags: dict[str, str]) -> str:
    # A version's last shadow evaluation on live fish, as the shadow-verdict flow recorded it.
    verdict = tags.get("shadow_verdict")
    if verdict is None:
        return "-"
    return (
        f"{verdict} (n {tags.get('shadow_n', '?')}, log LR {_short(tags.get('shadow_statistic'))})"
    )


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
