"""The flows of shadow: ``challenge`` and ``retire-challenger`` by hand, ``shadow-verdict``.

A challenger runs beside production (alias ``challenger``): the scorers predict every fish
with both, and the monitor judges them on the same joined fish (``tidemark.challenge``).
``challenge`` and ``retire-challenger`` are the manual way in and out. The monitor carries out
its final verdicts through the ``shadow-verdict`` deployment, so that the registry's writes
(the verdict on the version, a promotion, a rollback, the alias) run where MLflow's client is,
are retried and logged by Prefect, and show in its UI.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.candidate import Outcome
from tidemark.config import RegistrySettings, get_settings
from tidemark.orchestration import SHADOW_VERDICT_FLOW
from tidemark.registry import writer as registry
from tidemark.schemas import ModelDecision, ModelEvent, ShadowVerdict, utc_now


@flow(name="challenge")
def challenge(version: str, reason: str = "put in shadow by hand") -> Outcome:
    """Put ``version`` in shadow against production, replacing any other challenger."""
    settings = get_settings()
    replaced = registry.set_challenger(settings.registry, version, reason=reason)
    production = registry.production_version(settings.registry)
    replacing = f"; v{replaced} is no longer challenger" if replaced else ""
    get_run_logger().info("v%s in shadow against v%s%s", version, production, replacing)
    reason = f"v{version} runs in shadow against production v{production}{replacing}"
    return _outcome(settings.registry, version, "challenging", reason, production, production)


@flow(name="retire-challenger")
def retire_challenger(reason: str = "retired by hand") -> Outcome:
    """Take the challenger out of shadow, recording why and the live evidence gathered so far."""
    settings = get_settings()
    production = registry.production_version(settings.registry)
    version = registry.challenger_version(settings.registry)
    if version is None:
        raise ValueError(f"{settings.registry.model_name} has no challenger to retire")
    state = registry.load_challenge(settings.registry, version)
    at = utc_now()
    if state is not None:
        decision = state.decision(
            model_name=settings.registry.model_name, decided_by="manual", decided_at=at
        ).model_copy(
            update={
                "kind": ModelEvent.RETIREMENT,
                "verdict": ShadowVerdict.RETIRE,
                "reason": reason,
            }
        )
    else:
        decision = ModelDecision(
            kind=ModelEvent.RETIREMENT,
            model_name=settings.registry.model_name,
            champion_version=_champion_of(version, production),
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
        settings.registry, version, "retired", left, production, decision.champion_version
    )


@flow(name=SHADOW_VERDICT_FLOW)
def shadow_verdict(verdict: dict[str, Any]) -> Outcome:
    """Carry out the monitor's final verdict of a challenge on live fish.

    The verdict is recorded on the challenger (tags, description), then: a challenger that won
    is promoted (the live evidence is the judgement: no held-out check); a rollback watch whose
    old version won rolls production back, with the evidence as the reason; any other verdict
    takes the challenger out of shadow (for a rollback watch: the promotion is confirmed). A
    verdict about versions that are no longer champion and challenger changes nothing. The
    model is the one the decision names. ``verdict`` is a ``ModelDecision`` as JSON: Prefect
    cannot build its parameter model from a postponed annotation of a class.
    """
    decision = ModelDecision.model_validate(verdict)
    settings = get_settings().registry.model_copy(update={"model_name": decision.model_name})
    logger = get_run_logger()
    production = registry.production_version(settings)
    challenger = registry.challenger_version(settings)
    champion, version = decision.champion_version, decision.challenger_version
    if (production, challenger) != (champion, version):
        logger.warning(
            "stale verdict on v%s against v%s: production is v%s, challenger %s",
            version, champion, production, challenger,
        )  # fmt: skip
        reason = f"v{version} is no longer challenging v{champion}"
        return _outcome(settings, version, "unchanged", reason, production, champion)
    registry.record_verdict(settings, decision)
    if decision.kind is ModelEvent.ROLLBACK:
        rolled_back, restored = registry.rollback_with_reason(
            settings, f"rolled back on live evidence: {decision.reason}", evidence=decision
        )
        logger.info("v%s rolled back to v%s: %s", rolled_back, restored, decision.reason)
        registry.clear_challenger(settings)
        reason = f"v{rolled_back} rolled back on live evidence: {decision.reason}"
        return _outcome(settings, restored, "rolled back", reason, restored, champion)
    registry.clear_challenger(settings)
    if decision.kind is ModelEvent.PROMOTION:
        registry.promote(settings, version)
        logger.info("v%s promoted on live evidence: %s", version, decision.reason)
        reason = f"v{version} promoted on live evidence: {decision.reason}"
        return _outcome(settings, version, "promoted", reason, version, champion)
    logger.info("v%s leaves shadow (%s): %s", version, decision.verdict, decision.reason)
    reason = f"v{version} left shadow: {decision.reason}"
    return _outcome(settings, version, "retired", reason, production, champion)


def _outcome(
    registry_settings: RegistrySettings,
    version: str,
    decision: str,
    reason: str,
    production: str | None,
    champion: str | None,
) -> Outcome:
    """What a shadow flow did: it trains nothing, so the outcome carries no metrics or holdout."""
    return Outcome(
        model_name=registry_settings.model_name,
        version=version,
        decision=decision,
        reason=reason,
        production_version=production,
        champion_version=champion,
    )


def _champion_of(version: str, production: str | None) -> str:
    # The champion a challenger was set against is on its tags; production may have moved since.
    champion = registry.version_info(get_settings().registry, version).tags.get("shadow_champion")
    if champion is None and production is None:
        raise ValueError(f"v{version} has no champion to have been compared with")
    return str(champion or production)
