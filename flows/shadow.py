"""The flows of shadow: ``shadow`` and ``retire-challenger`` by hand, ``shadow-verdict``.

A challenger runs beside production (alias ``challenger``): the scorers predict every item
with both, and the monitor judges them on the same joined items (``tidemark.judging.shadow``).
``shadow`` and ``retire-challenger`` are the manual way in and out. The monitor carries out
its final verdicts through the ``shadow-verdict`` deployment, so that the registry's writes
(the verdict on the version, a promotion, a rollback, the alias) run where MLflow's client is,
are retried and logged by Prefect, and show in its UI.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.context import project_context
from flows.outcome import FlowOutcome
from tidemark.config import RegistrySettings, get_settings
from tidemark.judging.decisions import Decision
from tidemark.judging.shadow import SHADOW_CHAMPION_TAG, verdict_is_current
from tidemark.orchestration import SHADOW_FLOW, SHADOW_VERDICT_FLOW
from tidemark.registry import writer as registry
from tidemark.registry.history import HowItCame, live_figures
from tidemark.schemas import ModelDecision, ModelEvent, ShadowVerdict, utc_now


@flow(name=SHADOW_FLOW)
def shadow(
    version: str, reason: str = "put in shadow by hand", project: str | None = None
) -> FlowOutcome:
    """Put ``version`` of ``project``'s model (the stack's default project when None) in shadow
    against production, replacing any other challenger."""
    settings = project_context(project).settings
    replaced = registry.set_challenger(settings.registry, version, reason=reason)
    production = registry.production_version(settings.registry)
    replacing = f"; v{replaced} is no longer challenger" if replaced else ""
    get_run_logger().info("v%s in shadow against v%s%s", version, production, replacing)
    reason = f"v{version} runs in shadow against production v{production}{replacing}"
    return _outcome(
        settings.registry, version, Decision.CHALLENGING, reason, production, production
    )


@flow(name="retire-challenger")
def retire_challenger(reason: str = "retired by hand", project: str | None = None) -> FlowOutcome:
    """Take the challenger of ``project``'s model (the stack's default project when None) out
    of shadow, recording why and the live evidence gathered so far."""
    settings = project_context(project).settings
    production = registry.production_version(settings.registry)
    version = registry.challenger_version(settings.registry)
    if version is None:
        raise ValueError(f"{settings.registry.model_name} has no challenger to retire")
    state = registry.load_shadow_state(settings.registry, version)
    at = utc_now()
    if state is not None:
        decision = state.retirement(
            model_name=settings.registry.model_name, reason=reason, decided_at=at
        )
    else:
        decision = ModelDecision(
            kind=ModelEvent.RETIREMENT,
            model_name=settings.registry.model_name,
            champion_version=_champion_of(settings.registry, version, production),
            challenger_version=version,
            verdict=ShadowVerdict.RETIRE,
            reason=reason,
            decided_by="manual",
            decided_at=at,
        )
    registry.record_verdict(settings.registry, decision)
    registry.clear_challenger(settings.registry)
    get_run_logger().info("v%s retired from shadow: %s", version, reason)
    left = f"v{version} left shadow: {reason}"
    return _outcome(
        settings.registry, version, Decision.RETIRED, left, production, decision.champion_version
    )


@flow(name=SHADOW_VERDICT_FLOW)
def shadow_verdict(verdict: dict[str, Any]) -> FlowOutcome:
    """Carry out the monitor's final verdict of a shadow evaluation on live items.

    The verdict is recorded on the challenger (tags, description), then carried out as its
    kind says (``tidemark.judging.shadow.event_of``): a promotion promotes the challenger (the
    live evidence is the judgement: no held-out check); a rollback rolls production back to the
    watching version, with the evidence as the reason; a retirement takes the challenger out of
    shadow (for a rollback watch: the promotion is confirmed). A verdict about versions that
    are no longer champion and challenger changes nothing. The model is the one the decision
    names. ``verdict`` is a ``ModelDecision`` as JSON: Prefect cannot build its parameter model
    from a postponed annotation of a class.
    """
    decision = ModelDecision.model_validate(verdict)
    settings = get_settings().registry.model_copy(update={"model_name": decision.model_name})
    logger = get_run_logger()
    production = registry.production_version(settings)
    challenger = registry.challenger_version(settings)
    champion, version = decision.champion_version, decision.challenger_version
    if not verdict_is_current(decision, production, challenger):
        logger.warning(
            "stale verdict on v%s against v%s: production is v%s, challenger %s",
            version, champion, production, challenger,
        )  # fmt: skip
        reason = f"v{version} is no longer challenging v{champion}"
        return _outcome(settings, version, Decision.UNCHANGED, reason, production, champion)
    registry.record_verdict(settings, decision)
    if decision.kind is ModelEvent.ROLLBACK:
        rolled_back, restored = registry.rollback_with_reason(
            settings,
            f"rolled back on live evidence: {decision.reason}",
            evidence=decision,
            version=champion,
        )
        logger.info("v%s rolled back to v%s: %s", rolled_back, restored, decision.reason)
        registry.clear_challenger(settings)
        reason = f"v{rolled_back} rolled back on live evidence: {decision.reason}"
        return _outcome(settings, restored, Decision.ROLLED_BACK, reason, restored, champion)
    registry.clear_challenger(settings)
    if decision.kind is ModelEvent.PROMOTION:
        registry.promote(
            settings,
            version,
            how=HowItCame.SHADOW_WIN,
            reason=decision.reason,
            figures=live_figures(decision, rollback=False),
            decided_by=decision.decided_by,
        )
        logger.info("v%s promoted on live evidence: %s", version, decision.reason)
        reason = f"v{version} promoted on live evidence: {decision.reason}"
        return _outcome(settings, version, Decision.PROMOTED, reason, version, champion)
    logger.info("v%s leaves shadow (%s): %s", version, decision.verdict, decision.reason)
    reason = f"v{version} left shadow: {decision.reason}"
    return _outcome(settings, version, Decision.RETIRED, reason, production, champion)


def _outcome(
    registry_settings: RegistrySettings,
    version: str,
    decision: Decision,
    reason: str,
    production: str | None,
    champion: str | None,
) -> FlowOutcome:
    """What a shadow flow did: it trains nothing, so the outcome carries no metrics or holdout."""
    return FlowOutcome(
        model_name=registry_settings.model_name,
        version=version,
        decision=decision,
        reason=reason,
        production_version=production,
        champion_version=champion,
    )


def _champion_of(registry_settings: RegistrySettings, version: str, production: str | None) -> str:
    # The champion a challenger was set against is on its tags; production may have moved since.
    tags = registry.version_info(registry_settings, version).tags
    champion = tags.get(SHADOW_CHAMPION_TAG)
    if champion is None and production is None:
        raise ValueError(f"v{version} has no champion to have been compared with")
    return str(champion or production)
