"""The ``promote`` flow: put a given version in production, by the policy or by force."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.candidate import Outcome, promote_version, retrying, score_champion
from tidemark import registry
from tidemark.config import get_settings
from tidemark.model import TrainingDataError, evaluate
from tidemark.orchestration import PROMOTE_FLOW
from tidemark.promotion import Decision, Verdict, decide, decision_tags
from tidemark.store import TrainingStore


@flow(name=PROMOTE_FLOW)
def promote(version: str, force: bool = False, last_n: int | None = None) -> Outcome:
    """Promote ``version`` if it beats production on the ``last_n`` most recent joined records.

    ``force=True`` skips the policy (the decision is recorded as ``forced``). A version the
    policy rejects stays where it is and the outcome says why.
    """
    settings = get_settings()
    logger = get_run_logger()
    registry.version_info(settings, version)
    current = registry.production_version(settings)
    if current == version:
        return Outcome(
            model_name=settings.model_name,
            version=version,
            decision="unchanged",
            reason=f"v{version} is in production already",
            production_version=current,
        )
    candidate = champion_metrics = None
    if force:
        verdict = Verdict(Decision.FORCED, f"forced over the policy (production was v{current})")
    else:
        with TrainingStore(settings) as store:
            recent = store.recent(last_n)
        if recent.empty:
            raise TrainingDataError(
                f"no joined records to judge v{version} on; promote with force to skip the policy"
            )
        candidate = evaluate(registry.load_model(settings, version), recent)
        champion = score_champion.with_options(**retrying(settings))(settings, recent)
        champion_metrics = champion.metrics
        verdict = decide(
            candidate,
            champion.metrics,
            margin=settings.promotion_margin,
            champion_version=champion.version,
            champion_error=champion.error,
        )
    logger.info("v%s %s: %s", version, verdict.decision.value, verdict.reason)
    if verdict.promote:
        registry.set_version_tags(settings, version, decision_tags(verdict))
        promote_version.with_options(**retrying(settings))(settings, version)
        current = version
    return Outcome(
        model_name=settings.model_name,
        version=version,
        decision=verdict.decision.value,
        reason=verdict.reason,
        production_version=current,
        candidate=candidate.as_dict() if candidate else None,
        champion=champion_metrics.as_dict() if champion_metrics else None,
    )
