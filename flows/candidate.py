"""The steps that ``train``, ``retrain`` and ``promote`` share: check the evidence, fit a
candidate, judge it against production, register it.

Records are split per species (tidemark.promotion): a retrain short of evidence trains nothing,
registers nothing and says how many rows each species still needs. Otherwise candidate and
champion are scored on the same held-out most-recent fish; the promotion policy decides on the
paired test and the margin; the version is registered either way with the evidence and the
decision in its tags, metrics and description; it is promoted only when the policy says so and
only after the registered artifact has been loaded back and shown to predict exactly like the
model that was judged.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel
from sklearn.pipeline import Pipeline

from tidemark.challenge import ROLE_ROLLBACK_WATCH, SHADOW_ROLE_TAG
from tidemark.config import Settings
from tidemark.model import (
    FEATURES,
    SPECIES,
    TARGET,
    DataError,
    Metrics,
    TrainingDataError,
    TrainResult,
    check_data,
    evaluate,
    predict,
    relative_errors,
    train,
)
from tidemark.promotion import (
    FLOW_RUN_TAG,
    MEASURED_AT,
    NO_METRIC,
    Decision,
    Evidence,
    EvidenceRules,
    InsufficientEvidenceError,
    Verdict,
    decide,
    decision_tags,
    evidence_metrics,
    evidence_tags,
    gather_evidence,
    metric_tags,
    split_holdout,
)
from tidemark.registry import writer as registry
from tidemark.registry.notes import Trigger, describe_version
from tidemark.registry.writer import RecordSource, RegistryError

SEED = 0


class Outcome(BaseModel):
    """What a flow did to the registry, as the CLI prints it and a flow run returns it.

    ``decision`` is one of promoted, rejected, forced, insufficient_evidence (nothing trained or
    registered; ``rows_short`` says how many more rows each species needs, ``all`` for the
    holdout as a whole), unchanged or skipped. The ``heldout_*`` and ``*_mre_by_species``
    fields give the evidence the decision rests on; ``candidate_mre_by_species`` is also the
    error a retrain achieved on each species, the level an alarm that it could not beat is
    closed at.
    """

    model_name: str
    version: str | None
    decision: str
    reason: str
    production_version: str | None
    row_count: int = 0
    candidate: dict[str, float] | None = None
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    heldout_n: int = 0
    heldout_n_by_species: dict[str, int] = {}
    p_value: float | None = None
    candidate_mre_by_species: dict[str, float] = {}
    champion_mre_by_species: dict[str, float] | None = None
    rows_short: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class ChampionScore:
    """The production model's per-fish errors on the holdout, or why it has none."""

    version: str | None
    metrics: Metrics | None
    errors: np.ndarray[Any, np.dtype[np.float64]] | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Judgement:
    """A candidate judged against the champion on the same held-out fish."""

    verdict: Verdict
    candidate: Metrics
    champion: ChampionScore
    evidence: Evidence


def deserves_shadow(judgement: Judgement) -> bool:
    """Whether a candidate the held-out test did not promote should run in shadow.

    It should when it was rejected for want of evidence, not for being worse: a champion to
    compare with, and a held-out mean relative error no higher than the champion's, overall
    and on every species judged. The live fish then decide (``tidemark.challenge``), with as
    many of them as it takes, where the holdout had too few to tell.
    """
    champion = judgement.champion.metrics
    evidence = judgement.evidence
    if judgement.verdict.decision is not Decision.REJECTED or champion is None:
        return False
    if judgement.candidate.mean_relative_error > champion.mean_relative_error:
        return False
    theirs = evidence.champion_mre_by_species or {}
    return all(
        ours <= theirs[species]
        for species, ours in evidence.candidate_mre_by_species.items()
        if species in theirs
    )


def emergency_verdict(trigger: Trigger, judgement: Judgement) -> Verdict | None:
    """A promotion without the paired test's significance, when production is failing badly.

    When the alarm that started the retrain measured more than twice its threshold, waiting
    for significance costs more than the risk: a candidate the test rejected is promoted at
    once if its held-out error is lower than the champion's, overall and on every species
    judged (the holdout's minimums of fish already hold). The replaced version then runs in
    shadow as a rollback watch, so that the live fish undo a promotion that was wrong.
    """
    value, threshold = trigger.metric_value, trigger.threshold
    champion = judgement.champion.metrics
    if (
        judgement.verdict.decision is not Decision.REJECTED
        or value is None
        or threshold is None
        or value <= 2 * threshold
        or champion is None
    ):
        return None
    ours, theirs = judgement.candidate.mean_relative_error, champion.mean_relative_error
    by_species = judgement.evidence.champion_mre_by_species or {}
    if ours >= theirs or any(
        mre > by_species[species]
        for species, mre in judgement.evidence.candidate_mre_by_species.items()
        if species in by_species
    ):
        return None
    return Verdict(
        Decision.PROMOTED,
        f"emergency: production's {trigger.metric or 'error'} {value:.3f} is above twice the "
        f"threshold {threshold:.2f}; candidate mean relative error {ours:.4f} below the "
        f"champion's {theirs:.4f} on {judgement.candidate.n} held-out fish, though not "
        f"significantly ({judgement.verdict.reason}); the replaced version watches in shadow",
    )


