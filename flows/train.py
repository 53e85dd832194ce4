"""The ``train`` flow: a project's first model, from its bootstrap CSV or a user's CSV."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.candidate import judge_and_register, window_tags
from flows.context import project_context
from flows.outcome import FlowOutcome
from tidemark.judging.decisions import Decision
from tidemark.orchestration import TRAIN_FLOW
from tidemark.project.tables import read_table
from tidemark.registry import writer as registry
from tidemark.registry.notes import Trigger
from tidemark.registry.writer import RecordSource
from tidemark.schemas import RetrainReason

BOOTSTRAP_SEED = 42


@flow(name=TRAIN_FLOW, log_prints=False)
def train(
    project: str | None = None,
    csv: str | None = None,
    seed: int = BOOTSTRAP_SEED,
    if_no_production: bool = False,
) -> FlowOutcome:
    """Train the model of ``project`` (the stack's default project when None) on a CSV in its
    shape: ``csv``, else the bootstrap CSV its project file names.

    The candidate is judged like any other: it is promoted when nothing is in production or
    when it beats production. ``if_no_production`` makes it a no-op when a model is in
    production already (what ``make up`` runs). Rows without a target are skipped. Fails
    (``ValueError``) when the project names no bootstrap CSV and none is given, or the CSV is
    not in the project's shape.
    """
    context = project_context(project)
    settings, spec = context.settings, context.project
    logger = get_run_logger()
    current = registry.production_version(settings.registry)
    if if_no_production and current is not None:
        logger.info("v%s is in production already; nothing to train", current)
        return FlowOutcome(
            model_name=context.model_name,
            version=None,
            decision=Decision.SKIPPED,
            reason=f"v{current} is in production already",
            production_version=current,
        )
    chosen = csv or spec.bootstrap
    if chosen is None:
        raise ValueError(
            f"{spec.name}: give a CSV to train on; the project file names no bootstrap CSV"
        )
    path = Path(chosen).resolve()
    data = read_table(context.contracts, path)
    data = data.loc[data[spec.target.name].notna()].reset_index(drop=True)
    source = RecordSource(path.as_uri(), {"file": path.name, "project": spec.name})
    logger.info("training %s on %d records from %s", spec.name, len(data), source.uri)
    return judge_and_register(
        context,
        data,
        source=source,
        trigger=Trigger(reason=RetrainReason.BOOTSTRAP.value),
        window=window_tags(data, spec.times.input),
        seed=seed,
    )
