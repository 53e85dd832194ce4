"""The shadow half of the registry contract against the real MLflow (and Prefect) of the stack.

One story on a model of its own: v2 is put in shadow against v1 and judged on live fish; the
verdict lands on v2's tags and description; a promotion is rolled back with its reason on
both versions; the flows do the same by hand.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from mlflow import MlflowClient

from flows.cli import models_command
from flows.rollback import rollback
from flows.shadow import retire_challenger, shadow
from infra.local.stack import Stack
from tests.integration.registered import register_scenario_model
from tidemark.config import Settings, get_settings
from tidemark.judging.shadow import (
    SHADOW_ROLE_TAG,
    SHADOW_STATE_TAG,
    ShadowEvaluation,
    ShadowRole,
    ShadowRules,
)
from tidemark.orchestration import prefect_api
from tidemark.registry import writer as registry
from tidemark.schemas import ShadowVerdict, utc_now


@pytest.fixture(scope="module")
def settings(stack: Stack) -> Iterator[Settings]:
    """The stack's settings with a model of this module's own, also in the environment."""
    mine = stack.settings.override(registry_model_name="fish-weight-shadow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIDEMARK_REGISTRY_TRACKING_URI", mine.registry.tracking_uri)
        patch.setenv("TIDEMARK_REGISTRY_MODEL_NAME", mine.registry.model_name)
        get_settings.cache_clear()
        with prefect_api(mine.orchestration):
            yield mine
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def versions(settings: Settings) -> tuple[str, str, str]:
    """Three registered versions; v1 in production."""
    v1, _ = register_scenario_model(settings, ["salmon"], name=settings.registry.model_name)
    registry.promote(settings.registry, v1)
    v2, _ = register_scenario_model(
        settings, ["salmon", "walleye"], name=settings.registry.model_name
    )
    v3, _ = register_scenario_model(settings, ["walleye"], name=settings.registry.model_name)
    return v1, v2, v3


def _description(settings: Settings, version: str) -> str:
    found = registry.client(settings.registry).get_model_version(
        settings.registry.model_name, version
    )
    return str(found.description or "")


def _decided_challenge(champion: str, challenger: str) -> ShadowEvaluation:
    rng = np.random.default_rng(0)
    state = ShadowEvaluation.start(champion, challenger, ShadowRules())
    while not state.decided:
        species = rng.choice(["salmon", "walleye"], 50)
        a = np.abs(rng.normal(0, 0.08, 50))
        state = state.update(species, a, a * 0.7)
    return state


def test_a_version_runs_in_shadow_and_its_verdict_is_recorded(
    settings: Settings, versions: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    v1, v2, _ = versions
    assert registry.challenger_version(settings.registry) is None
    assert (
        registry.set_challenger(settings.registry, v2, reason="candidate not promoted outright")
        is None
    )
    assert registry.challenger_version(settings.registry) == v2
    tags = registry.version_info(settings.registry, v2).tags
    assert tags["shadow_champion"] == v1
    assert tags["shadow_start_reason"] == "candidate not promoted outright"
    assert f"**In shadow** against production v{v1}" in _description(settings, v2)
    with pytest.raises(registry.RegistryError, match="cannot challenge itself"):
        registry.set_challenger(settings.registry, v1, reason="x")

    state = _decided_challenge(v1, v2)
    registry.save_shadow_state(settings.registry, state)
    assert registry.load_shadow_state(settings.registry, v2) == state
    assert registry.load_shadow_state(settings.registry, v1) is None

    decision = state.decision(
        model_name=settings.registry.model_name, decided_by="monitor", decided_at=utc_now()
    )
    registry.record_verdict(settings.registry, decision)
    tags = registry.version_info(settings.registry, v2).tags
    assert tags["shadow_verdict"] == ShadowVerdict.PROMOTE.value
    assert int(tags["shadow_n"]) == state.n
    assert float(tags["shadow_statistic"]) == pytest.approx(state.statistic)
    assert float(tags["shadow_p_value"]) == pytest.approx(state.p_value)
    assert tags["shadow_reason"] == state.reason
    description = _description(settings, v2)
    assert description.index("**In shadow**") < description.index("**Shadow verdict: promote**")
    assert f"n = {state.n} items" in description
    assert "walleye n = " in description
    # `tidemark models`: the verdict in the table, the running evidence under it.
    models_command()
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        f"challenger: v{v2} in shadow against v{v1}: promote after {state.n} items in "
        f"{state.looks} windows (log LR {state.statistic:.2f}"
    ) in shown
    assert f"promote (n {state.n}, log LR " in shown

    assert registry.clear_challenger(settings.registry) == v2
    assert registry.challenger_version(settings.registry) is None
    assert registry.clear_challenger(settings.registry) is None


def test_a_new_challenge_forgets_the_last_verdict(
    settings: Settings, versions: tuple[str, str, str]
) -> None:
    _, v2, v3 = versions
    registry.set_challenger(settings.registry, v3, reason="first")
    assert registry.set_challenger(settings.registry, v2, reason="again") == v3
    tags = registry.version_info(settings.registry, v2).tags
    assert not {"shadow_verdict", "shadow_n", SHADOW_STATE_TAG} & set(tags)
    registry.clear_challenger(settings.registry)


def test_a_challenger_s_role_is_on_the_server_before_its_alias(
    settings: Settings, versions: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A monitor reads a challenger's role as soon as it sees the alias: the role, its
    champion and the cleared tags of an earlier challenge are on the server by then."""
    v3 = versions[2]
    registry.set_challenger(settings.registry, v3, reason="earlier")
    registry.set_version_tags(settings.registry, v3, {SHADOW_STATE_TAG: "{}"})
    registry.clear_challenger(settings.registry)
    seen: list[dict[str, str]] = []
    move = MlflowClient.set_registered_model_alias

    def look_then_move(client: MlflowClient, name: str, alias: str, version: str) -> None:
        if alias == settings.registry.challenger_alias:
            seen.append(registry.version_info(settings.registry, version).tags)
        move(client, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", look_then_move)
    registry.set_challenger(settings.registry, v3, reason="watch", rollback_watch=True)
    monkeypatch.undo()
    [tags] = seen
    assert tags[SHADOW_ROLE_TAG] == ShadowRole.ROLLBACK_WATCH, tags
    assert tags["shadow_champion"] == registry.production_version(settings.registry)
    assert SHADOW_STATE_TAG not in tags
    assert registry.challenger_version(settings.registry) == v3
    registry.clear_challenger(settings.registry)


def test_a_rollback_records_why_on_both_versions(
    settings: Settings, versions: tuple[str, str, str]
) -> None:
    v1, v2, _ = versions
    registry.promote(settings.registry, v2)
    # The emergency path: the replaced version watches the promoted one from shadow.
    registry.set_challenger(settings.registry, v1, reason="watching the promotion of v2")
    watch = _decided_challenge(v2, v1)
    evidence = watch.decision(
        model_name=settings.registry.model_name,
        decided_by="monitor",
        decided_at=utc_now(),
        role=ShadowRole.ROLLBACK_WATCH,
    )
    assert registry.rollback_with_reason(settings.registry, "worse on live fish", evidence) == (
        v2,
        v1,
    )
    assert registry.production_version(settings.registry) == v1
    # The restored version is production now, not its own challenger.
    assert registry.challenger_version(settings.registry) is None
    gone, back = (
        registry.version_info(settings.registry, v2).tags,
        registry.version_info(settings.registry, v1).tags,
    )
    assert (gone["rolled_back_reason"], gone["rolled_back_to"]) == ("worse on live fish", v1)
    assert (back["restored_reason"], back["restored_from"]) == ("worse on live fish", v2)
    assert "rolled_back_at" in gone
    assert "restored_at" in back
    assert "**Rolled back**" in _description(settings, v2)
    assert f"replacing v{v2}: worse on live fish. Live evidence: n = {watch.n}" in _description(
        settings, v1
    )


def test_the_flows_put_a_version_in_shadow_retire_it_and_roll_back_with_a_reason(
    settings: Settings, versions: tuple[str, str, str]
) -> None:
    v1, _v2, v3 = versions
    outcome = shadow(version=v3, reason="a person wants to see")
    assert (outcome.decision, outcome.champion_version) == ("challenging", v1)
    assert registry.challenger_version(settings.registry) == v3
    evaluation = ShadowEvaluation.start(v1, v3, ShadowRules())
    registry.save_shadow_state(
        settings.registry,
        evaluation.update(["salmon"] * 40, np.full(40, 0.05), np.full(40, 0.06)),
    )
    retired = retire_challenger(reason="enough")
    assert (retired.decision, retired.version) == ("retired", v3)
    assert registry.challenger_version(settings.registry) is None
    tags = registry.version_info(settings.registry, v3).tags
    assert (tags["shadow_verdict"], tags["shadow_reason"], tags["shadow_n"]) == (
        "retire",
        "enough",
        "40",
    )
    with pytest.raises(ValueError, match="no challenger to retire"):
        retire_challenger()

    registry.promote(settings.registry, v3)
    rolled = rollback(reason="the line manager asked")
    assert rolled.production_version == v1
    assert registry.version_info(settings.registry, v3).tags["rolled_back_reason"] == (
        "the line manager asked"
    )
    assert registry.version_info(settings.registry, v1).tags["restored_from"] == v3
