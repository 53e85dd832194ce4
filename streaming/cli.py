"""``tidemark simulate``, ``tidemark score`` and ``tidemark join``: the streaming commands.

Each command imports what it runs inside its body: the simulator and the joiner never load
the model's libraries (scikit-learn, scipy, pandas), and the scorer never loads MLflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tidemark.config import get_settings

if TYPE_CHECKING:
    from streaming.simulator import SimulationStats
    from tidemark.scenario import FishRecord


def simulate(
    scenario: Annotated[
        Path | None,
        typer.Option(
            help="Scenario YAML, or the name of a packaged one (default, tutorial, never-seen, "
            "growth); the salmon → walleye → salmon default by default."
        ),
    ] = None,
    csv: Annotated[
        Path | None, typer.Option(help="Replay this CSV of fish instead of a scenario.")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Fish per second (default: the scenario's pace if it has one, else no pause).",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Seed of the fish and the lost weights (default: a fresh one, so that no fish "
            "id of an earlier run comes back).",
        ),
    ] = None,
    label_delay: Annotated[
        float, typer.Option(min=0, help="Seconds between measuring and weighing a fish.")
    ] = 0.0,
    missing_weights: Annotated[
        float, typer.Option(min=0, max=1, help="Fraction of fish whose weight never arrives.")
    ] = 0.0,
    limit: Annotated[int | None, typer.Option(min=0, help="Stop after this many fish.")] = None,
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
            min=1e-6, help="Simulated seconds between two fish (with --event-time-start)."
        ),
    ] = 1.0,
    progress_bar: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
) -> None:
    """Send fish measurements and, after the label delay, their weights to Kafka."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from streaming.simulator import SimulationOptions, publish, scenario_fish
    from tidemark import kafka_io
    from tidemark.scenario import fresh_seed, load_csv, load_scenario
    from tidemark.stream.service import stop_on_signals

    settings = get_settings()
    kafka_io.ensure_topics(settings.kafka)
    if seed is None:
        seed = fresh_seed()
        typer.echo(f"seed {seed} (repeat this run with --seed {seed})")
    if csv is not None:
        records = load_csv(csv)
        fish: Iterator[FishRecord] = iter(records)
        total: int | None = len(records)
    else:
        loaded = load_scenario(scenario)
        fish = scenario_fish(loaded, seed, loop)
        if rate is None and loaded.event_interval_s is not None:
            rate = 1.0 / loaded.event_interval_s
        total = None if loop else loaded.count
    if limit is not None:
        total = limit if total is None else min(limit, total)
    if event_time_start is not None and event_time_start.tzinfo is None:
        event_time_start = event_time_start.replace(tzinfo=UTC)
    options = SimulationOptions(
        rate=rate,
        label_delay_s=label_delay,
        missing_weight_fraction=missing_weights,
        seed=seed,
        limit=limit,
        event_time_start=event_time_start,
        event_interval_s=event_interval,
    )
    stop = stop_on_signals()
    with Progress(
        TextColumn("[bold]fish"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[weights]} weights"),
        TimeElapsedColumn(),
        disable=not progress_bar,
    ) as bar:
        task = bar.add_task("simulate", total=total, weights=0)

        def show(stats: SimulationStats) -> None:
            bar.update(task, completed=stats.measurements, weights=stats.weights)

        stats = publish(settings, fish, options, progress=show, stop=stop.is_set)
    typer.echo(
        f"sent {stats.measurements} measurements and {stats.weights} weights "
        f"({stats.weights_dropped} weights lost on purpose)"
    )


def score(
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Prometheus port (default: settings.stream.scorer_metrics_port)."),
    ] = None,
) -> None:
    """Score fish.measurements with the production model, hot-swapping on promotion.

    A challenger in shadow (the registry's challenger alias) predicts the same fish beside it.
    """
    from streaming.scorer import REGISTRY, Scorer
    from tidemark.registry.watcher import ModelWatcher
    from tidemark.stream.service import run_service

    settings = get_settings()
    watcher = ModelWatcher(settings.registry)
    challenger = ModelWatcher(settings.registry, alias=settings.registry.challenger_alias)
    watcher.start()
    challenger.start()
    try:
        scorer = Scorer(settings, lambda: watcher.current, lambda: challenger.current)
        port = metrics_port or settings.stream.scorer_metrics_port
        run_service("scorer", scorer, settings, port, REGISTRY)
    finally:
        challenger.stop()
        watcher.stop()


def join(
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Prometheus port (default: settings.stream.joiner_metrics_port)."),
    ] = None,
) -> None:
    """Join predictions with true weights into fish.scored and the training store."""
    from streaming.joiner import REGISTRY, Joiner
    from tidemark.project.catalog import stack_catalog
    from tidemark.store import TrainingStore
    from tidemark.stream.service import run_service

    settings = get_settings()
    contracts = stack_catalog(settings.projects).contracts()
    with (
        TrainingStore(settings.store, contracts) as store,
        closing(Joiner(settings, store)) as joiner,
    ):
        port = metrics_port or settings.stream.joiner_metrics_port
        run_service("joiner", joiner, settings, port, REGISTRY)
