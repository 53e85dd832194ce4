"""``tidemark train | retrain | promote | rollback | challenge | models | serve-flows``.

The commands run the flows in this process (the Prefect server records them), so they work
without the deployment server. Flows and MLflow are imported inside the commands, to keep
every other ``tidemark`` command quick to start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from tidemark.config import Settings, get_settings

if TYPE_CHECKING:
    from flows.candidate import Outcome

app = typer.Typer()
console = Console()


@contextmanager
def _prefect(settings: Settings) -> Iterator[None]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: settings.prefect_api_url}):
        yield


def _run(settings: Settings, flow: Callable[[], Outcome]) -> Outcome:
    from tidemark.registry import RegistryError

    try:
        with _prefect(settings):
            return flow()
    except (ValueError, RegistryError) as error:
        console.print(f"[bold red]failed:[/] {error}")
        raise typer.Exit(1) from error


def _show(outcome: Outcome) -> None:
    colour = {"promoted": "green", "forced": "yellow", "rejected": "red"}.get(
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
    console.print(f"  production: v{outcome.production_version or '-'}")


@app.command("train")
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
    from flows.train import train

    settings = get_settings()
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


@app.command("retrain")
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


@app.command("promote")
def promote_command(
    version: Annotated[str, typer.Argument(help="The version to put in production.")],
    force: Annotated[bool, typer.Option("--force", help="Skip the promotion policy.")] = False,
) -> None:
    """Promote a version if it beats production on recent records (or with --force)."""
    from flows.promote import promote

    outcome = _run(get_settings(), lambda: promote(version=version, force=force))
    _show(outcome)
    if outcome.decision == "rejected":
        raise typer.Exit(1)


@app.command("rollback")
def rollback_command(
    reason: Annotated[
        str, typer.Option(help="Why, recorded on both versions.")
    ] = "rolled back by hand",
) -> None:
    """Put the previous production version back in production."""
    from flows.rollback import rollback

    _show(_run(get_settings(), lambda: rollback(reason=reason)))


@app.command("challenge")
def challenge_command(
    version: Annotated[
        str | None, typer.Argument(help="The version to run in shadow beside production.")
    ] = None,
    retire: Annotated[
        bool, typer.Option("--retire", help="Take the challenger out of shadow instead.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why, recorded on the version.")] = None,
) -> None:
    """Put a version in shadow (the challenger), or retire the challenger with --retire."""
    from flows.challenge import challenge, retire_challenger

    settings = get_settings()
    if retire and version is None:
        why = reason or "retired by hand"
        _show(_run(settings, lambda: retire_challenger(reason=why)))
    elif version is not None and not retire:
        chosen, why = version, reason or "put in shadow by hand"
        _show(_run(settings, lambda: challenge(version=chosen, reason=why)))
    else:
        console.print("[bold red]failed:[/] give a VERSION to challenge, or --retire")
        raise typer.Exit(2)


@app.command("models")
def models_command() -> None:
    """The registered versions with their metrics, alias/stage and decision."""
    from tidemark import registry

    settings = get_settings()
    table = Table(
        "version", "alias / stage", "candidate MRE", "champion MRE", "rows", "trigger",
        "decision", "created", title=f"{settings.model_name} @ {settings.mlflow_tracking_uri}",
    )  # fmt: skip
    for info in registry.list_versions(settings):
        tags = info.tags
        where = ", ".join([*(f"@{a}" for a in info.aliases), info.stage])
        table.add_row(
            info.version,
            where,
            _short(tags.get("candidate_mre")),
            _short(tags.get("champion_mre")),
            tags.get("row_count", "-"),
            tags.get("trigger_reason", "-"),
            tags.get("decision", "-"),
            info.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)
    _show_challenger(settings)


def _show_challenger(settings: Settings) -> None:
    from tidemark import registry

    version = registry.challenger_version(settings)
    if version is None:
        return
    state = registry.load_challenge(settings, version)
    if state is None:
        console.print(f"challenger: v{version} in shadow, no live evidence yet")
        return
    console.print(
        f"challenger: v{version} in shadow against v{state.champion_version}: "
        f"{state.verdict.value} after {state.n} fish (log LR {state.statistic:.2f}, "
        f"always-valid p {state.p_value:.3g}) - {state.reason}"
    )


def _short(value: str | None) -> str:
    try:
        return f"{float(value):.4f}" if value not in (None, "none") else "-"
    except ValueError:
        return str(value)


@app.command("serve-flows")
def serve_flows_command() -> None:
    """Serve the train, retrain, promote and rollback deployments (what `make up` runs)."""
    from flows.serve import serve_flows

    serve_flows(get_settings())
