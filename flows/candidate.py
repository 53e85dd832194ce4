"""The steps that ``train`` and ``retrain`` share: fit a candidate, judge it, register it.

Candidate and champion are scored on the same held-out most-recent records; the promotion
policy decides; the version is registered either way with its metrics and the decision in its
tags; it is promoted only when the policy says so and only after the registered artifact has
been loaded back and shown to predict exactly like the model that was judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tidemark import registry
from tidemark.config import Settings
from tidemark.model import (
    FEATURES,
    MIN_TRAINING_ROWS,
    TARGET,
    DataError,
    Metrics,
    TrainingDataError,
    TrainResult,
    check_data,
    evaluate,
    predict,
    train,
)
from tidemark.promotion import (
    MEASURED_AT,
    NO_METRIC,
    Decision,
    Verdict,
    decide,
    decision_tags,
    metric_tags,
    split_holdout,
)
from tidemark.registry import RecordSource, RegistryError

SEED = 0


class Outcome(BaseModel):
    """What a flow did to the registry, as the CLI prints it and a flow run returns it."""

    model_name: str
    version: str | None
    decision: str
    reason: str
    production_version: str | None
    row_count: int = 0
    candidate: dict[str, float] | None = None
    champion: dict[str, float] | None = None
    champion_version: str | None = None


@dataclass(frozen=True, slots=True)
class ChampionScore:
    """The production model's metrics on the holdout, or why it has none."""

    version: str | None
    metrics: Metrics | None
    error: str | None


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed task unless the failure is about the data or the request itself."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, ValueError | RegistryError)


def retrying(settings: Settings) -> dict[str, Any]:
    """Task options that retry transient MongoDB and MLflow errors."""
    return {
        "retries": settings.transient_retries,
        "retry_delay_seconds": settings.transient_retry_delay_s,
        "retry_condition_fn": transient,
    }


@task(cache_policy=NO_CACHE)
def fit_candidate(data: pd.DataFrame, seed: int) -> TrainResult:
    """Train a candidate on ``data``; ``TrainingDataError`` when the data is unusable."""
    return train(data, seed=seed)


@task(cache_policy=NO_CACHE)
def score_champion(settings: Settings, holdout: pd.DataFrame) -> ChampionScore:
    """Load the production model and measure it on the holdout."""
    version = registry.production_version(settings)
    if version is None:
        return ChampionScore(None, None, None)
    champion = registry.load_model(settings, version)
    try:
        return ChampionScore(version, evaluate(champion, holdout), None)
    except DataError as error:
        return ChampionScore(version, None, str(error))


@task(cache_policy=NO_CACHE)
def register_version(
    settings: Settings,
    result: TrainResult,
    *,
    training_data: pd.DataFrame,
    holdout: pd.DataFrame,
    source: RecordSource,
    params: Mapping[str, str | int | float],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
) -> registry.VersionInfo:
    """Log the run and register the candidate with its tags."""
    return registry.register(
        settings,
        result.model,
        training_data=training_data,
        holdout=holdout,
        source=source,
        params=params,
        metrics=metrics,
        tags=tags,
    )


@task(cache_policy=NO_CACHE)
def verify_registered(
    settings: Settings, version: str, result: TrainResult, holdout: pd.DataFrame
) -> None:
    """Fail unless the registered artifact predicts exactly like the model that was judged."""
    loaded = registry.load_model(settings, version)
    expected = predict(result.model, holdout).weight_kg
    if not np.allclose(predict(loaded, holdout).weight_kg, expected, rtol=1e-9, atol=0.0):
        raise RegistryError(f"registered version {version} does not reproduce the judged model")


@task(cache_policy=NO_CACHE)
def promote_version(settings: Settings, version: str) -> None:
    """Point production at ``version`` (alias and stage)."""
    registry.promote(settings, version)


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
    trigger_reason: str,
    window: Mapping[str, str],
    extra_tags: Mapping[str, str] | None = None,
    seed: int = SEED,
) -> Outcome:
    """Train a candidate on the older records, judge it on the recent ones, register it, and
    promote it when the policy says so. Raises ``TrainingDataError`` on unusable data, before
    anything is registered."""
    logger = get_run_logger()
    check_data(data, columns=(*FEATURES, TARGET), min_rows=1, error=TrainingDataError)
    training, holdout = split_holdout(
        data,
        fraction=settings.holdout_fraction,
        min_holdout=settings.min_holdout_rows,
        min_train=MIN_TRAINING_ROWS,
    )
    result = fit_candidate(training, seed)
    candidate = evaluate(result.model, holdout)
    champion = score_champion.with_options(**retrying(settings))(settings, holdout)
    verdict = decide(
        candidate,
        champion.metrics,
        margin=settings.promotion_margin,
        champion_version=champion.version,
        champion_error=champion.error,
    )
    logger.info("%s: %s", verdict.decision.value, verdict.reason)
    tags = {
        **window,
        "row_count": str(len(training)),
        "holdout_row_count": str(len(holdout)),
        "data_fingerprint": result.fingerprint,
        "trigger_reason": trigger_reason,
        **metric_tags("candidate", candidate),
        **metric_tags("champion", champion.metrics),
        "champion_version": champion.version or NO_METRIC,
        **decision_tags(verdict),
        **(extra_tags or {}),
    }
    metrics = {
        **result.metrics.as_dict("train_"),
        **candidate.as_dict("candidate_"),
        **(champion.metrics.as_dict("champion_") if champion.metrics else {}),
    }
    params = {
        "seed": seed,
        "holdout_fraction": settings.holdout_fraction,
        "promotion_margin": settings.promotion_margin,
        "rows": len(data),
    }
    info = register_version.with_options(**retrying(settings))(
        settings,
        result,
        training_data=training,
        holdout=holdout,
        source=source,
        params=params,
        metrics=metrics,
        tags=tags,
    )
    production = champion.version
    if verdict.promote:
        try:
            verify_registered(settings, info.version, result, holdout)
        except RegistryError as error:
            rejected = Verdict(Decision.REJECTED, str(error))
            registry.set_version_tags(settings, info.version, decision_tags(rejected))
            raise
        promote_version.with_options(**retrying(settings))(settings, info.version)
        production = info.version
    logger.info("%s v%s; production is v%s", settings.model_name, info.version, production)
    return Outcome(
        model_name=settings.model_name,
        version=info.version,
        decision=verdict.decision.value,
        reason=verdict.reason,
        production_version=production,
        row_count=len(data),
        candidate=candidate.as_dict(),
        champion=champion.metrics.as_dict() if champion.metrics else None,
        champion_version=champion.version,
    )
