"""The ``train`` flow: a bootstrap model from a generated scenario or a user's CSV."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.candidate import judge_and_register, window_tags
from flows.outcome import FlowOutcome
from tidemark.config import get_settings
from tidemark.judging.decisions import Decision
from tidemark.orchestration import TRAIN_FLOW
from tidemark.registry import writer as registry
from tidemark.registry.notes import Trigger
from tidemark.registry.writer import RecordSource
from tidemark.scenario import generate_frame, load_csv, load_scenario, to_frame
from tidemark.schemas import RetrainReason

BOOTSTRAP_PHASES = ("salmon",)
BOOTSTRAP_SEED = 42


@flow(name=TRAIN_FLOW, log_prints=False)
def train(
    scenario: str | None = None,
    phases: list[str] | None = None,
    csv: str | None = None,
    seed: int = BOOTSTRAP_SEED,
    if_no_production: bool = False,
) -> FlowOutcome:
    """Train on a scenario's phases (the default scenario's first phase) or on a CSV of fish.

    The candidate is judged like any other: it is promoted when nothing is in production or
    when it beats production. ``if_no_production`` makes it a no-op when a model is in
    production already (what ``make up`` runs).
    """
    settings = get_settings()
    logger = get_run_logger()
    current = registry.production_version(settings.registry)
    if if_no_production and current is not None:
        logger.info("v%s is in production already; nothing to train", current)
        return FlowOutcome(
            model_name=settings.registry.model_name,
            version=None,
            decision=Decision.SKIPPED,
            reason=f"v{current} is in production already",
            production_version=current,
        )
    if csv is not None:
        path = Path(csv).resolve()
        data = to_frame(load_csv(path))
        source = RecordSource(path.as_uri(), {"file": path.name})
    else:
        loaded = load_scenario(scenario)
        chosen = list(phases or BOOTSTRAP_PHASES)
        data = generate_frame(loaded, seed, chosen)
        source = RecordSource(
            f"scenario:{scenario or 'default'}",
            {"scenario": loaded.name, "phases": chosen, "seed": seed},
        )
    logger.info("training on %d records from %s", len(data), source.uri)
    return judge_and_register(
        settings,
        data.drop(columns=["phase"], errors="ignore"),
        source=source,
        trigger=Trigger(reason=RetrainReason.BOOTSTRAP.value),
        window=window_tags(data),
    )
