"""The steps that ``train``, ``retrain`` and ``promote`` share: check the evidence, fit a
candidate, judge it against production, register it, and carry the ruling out.

Every rule is ``tidemark.judging``'s: whether there is evidence enough, how the candidate is
judged, whether it goes to production, to shadow or nowhere. These steps read and write the
store and the registry around those rules: the version is registered either way with the
evidence and the decision in its tags, metrics and description, and it is promoted only after
the registered artifact has been loaded back and shown to predict exactly like the model that
was judged.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.context import ProjectContext
from flows.outcome import FlowOutcome
from tidemark.config import Settings
from tidemark.judging.candidate import (
    ChampionScore,
    Judgement,
    Placement,
    judge_on_holdout,
    not_reproduced,
    place,
    shadow_reason,
)
from tidemark.judging.decisions import Decision
from tidemark.judging.holdout import (
    EvidenceRules,
    InsufficientEvidenceError,
    segments_of,
    split_holdout,
)
from tidemark.judging.shadow import may_be_displaced
from tidemark.judging.tags import (
    FLOW_RUN_TAG,
    NO_METRIC,
    decision_tags,
    evidence_metrics,
    evidence_tags,
    metric_tags,
    per_segment,
)
from tidemark.modelling.frames import DataError, TrainingDataError, check_frame
from tidemark.modelling.training import TrainResult, evaluate, judged_errors, predict, train
from tidemark.project.spec import Project
from tidemark.registry import writer as registry
from tidemark.registry.history import NO_FIGURES, HowItCame, MoveFigures, holdout_figures
from tidemark.registry.notes import BOOTSTRAP, Trigger, describe_version
from tidemark.registry.writer import RecordSource, RegistryError

SEED = 0
# Per segment, where its training records begin and why (``data_window.<segment>``).
DATA_WINDOW_TAG = "data_window"
# MLflow keeps tag values up to 5000 characters; the reasons are far shorter.
TAG_LIMIT = 5000


@task(cache_policy=NO_CACHE)
def put_in_shadow(settings: Settings, version: str, reason: str) -> bool:
    """Make ``version`` the challenger, unless the version in shadow may not be displaced (a
    rollback watch). Whether it was put in shadow."""
    current = registry.challenger_version(settings.registry)
    if current is not None and not may_be_displaced(
        registry.version_info(settings.registry, current).tags
    ):
        return False
    registry.set_challenger(settings.registry, version, reason=reason)
    return True


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed task unless the failure is about the data or the request itself."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, ValueError | RegistryError)


def retrying(settings: Settings) -> dict[str, Any]:
    """Task options that retry transient MongoDB and MLflow errors."""
    return {
        "retries": settings.retrain.transient_retries,
        "retry_delay_seconds": settings.retrain.transient_retry_delay_s,
        "retry_condition_fn": transient,
    }


@task(cache_policy=NO_CACHE)
def fit_candidate(project: Project, data: pd.DataFrame, seed: int) -> TrainResult:
    """Train the project's model on ``data``; ``TrainingDataError`` when the data is unusable,
    ``FactoryError`` or ``UntrustedModelError`` when the user's model cannot be built or
    stored."""
    return train(project, data, seed=seed)


@task(cache_policy=NO_CACHE)
def score_champion(context: ProjectContext, holdout: pd.DataFrame) -> ChampionScore:
    """Load the production model and measure it on the holdout, item by item."""
    settings, project = context.settings, context.project
    version = registry.production_version(settings.registry)
    if version is None:
        return ChampionScore(None, None, None, None)
    champion = registry.load_model(settings.registry, version)
    try:
        return ChampionScore(
            version,
            evaluate(project, champion, holdout),
            judged_errors(project, champion, holdout),
            None,
        )
    except DataError as error:
        return ChampionScore(version, None, None, str(error))


def judge(
    context: ProjectContext,
    model: Any,
    holdout: pd.DataFrame,
    not_judged: Mapping[str, int] | None = None,
    focus: Collection[str] = (),
) -> Judgement:
    """Score ``model`` and production on the same held-out items and apply the promotion rule
    (the gain measured on the ``focus`` segments' items, when the alarm named them)."""
    settings, project = context.settings, context.project
    candidate = evaluate(project, model, holdout)
    champion = score_champion.with_options(**retrying(settings))(context, holdout)
    return judge_on_holdout(
        segments_of(holdout, project.segment),
        candidate,
        judged_errors(project, model, holdout),
        champion,
        margin=settings.retrain.promotion_margin,
        alpha=settings.retrain.promotion_alpha,
        not_judged=not_judged,
        focus=focus,
    )


def judged_outcome(
    settings: Settings,
    judgement: Judgement,
    *,
    version: str | None,
    production_version: str | None,
    row_count: int = 0,
) -> FlowOutcome:
    """The outcome of a flow that judged a model, with its evidence."""
    evidence = judgement.evidence
    champion = judgement.champion
    return FlowOutcome(
        model_name=settings.registry.model_name,
        version=version,
        decision=judgement.ruling.decision,
        reason=judgement.ruling.reason,
        production_version=production_version,
        row_count=row_count,
        candidate=judgement.candidate.as_dict(),
        champion=champion.metrics.as_dict() if champion.metrics else None,
        champion_version=champion.version,
        heldout_n=evidence.n,
        heldout_n_by_segment=evidence.n_by_segment,
        p_value=evidence.test.p_value if evidence.test else None,
        candidate_error_by_segment=evidence.candidate_error_by_segment,
        champion_error_by_segment=evidence.champion_error_by_segment,
    )


def short_of_evidence(
    settings: Settings, shortfall: InsufficientEvidenceError, *, row_count: int
) -> FlowOutcome:
    """The outcome of a retrain with too few rows: nothing trained, registered or promoted."""
    return FlowOutcome(
        model_name=settings.registry.model_name,
        version=None,
        decision=Decision.INSUFFICIENT_EVIDENCE,
        reason=str(shortfall),
        production_version=registry.production_version(settings.registry),
        row_count=row_count,
        rows_short=shortfall.rows_short,
    )


# Log the run and register the candidate with its tags and description, as a task of its own.
register_version = task(name="register_version", cache_policy=NO_CACHE)(registry.register)


@task(cache_policy=NO_CACHE)
def verify_registered(
    context: ProjectContext, version: str, result: TrainResult, holdout: pd.DataFrame
) -> None:
    """Fail unless the registered artifact, loaded as the scorers load it, predicts exactly like
    the model that was judged."""
    project = context.project
    loaded = registry.load_model(context.settings.registry, version)
    expected = predict(project, result.model, holdout, segments=result.segments).values
    found = predict(project, loaded, holdout, segments=result.segments).values
    if not np.allclose(found, expected, rtol=1e-9, atol=0.0):
        raise RegistryError(f"registered version {version} does not reproduce the judged model")


@task(cache_policy=NO_CACHE)
def promote_version(
    settings: Settings,
    version: str,
    how: HowItCame = HowItCame.FORCED,
    reason: str = "promoted by hand",
    figures: MoveFigures = NO_FIGURES,
) -> None:
    """Point production at ``version`` (alias and stage), recording how it came and why."""
    registry.promote(
        settings.registry,
        version,
        how=how,
        reason=reason,
        figures=figures,
        decided_by=flow_run.flow_name or "",
        flow_run_id=flow_run.id,
    )


def window_tags(
    data: pd.DataFrame, time: str, start: Any = None, end: Any = None
) -> dict[str, str]:
    """The training window: the records' own time span (their column ``time``) when known, else
    the requested one."""
    if time in data.columns and not data.empty:
        times = pd.to_datetime(data[time], utc=True)
        start, end = times.min().isoformat(), times.max().isoformat()
    return {
        "training_window_start": str(start) if start is not None else NO_METRIC,
        "training_window_end": str(end) if end is not None else NO_METRIC,
    }


def judge_and_register(
    context: ProjectContext,
    data: pd.DataFrame,
    *,
    source: RecordSource,
    trigger: Trigger,
    window: Mapping[str, str],
    required_segments: Collection[str] | None = None,
    seed: int = SEED,
    segment_windows: Mapping[str, str] | None = None,
) -> FlowOutcome:
    """Train the project's model on the older records, judge it on the recent ones, register
    it, and place it where the ruling says: production, shadow, or nowhere.

    ``required_segments`` (all segments of ``data`` when None) must each have evidence enough;
    when one falls short, nothing is trained or registered and the outcome is
    ``insufficient_evidence``. Raises ``TrainingDataError`` on bad values, before anything is
    registered. ``segment_windows`` says per segment where its records begin and why; it goes
    to the version's tags (``data_window.<segment>``) and description.
    """
    logger = get_run_logger()
    settings, project = context.settings, context.project
    check_frame(project, data, target=True, min_rows=1, error=TrainingDataError)
    try:
        split = split_holdout(
            data,
            EvidenceRules.of(settings.retrain),
            segment=project.segment,
            time=project.times.input,
            required=required_segments,
        )
    except InsufficientEvidenceError as shortfall:
        logger.warning("insufficient evidence: %s", shortfall)
        return short_of_evidence(settings, shortfall, row_count=len(data))
    result = fit_candidate(project, split.training, seed)
    judgement, placement = place(
        judge(context, result.model, split.holdout, split.not_judged, trigger.segments),
        trigger,
    )
    ruling, evidence, champion = judgement.ruling, judgement.evidence, judgement.champion
    logger.info("%s: %s", ruling.decision.value, ruling.reason)
    tags = {
        **window,
        "row_count": str(len(split.training)),
        "data_fingerprint": result.fingerprint,
        "trigger_reason": trigger.reason,
        **trigger.tags(),
        **metric_tags("candidate", judgement.candidate),
        **metric_tags("champion", champion.metrics),
        **evidence_tags(evidence),
        "champion_version": champion.version or NO_METRIC,
        **decision_tags(ruling),
        FLOW_RUN_TAG: flow_run.id or NO_METRIC,
        **{
            per_segment(DATA_WINDOW_TAG, name): text[:TAG_LIMIT]
            for name, text in (segment_windows or {}).items()
        },
    }
    metrics = {
        **result.metrics.as_dict("train_"),
        **judgement.candidate.as_dict("candidate_"),
        **(champion.metrics.as_dict("champion_") if champion.metrics else {}),
        **evidence_metrics(evidence),
    }
    params = {
        "seed": seed,
        "holdout_fraction": settings.retrain.holdout_fraction,
        "min_holdout_rows": settings.retrain.min_holdout_rows,
        "min_holdout_rows_per_segment": settings.retrain.min_holdout_rows_per_segment,
        "min_training_rows_per_segment": settings.retrain.min_training_rows_per_segment,
        "promotion_margin": settings.retrain.promotion_margin,
        "promotion_alpha": settings.retrain.promotion_alpha,
        "rows": len(data),
    }
    training_counts = segments_of(split.training, project.segment).value_counts().sort_index()
    description = describe_version(
        trigger=trigger,
        verdict=ruling,
        evidence=evidence,
        candidate=judgement.candidate,
        champion=champion.metrics,
        champion_version=champion.version,
        margin=settings.retrain.promotion_margin,
        alpha=settings.retrain.promotion_alpha,
        training_rows={str(s): int(n) for s, n in training_counts.items()},
        source=source.uri,
        data_windows=segment_windows,
    )
    info = register_version.with_options(**retrying(settings))(
        settings.registry,
        project,
        result.model,
        training_data=split.training,
        holdout=split.holdout,
        source=source,
        run_name=trigger.run_name(champion.version),
        description=description,
        params=params,
        metrics=metrics,
        tags=tags,
    )
    production = champion.version
    if placement.serves:
        try:
            verify_registered(context, info.version, result, split.holdout)
        except RegistryError as error:
            rejected = not_reproduced(str(error))
            registry.set_version_tags(settings.registry, info.version, decision_tags(rejected))
            raise
        if trigger.reason == BOOTSTRAP:
            how = HowItCame.BOOTSTRAP
        else:
            how = HowItCame.EMERGENCY if placement is Placement.WATCHED else HowItCame.EVIDENCE
        figures = holdout_figures(
            evidence, judgement.candidate, champion.metrics, trigger.summary()
        )
        promote_version.with_options(**retrying(settings))(
            settings, info.version, how, ruling.reason, figures
        )
        production = info.version
        if placement is Placement.WATCHED and champion.version is not None:
            registry.set_challenger(
                settings.registry, champion.version, reason=ruling.reason, rollback_watch=True
            )
            logger.info("v%s watches v%s in shadow", champion.version, info.version)
    elif placement is Placement.SHADOW and put_in_shadow.with_options(**retrying(settings))(
        settings, info.version, shadow_reason(ruling)
    ):
        logger.info("v%s runs in shadow against v%s", info.version, production)
    logger.info("%s v%s; production is v%s", settings.registry.model_name, info.version, production)
    return judged_outcome(
        settings,
        judgement,
        version=info.version,
        production_version=production,
        row_count=len(data),
    )
