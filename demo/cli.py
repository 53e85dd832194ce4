"""``tidemark report`` (the picture of the loop) and ``tidemark demo`` (what ``make demo`` runs).

Heavy modules (Evidently, MLflow, Prefect, matplotlib) are imported inside the commands, so
that other ``tidemark`` sub-commands start quickly.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tidemark.config import Settings, get_settings
from tidemark.project.contracts import Scored


class Source(StrEnum):
    """Where ``tidemark report`` reads the scored fish."""

    KAFKA = "kafka"
    MONGO = "mongo"


def report(
    source: Annotated[
        Source, typer.Option(help="Where the scored fish come from: the topic or the store.")
    ] = Source.KAFKA,
    last: Annotated[
        int, typer.Option(min=1, help="With --source mongo: how many recent records.")
    ] = 20_000,
    output: Annotated[
        Path | None,
        typer.Option(help="The PNG to write (default: STATE_DIR/reports/error-timeline.png)."),
    ] = None,
    html: Annotated[
        bool,
        typer.Option(
            "--html", help="Also an Evidently report (error and drift) of the latest window."
        ),
    ] = False,
) -> None:
    """Draw the relative error over time, with model versions and retrains marked (PNG)."""
    from demo import history
    from demo.timeline import draw_timeline

    settings = get_settings()
    scored = (
        history.scored_from_kafka(settings)
        if source is Source.KAFKA
        else history.scored_from_store(settings, last)
    )
    if not scored:
        typer.echo(f"no scored fish in {source.value} yet: nothing to draw")
        raise typer.Exit(1)
    requests = history.retrain_requests(settings)
    decisions = history.model_decisions(settings)
    path = draw_timeline(
        scored,
        requests,
        decisions=decisions,
        threshold=settings.monitor.error_threshold,
        window_s=settings.monitor.window_s,
        path=output or settings.stack.state_dir / "reports" / "error-timeline.png",
    )
    versions = sorted({r.prediction.model_version for r in scored})
    typer.echo(
        f"{len(scored)} scored fish, versions {', '.join(versions)}, "
        f"{len(requests)} retrain requests, {len(decisions)} shadow decisions"
    )
    typer.echo(f"picture: {path.resolve()}")
    _truth_coverage(settings, scored)
    if html:
        _latest_window_report(settings, scored)


def _truth_coverage(settings: Settings, scored: list[Scored], shown: int = 10) -> None:
    """The truth coverage of the last ``shown`` windows: the predictions topic beside the
    scored items."""
    from demo import history
    from monitoring.coverage import coverage_line, coverage_of
    from tidemark.project.catalog import stack_catalog

    contracts = stack_catalog(settings.projects).contracts(None)
    predictions = history.read_topic(
        settings, settings.kafka.topics.predictions, contracts.decode_prediction
    )
    windows = coverage_of(
        predictions, scored, settings.monitor.window_s, settings.stream.join_window_s
    )
    typer.echo(f"truth coverage of the last {min(shown, len(windows))} windows:")
    for coverage in windows[-shown:]:
        typer.echo("  " + coverage_line(coverage, settings.monitor.coverage_floor))


def _latest_window_report(settings: Settings, scored: list[Scored]) -> None:
    from monitoring.drift import features_frame
    from monitoring.production import ProductionFollower
    from monitoring.reports import ReportStore
    from monitoring.windows import TumblingWindows
    from tidemark.project.catalog import stack_catalog

    project = stack_catalog(settings.projects).default
    windows = TumblingWindows(settings.monitor.window_s, 0, judged_by=project.target.judged_by)
    start = windows.window_start(max(r.at for r in scored))
    latest = [r for r in scored if r.at >= start]
    follower = ProductionFollower(settings, project)
    production = follower.refresh()
    follower.stop()
    drift = None
    detector = production.detector if production is not None else None
    features = features_frame(latest, project)
    if detector is not None and not detector.comparable(features).empty:
        drift = detector.check(features, timestamp=start)
    elif detector is None:
        typer.echo("no production model with reference data: error report only")
    else:
        typer.echo("no fish of a species the production model knows: error report only")
    store = ReportStore(settings, project)
    saved = store.save(
        label=f"on demand v{production.version if production else 'none'}",
        window_end=start + windows.size,
        records=latest,
        drift=drift,
    )
    typer.echo(f"latest window {start:%Y-%m-%d %H:%M:%S} UTC: {len(latest)} fish")
    if drift is not None:
        typer.echo(f"  drift share {drift.share:.2f}, drifted: {', '.join(drift.drifted_columns)}")
    for page in saved.pages:
        typer.echo(f"  report: {page.resolve()}")
    typer.echo(f"  workspace: evidently ui --workspace {saved.workspace.resolve()}")


def demo(
    windows: Annotated[
        str,
        typer.Option(help="How many monitor windows each phase (salmon, walleye, salmon) lasts."),
    ] = "2,4,2",
    min_shift_s: Annotated[
        float,
        typer.Option(help="The walleye phase lasts at least this long (the retrain's time)."),
    ] = 240.0,
) -> None:
    """Play the default drift scenario on the running stack and tell what the loop did."""
    import logging
    from contextlib import AbstractContextManager

    from demo.run import line_settle_s, run_demo
    from infra.local.services import platform_services
    from infra.local.stack import Stack

    settings = get_settings()
    # kafka-python warns about its own slow event loop on a busy machine: noise in a story.
    logging.getLogger("kafka").setLevel(logging.ERROR)
    counts = [float(n) for n in windows.split(",")]
    stack = Stack(settings, services=platform_services)
    states = {row.name: row for row in stack.status()}
    if not states.get("kafka") or not states["kafka"].healthy:
        typer.echo("the stack is not running: start it with `make up`")
        raise typer.Exit(1)
    if not (states.get("monitor") and states["monitor"].healthy):
        typer.echo("warning: the monitor is not running, so nothing will trigger a retrain")
    line: AbstractContextManager[object] | None = None
    if states.get("simulator") and states["simulator"].state == "RUNNING":
        typer.echo("pausing the gentle simulator of `make up` for the demo")
        line = stack.paused("simulator")
    shift_s = max(counts[1] * settings.monitor.window_s, min_shift_s) if len(counts) > 1 else 0
    settle_s = line_settle_s(settings) if line is not None else 0.0
    minutes = (sum(counts[:1] + counts[2:]) * settings.monitor.window_s + shift_s + settle_s) / 60
    typer.echo(
        f"playing salmon → walleye → salmon over about {minutes:.0f} min "
        f"({settings.monitor.window_s:g} s windows, threshold "
        f"{settings.monitor.error_threshold:.2f})"
    )
    result = run_demo(
        settings,
        phase_windows=counts,
        min_shift_s=min_shift_s,
        say=typer.echo,
        line_paused=line,
    )
    incident = result.incident
    typer.echo("")
    for text in incident.lines():
        typer.echo(text)
    detected = incident.requests[0].requested_at if incident.requests else None
    promoted = incident.promoted.seen_at if incident.promoted else None
    typer.echo(
        "from the shift: detection "
        + _seconds(incident.since_shift(detected))
        + ", promotion "
        + _seconds(incident.since_shift(promoted))
        + ", first prediction by the new version "
        + _seconds(incident.since_shift(incident.first_prediction))
    )
    typer.echo(f"retrain requests during the demo: {result.retrain_requests}")
    typer.echo(f"picture: {result.picture}")


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"
