"""The ``promote`` flow: put a given version in production, by the policy or by force."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.candidate import (
    judge,
    judged_outcome,
    promote_version,
    retrying,
    short_of_evidence,
)
from flows.context import project_context
from flows.outcome import FlowOutcome
from tidemark.config import Settings
from tidemark.judging.candidate import Placement, forced
from tidemark.judging.decisions import Decision, Ruling
from tidemark.judging.holdout import (
    EvidenceRules,
    InsufficientEvidenceError,
    check_holdout,
    segments_of,
)
from tidemark.judging.tags import decision_tags, evidence_tags
from tidemark.modelling.frames import TrainingDataError
from tidemark.orchestration import PROMOTE_FLOW
from tidemark.registry import writer as registry
from tidemark.registry.history import HowItCame, holdout_figures
from tidemark.store import TrainingStore


@flow(name=PROMOTE_FLOW)
def promote(
    version: str, force: bool = False, last_n: int | None = None, project: str | None = None
) -> FlowOutcome:
    """Promote ``version`` of ``project``'s model (the stack's default project when None) if it
    beats production on the ``last_n`` most recent joined records.

    The recent records are the held-out items: each segment among them needs the per-segment
    minimum of held-out rows, and all of them the overall minimum, or nothing is promoted
    (``insufficient_evidence``). ``force=True`` skips the policy (the decision is recorded as
    ``forced``). A version the policy rejects stays where it is and the outcome says why.
    """
    context = project_context(project)
    settings = context.settings
    logger = get_run_logger()
    registry.version_info(settings.registry, version)
    current = registry.production_version(settings.registry)
    if current == version:
        return FlowOutcome(
            model_name=settings.registry.model_name,
            version=version,
            decision=Decision.UNCHANGED,
            reason=f"v{version} is in production already",
            production_version=current,
        )
    if force:
        ruling, placement = forced(current)
        _record(settings, version, ruling, {})
        promote_version.with_options(**retrying(settings))(
            settings, version, HowItCame.FORCED, ruling.reason
        )
        logger.info("v%s %s: %s", version, ruling.decision.value, ruling.reason)
        if placement is Placement.WATCHED and current is not None:
            # Promoted without evidence: the replaced version watches it on live items, and
            # the monitor rolls back if it proves better (tidemark.judging.shadow, no margin).
            registry.set_challenger(
                settings.registry,
                current,
                reason=f"rollback watch of v{version}, forced over the policy",
                rollback_watch=True,
            )
            logger.info("v%s watches v%s in shadow", current, version)
        return FlowOutcome(
            model_name=settings.registry.model_name,
            version=version,
            decision=ruling.decision,
            reason=ruling.reason,
            production_version=version,
        )
    with TrainingStore(settings.store, context.contracts) as store:
        recent = store.recent(settings.retrain.last_n if last_n is None else last_n)
    if recent.empty:
        raise TrainingDataError(
            f"no joined records to judge v{version} on; promote with force to skip the policy"
        )
    try:
        check_holdout(
            segments_of(recent, context.project.segment), EvidenceRules.of(settings.retrain)
        )
    except InsufficientEvidenceError as shortfall:
        logger.warning("insufficient evidence: %s", shortfall)
        return short_of_evidence(settings, shortfall, row_count=len(recent))
    judgement = judge(context, registry.load_model(settings.registry, version), recent)
    ruling = judgement.ruling
    logger.info("v%s %s: %s", version, ruling.decision.value, ruling.reason)
    if ruling.promote:
        _record(settings, version, ruling, evidence_tags(judgement.evidence))
        figures = holdout_figures(
            judgement.evidence, judgement.candidate, judgement.champion.metrics, None
        )
        promote_version.with_options(**retrying(settings))(
            settings, version, HowItCame.EVIDENCE, ruling.reason, figures
        )
        current = version
    return judged_outcome(
        settings, judgement, version=version, production_version=current, row_count=len(recent)
    )


def _record(settings: Settings, version: str, ruling: Ruling, figures: dict[str, str]) -> None:
    """The later decision in the version's tags, and at the top of its description."""
    registry.set_version_tags(settings.registry, version, {**decision_tags(ruling), **figures})
    earlier = registry.version_info(settings.registry, version).description
    note = f"**Later decision: {ruling.decision.value}.** {ruling.reason}."
    registry.set_version_description(
        settings.registry, version, f"{note}\n\n{earlier}".rstrip() + "\n"
    )