@task(cache_policy=NO_CACHE)
def put_in_shadow(settings: Settings, version: str, reason: str) -> bool:
    """Make ``version`` the challenger, unless a rollback watch runs (it has the priority: it
    guards a promotion already made). Whether it was put in shadow."""
    current = registry.challenger_version(settings.registry)
    if current is not None:
        role = registry.version_info(settings.registry, current).tags.get(SHADOW_ROLE_TAG)
        if role == ROLE_ROLLBACK_WATCH:
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
    """Score ``model`` and production on the same held-out fish and apply the policy."""
    candidate = evaluate(model, holdout)
    champion = score_champion.with_options(**retrying(settings))(settings, holdout)
    evidence = gather_evidence(
        holdout[SPECIES], relative_errors(model, holdout), champion.errors, not_judged
    )
    verdict = decide(
        candidate,
        champion.metrics,
        margin=settings.retrain.promotion_margin,
        alpha=settings.retrain.promotion_alpha,
        test=evidence.test,
        champion_version=champion.version,
        champion_error=champion.error,
    )
    return Judgement(verdict, candidate, champion, evidence)


def judged_outcome(
    settings: Settings,
    judgement: Judgement,
    *,
    version: str | None,
    production_version: str | None,
    row_count: int = 0,
) -> Outcome:
    """The outcome of a flow that judged a model, with its evidence."""
    evidence = judgement.evidence
    champion = judgement.champion
    return Outcome(
        model_name=settings.registry.model_name,
        version=version,
        decision=judgement.verdict.decision.value,
        reason=judgement.verdict.reason,
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
) -> Outcome:
    """The outcome of a retrain with too few rows: nothing trained, registered or promoted."""
    return Outcome(
        model_name=settings.registry.model_name,
        version=None,
        decision=Decision.INSUFFICIENT_EVIDENCE.value,
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
def promote_version(settings: Settings, version: str) -> None:
    """Point production at ``version`` (alias and stage)."""
    registry.promote(settings.registry, version)


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
) -> Outcome:
    """Train a candidate on the older records, judge it on the recent ones, register it, and
    promote it when the policy says so.

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
    judgement = judge(settings, result.model, split.holdout, split.not_judged)
    urgent = emergency_verdict(trigger, judgement)
    if urgent is not None:
        judgement = replace(judgement, verdict=urgent)
    verdict, evidence, champion = judgement.verdict, judgement.evidence, judgement.champion
    logger.info("%s: %s", verdict.decision.value, verdict.reason)
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
        **decision_tags(verdict),
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
        "min_holdout_rows_per_species": settings.retrain.min_holdout_rows_per_species,
        "min_training_rows_per_species": settings.retrain.min_training_rows_per_species,
        "promotion_margin": settings.retrain.promotion_margin,
        "promotion_alpha": settings.retrain.promotion_alpha,
        "rows": len(data),
    }
    training_counts = split.training[SPECIES].value_counts().sort_index()
    description = describe_version(
        trigger=trigger,
        verdict=verdict,
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
    if verdict.promote:
        try:
            verify_registered(settings, info.version, result, split.holdout)
        except RegistryError as error:
            rejected = Verdict(Decision.REJECTED, str(error))
            registry.set_version_tags(settings.registry, info.version, decision_tags(rejected))
            raise
        promote_version.with_options(**retrying(settings))(settings, info.version)
        production = info.version
        if urgent is not None and champion.version is not None:
            registry.set_challenger(
                settings.registry, champion.version, reason=urgent.reason, rollback_watch=True
            )
            logger.info("v%s watches v%s in shadow", champion.version, info.version)
    elif deserves_shadow(judgement) and put_in_shadow.with_options(**retrying(settings))(
        settings, info.version, f"not worse on the holdout, but not proven better: {verdict.reason}"
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
