"""The ``challenge`` and ``retire-challenger`` flows: a version in and out of shadow by hand.

A challenger runs beside production (alias ``challenger``): the scorers predict every fish
with both, and the monitor judges them on the same joined fish (``tidemark.challenge``). These
flows are the manual way in and out; the monitor's verdicts go through the registry too.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.candidate import Outcome
from tidemark import registry
from tidemark.config import get_settings
from tidemark.schemas import ModelDecision, ModelEvent, ShadowVerdict, utc_now


@flow(name="challenge")
def challenge(version: str, reason: str = "put in shadow by hand") -> Outcome:
    """Put ``version`` in shadow against production, replacing any other challenger."""
    settings = get_settings()
    replaced = registry.set_challenger(settings.registry, version, reason=reason)
    production = registry.production_version(settings.registry)
    replacing = f"; v{replaced} is no longer challenger" if replaced else ""
    get_run_logger().info("v%s in shadow against v%s%s", version, production, replacing)
    return Outcome(
        model_name=settings.registry.model_name,
        version=version,
        decision="challenging",
        reason=f"v{version} runs in shadow against production v{production}{replacing}",
        production_version=production,
        champion_version=production,
    )


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
    return Outcome(
        model_name=settings.registry.model_name,
        version=version,
        decision="retired",
        reason=f"v{version} left shadow: {reason}",
        production_version=production,
        champion_version=decision.champion_version,
    )


def _champion_of(version: str, production: str | None) -> str:
    # The champion a challenger was set against is on its tags; production may have moved since.
    champion = registry.version_info(get_settings().registry, version).tags.get("shadow_champion")
    if champion is None and production is None:
        raise ValueError(f"v{version} has no champion to have been compared with")
    return str(champion or production)
