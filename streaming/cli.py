"""``tidemark simulate``, ``tidemark score`` and ``tidemark join``: the streaming commands.

Each command imports what it runs inside its body: the simulator and the joiner never load
the model's libraries (scikit-learn, scipy, pandas; a ``--csv`` replay reads its file with
pandas), and the scorer never loads MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack, closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tidemark.config import Settings, get_settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from streaming.simulator import SimulationStats
    from tidemark.project.contracts import Contracts
    from tidemark.registry.watcher import ModelWatcher, ServedModel
    from tidemark.stream.dispatch import Route


def simulate(
    project: Annotated[
        list[str] | None,
        typer.Option(
            "--project",
            help="A project to simulate; repeat it for several at once (default: those the "
            "scenario files name, else the default project, the first of --projects).",
        ),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="A scenario of the project by name (a YAML file of the folder its project "
            "file names), or a scenario file, which names its project; repeat files for "
            "several projects. Default: each project's default scenario.",
        ),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(help="Replay this CSV in the project's shape instead of a scenario."),
    ] = None,
    order_by: Annotated[
        str | None, typer.Option(help="Replay the CSV in the order of this column.")
    ] = None,
    projects_dir: Annotated[
        Path, typer.Option("--projects", help="The folder of project files.", file_okay=False)
    ] = Path("projects"),
    rate: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Items per second (default: the scenario's pace if it has one, else no pause).",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Seed of the items and the lost truths (default: a fresh one, so that no key "
            "of an earlier run comes back).",
        ),
    ] = None,
    label_delay: Annotated[
        float, typer.Option(min=0, help="Seconds between an input and its truth.")
    ] = 0.0,
    missing_truths: Annotated[
        float,
        typer.Option(
            "--missing-truths",
            "--missing-weights",
            min=0,
            max=1,
            help="Fraction of items whose truth never arrives.",
        ),
    ] = 0.0,
    limit: Annotated[
        int | None, typer.Option(min=0, help="Stop after this many items (per project).")
    ] = None,
    loop: Annotated[
        bool, typer.Option(help="Repeat the scenario (next seed each pass) until stopped.")
    ] = False,
    event_time_start: Annotated[
        datetime | None,
        typer.Option(help="Simulate event time from this UTC instant instead of the wall clock."),
    ] = None,
    event_interval: Annotated[
        float,
        typer.Option(
            min=1e-6, help="Simulated seconds between two items (with --event-time-start)."
        ),
    ] = 1.0,
    progress_bar: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
) -> None:
    """Send each project's inputs and, after the label delay, their truths to Kafka."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from streaming.simulator import Feed, SimulationOptions, publish, scenario_rows
    from tidemark import kafka_io
    from tidemark.project.catalog import load_catalog
    from tidemark.project.spec import ProjectError
    from tidemark.simulation.generate import fresh_seed
    from tidemark.simulation.library import choose_scenarios
    from tidemark.simulation.scenario import ScenarioError
    from tidemark.stream.service import stop_on_signals

    if seed is None:
        seed = fresh_seed()
        typer.echo(f"seed {seed} (repeat this run with --seed {seed})")
    if event_time_start is not None and event_time_start.tzinfo is None:
        event_time_start = event_time_start.replace(tzinfo=UTC)
    options = SimulationOptions(
        rate=rate,
        label_delay_s=label_delay,
        missing_truth_fraction=missing_truths,
        seed=seed,
        limit=limit,
        event_time_start=event_time_start,
        event_interval_s=event_interval,
    )
    feeds: list[Feed] = []
    totals: dict[str, int | None] = {}
    settings = get_settings()
    try:
        catalog = load_catalog(projects_dir)

        def topics_for(name: str) -> dict[str, str]:
            own = catalog.settings(settings, name).kafka.topics
            return {"input": own.input, "truth": own.truth}

        if csv is not None:
            from tidemark.simulation.replay import csv_rows

            if scenario or len(project or []) > 1:
                raise ProjectError("--csv replays one file for one project, without --scenario")
            contracts = catalog.contracts(project[0] if project else None)
            rows = csv_rows(contracts, csv, seed, order_by)
            feeds.append(Feed(contracts, rows, options, topics_for(contracts.project.name)))
            totals[contracts.project.name] = len(rows)
        else:
            if order_by is not None:
                raise ProjectError("--order-by orders a --csv replay")
            for played in choose_scenarios(catalog, project or (), scenario or ()):
                paced = options
                if rate is None and played.event_interval_s is not None:
                    paced = options.model_copy(update={"rate": 1.0 / played.event_interval_s})
                contracts = catalog.contracts(played.project.name)
                played_rows = scenario_rows(played, seed, loop)
                feeds.append(Feed(contracts, played_rows, paced, topics_for(played.project.name)))
                totals[played.project.name] = None if loop else played.count
    except (ProjectError, ScenarioError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    kafka_io.ensure_topics(settings.kafka, [topic for f in feeds for topic in f.topics.values()])
    stop = stop_on_signals()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[truths]} truths"),
        TimeElapsedColumn(),
        disable=not progress_bar,
    ) as bar:
        tasks = {}
        for feed in feeds:
            total = totals[feed.name]
            if limit is not None:
                total = limit if total is None else min(limit, total)
            tasks[feed.name] = bar.add_task(feed.name, total=total, truths=0)

        def show(name: str, stats: SimulationStats) -> None:
            bar.update(tasks[name], completed=stats.inputs, truths=stats.truths)

        sent = publish(settings, feeds, progress=show, stop=stop.is_set)
    for feed in feeds:
        stats = sent[feed.name]
        topics = feed.topics
        unknown = f", {stats.truths_unknown} rows without one" if stats.truths_unknown else ""
        typer.echo(
            f"{feed.name}: sent {stats.inputs} inputs to {topics['input']} and {stats.truths} "
            f"truths to {topics['truth']} ({stats.truths_dropped} truths lost on purpose"
            f"{unknown})"
        )


ProjectsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--project",
        help="A project this process serves; repeat it for several (default: every project of "
        "the stack). One process serves them all, in one consumer group.",
    ),
]


def _projects(names: list[str] | None) -> tuple[Settings, list[tuple[Settings, Contracts]]]:
    """The stack's settings, and the settings and contracts of each project a process serves."""
    from tidemark.project.catalog import stack_catalog
    from tidemark.project.spec import ProjectError

    settings = get_settings()
    try:
        catalog = stack_catalog(settings.projects)
        chosen = [catalog.get(name) for name in dict.fromkeys(names)] if names else list(catalog)
    except ProjectError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    served = [(catalog.settings(settings, p.name), catalog.contracts(p.name)) for p in chosen]
    return settings, served


def _run(
    name: str,
    group_id: str,
    routes: list[Route],
    settings: Settings,
    port: int,
    registry: CollectorRegistry,
) -> None:
    """Run one process for every route's project: one group, one loop, each record to its
    project's handler."""
    from tidemark.stream.dispatch import Dispatch
    from tidemark.stream.service import run_service

    dispatch = Dispatch(group_id, routes)
    run_service(name, dispatch, settings, port, registry, topics=dispatch.topics)


def score(
    project: ProjectsOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Prometheus port (default: settings.stream.scorer_metrics_port)."),
    ] = None,
) -> None:
    """Score every project's inputs with its production model, hot-swapping on promotion.

    A challenger in shadow (the registry's challenger alias) predicts the same items beside it.
    A project without a production model waits, its inputs in Kafka; the others are scored.
    """
    from streaming.models import Adapted
    from streaming.scorer import REGISTRY, Scorer
    from tidemark.registry.watcher import ModelWatcher
    from tidemark.stream.dispatch import Route

    settings, served = _projects(project)
    watchers: list[ModelWatcher] = []
    routes = []
    for own, contracts in served:
        watcher = ModelWatcher(own.registry, contracts.project)
        challenger = ModelWatcher(
            own.registry, contracts.project, alias=own.registry.challenger_alias
        )
        watchers += [watcher, challenger]
        production = Adapted(contracts.project, _current(watcher))
        shadow = Adapted(contracts.project, _current(challenger))
        scorer = Scorer(own, contracts, production, shadow)
        routes.append(Route(contracts.project.name, scorer, own.kafka))
    for watcher in watchers:
        watcher.start()
    try:
        port = metrics_port or settings.stream.scorer_metrics_port
        _run("scorer", settings.stream.scorer_group_id, routes, settings, port, REGISTRY)
    finally:
        for watcher in reversed(watchers):
            watcher.stop()


def _current(watcher: ModelWatcher) -> Callable[[], ServedModel | None]:
    """What ``watcher`` serves now, read at each call."""
    return lambda: watcher.current


def join(
    project: ProjectsOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Prometheus port (default: settings.stream.joiner_metrics_port)."),
    ] = None,
) -> None:
    """Join every project's predictions with their truths into its scored topic and store."""
    from streaming.joiner import REGISTRY, Joiner
    from tidemark.store import TrainingStore
    from tidemark.stream.dispatch import Route

    settings, served = _projects(project)
    with ExitStack() as resources:
        routes = []
        for own, contracts in served:
            store = resources.enter_context(TrainingStore(own.store, contracts))
            joiner = resources.enter_context(closing(Joiner(own, store)))
            routes.append(Route(contracts.project.name, joiner, own.kafka))
        port = metrics_port or settings.stream.joiner_metrics_port
        _run("joiner", settings.stream.joiner_group_id, routes, settings, port, REGISTRY)
