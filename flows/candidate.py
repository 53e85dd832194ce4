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
from sklearn.pipeline import Pipeline

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
    MEASURED_AT,
    EvidenceRules,
    InsufficientEvidenceError,
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
)
from tidemark.model import (
    FEATURES,
    SPECIES,
    TARGET,
    DataError,
    TrainingDataError,
    TrainResult,
    check_data,
    evaluate,
    predict,
    relative_errors,
    train,
)
from tidemark.registry import writer as registry
from tidemark.registry.history import NO_FIGURES, HowItCame, MoveFigures, holdout_figures
from tidemark.registry.notes import BOOTSTRAP, Trigger, describe_version
from tidemark.registry.writer import RecordSource, RegistryError

SEED = 0


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
def fit_candidate(data: pd.DataFrame, seed: int) -> TrainResult:
    """Train a candidate on ``data``; ``TrainingDataError`` when the data is unusable."""
    return train(data, seed=seed)


@task(cache_policy=NO_CACHE)
def score_champion(settings: Settings, holdout: pd.DataFrame) -> ChampionScore:
    """Load the production model and measure it on the holdout, fish by fish."""
    version = registry.production_version(settings.registry)
    if version is None:
        return ChampionScore(None, None, None, None)
    champion = registry.load_model(settings.registry, version)
    try:
        return ChampionScore(
            version, evaluate(champion, holdout), relative_errors(champion, holdout), None
        )
    except DataError as error:
        return ChampionScore(version, None, None, str(error))


def judge(
    settings: Settings,
    model: Pipeline,
    holdout: pd.DataFrame,
    not_judged: Mapping[str, int] | None = None,
) -> Judgement:
    """Score ``model`` and production on the same held-out fish and apply the promotion rule."""
    candidate = evaluate(model, holdout)
    champion = score_champion.with_options(**retrying(settings))(settings, holdout)
    return judge_on_holdout(
        holdout[SPECIES],
        candidate,
        relative_errors(model, holdout),
        champion,
        margin=settings.retrain.promotion_margin,
        alpha=settings.retrain.promotion_alpha,
        not_judged=not_judged,
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
        heldout_n_by_species=evidence.n_by_species,
        p_value=evidence.test.p_value if evidence.test else None,
        candidate_mre_by_species=evidence.candidate_mre_by_species,
        champion_mre_by_species=evidence.champion_mre_by_species,
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
    settings: Settings, version: str, result: TrainResult, holdout: pd.DataFrame
) -> None:
    """Fail unless the registered artifact predicts exactly like the model that was judged."""
    loaded = registry.load_model(settings.registry, version)
    expected = predict(result.model, holdout).weight_kg
    if not np.allclose(predict(loaded, holdout).weight_kg, expected, rtol=1e-9, atol=0.0):
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


def window_tags(data: pd.DataFrame, start: Any = None, end: Any = None) -> dict[str, str]:
    """The training window: the records' own time span when known, else the requested one."""
    if MEASURED_AT in data.columns and not data.empty:
        times = pd.to_datetime(data[MEASURED_AT], utc=True)
        start, end = times.min().isoformat(), times.max().isoformat()
    return {
        "training_window_start": str(start) if start is not None else NO_METRIC,
        "training_window_end": str(end) if end is not None else NO_METRIC,
    }


def judge_and_register(
    settings: Settings,
    data: pd.DataFrame,
    *,
    source: RecordSource,
    trigger: Trigger,
    window: Mapping[str, str],
    required_species: Collection[str] | None = None,
    seed: int = SEED,
) -> FlowOutcome:
    """Train a candidate on the older records, judge it on the recent ones, register it, and
    place it where the ruling says: production, shadow, or nowhere.

    ``required_species`` (all species of ``data`` when None) must each have evidence enough;
    when one falls short, nothing is trained or registered and the outcome is
    ``insufficient_evidence``. Raises ``TrainingDataError`` on bad values, before anything is
    registered.
    """
    logger = get_run_logger()
    check_data(data, columns=(*FEATURES, TARGET), min_rows=1, error=TrainingDataError)
    try:
        split = split_holdout(data, EvidenceRules.of(settings.retrain), required=required_species)
    except InsufficientEvidenceError as shortfall:
        logger.warning("insufficient evidence: %s", shortfall)
        return short_of_evidence(settings, shortfall, row_count=len(data))
    result = fit_candidate(split.training, seed)
    judgement, placement = place(
        judge(settings, result.model, split.holdout, split.not_judged), trigger
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
    training_counts = split.training[SPECIES].value_counts().sort_index()
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
    )
    info = register_version.with_options(**retrying(settings))(
        settings.registry,
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
            verify_registered(settings, info.version, result, split.holdout)
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
