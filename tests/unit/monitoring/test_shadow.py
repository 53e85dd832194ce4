"""The monitor's shadow evaluation by window: verdicts, effects, resumes, rollback watches."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from monitoring.shadow import ShadowJudge, verdict_key
from tests.unit.monitoring.scored import scored
from tidemark.config import Settings
from tidemark.judging.shadow import (
    SHADOW_ROLE_TAG,
    SHADOW_STATE_TAG,
    ShadowEvaluation,
    ShadowRole,
)
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind
from tidemark.registry.reader import VersionRef
from tidemark.schemas import ModelDecision, ModelEvent, ShadowVerdict

SETTINGS = Settings(shadow_min_items=20, shadow_max_items=2_000)


@dataclass
class Registry:
    """The challenger alias and its tags, in memory."""

    version: str | None = "2"
    tags: dict[str, str] = field(default_factory=dict)
    saves: int = 0

    def challenger(self) -> VersionRef | None:
        if self.version is None:
            return None
        return VersionRef("fish-weight", self.version, "run", dict(self.tags))

    def save(self, evaluation: ShadowEvaluation) -> None:
        self.saves += 1
        self.tags[SHADOW_STATE_TAG] = evaluation.to_json()


@dataclass
class Effects:
    published: list[ModelDecision] = field(default_factory=list)
    carried_out: list[ModelDecision] = field(default_factory=list)

    def judge(self, registry: Registry) -> ShadowJudge:
        return ShadowJudge(
            SETTINGS, registry, self.published.append, self._carry_out, ErrorKind.RELATIVE
        )

    def _carry_out(self, decision: ModelDecision) -> str:
        self.carried_out.append(decision)
        return "flow-run"


def window(
    rng: np.random.Generator, champion: float, challenger: float, fish: int = 40
) -> list[Scored]:
    """One window's fish scored by v1 with v2 in shadow, errors around the two given levels."""
    records = []
    for i in range(fish):
        record = scored(i, rel_error=float(rng.uniform(0.5, 1.5) * champion))
        other = record.truth * (1 + float(rng.uniform(0.5, 1.5) * challenger))
        records.append(
            replace(
                record,
                prediction=replace(
                    record.prediction, challenger_version="2", challenger_value=other
                ),
                challenger_abs_error=abs(other - record.truth),
                challenger_rel_error=abs(other - record.truth) / record.truth,
            )
        )
    return records


def run(
    judge: ShadowJudge, champion: float, challenger: float, windows: int = 30
) -> list[ModelDecision]:
    rng = np.random.default_rng(7)
    decisions = []
    for _ in range(windows):
        decision = judge.observe(window(rng, champion, challenger), "1")
        if decision is not None:
            decisions.append(decision)
    return decisions


def test_a_better_challenger_is_promoted_once_and_the_promotion_carried_out() -> None:
    registry, effects = Registry(), Effects()
    decisions = run(effects.judge(registry), champion=0.20, challenger=0.05)
    assert [d.kind for d in decisions] == [ModelEvent.PROMOTION]
    assert effects.published == decisions == effects.carried_out
    decision = decisions[0]
    assert (decision.champion_version, decision.challenger_version) == ("1", "2")
    assert decision.verdict is ShadowVerdict.PROMOTE
    assert decision.decided_by == "monitor"
    assert decision.n >= SETTINGS.shadow.min_items
    # The state was kept after every window until the verdict, then no more fish were taken.
    saved = ShadowEvaluation.from_json(registry.tags[SHADOW_STATE_TAG])
    assert saved.verdict is ShadowVerdict.PROMOTE
    assert saved.n == decision.n


def test_a_worse_challenger_is_retired_and_never_promoted() -> None:
    effects = Effects()
    decisions = run(effects.judge(Registry()), champion=0.05, challenger=0.20)
    assert [(d.kind, d.verdict) for d in decisions] == [
        (ModelEvent.RETIREMENT, ShadowVerdict.RETIRE)
    ]


def equivalent(rng: np.random.Generator, fish: int) -> list[Scored]:
    """A window where the challenger predicted exactly what production did."""
    return [
        replace(
            r,
            prediction=replace(r.prediction, challenger_value=r.prediction.value),
            challenger_abs_error=r.abs_error,
            challenger_rel_error=r.rel_error,
        )
        for r in window(rng, 0.08, 0.08, fish)
    ]


def test_a_production_equivalent_rollback_watch_gives_no_decision_for_ten_windows() -> None:
    # No margin: neither version is better, so neither a rollback nor a confirmation yet.
    effects = Effects()
    rng = np.random.default_rng(3)
    judge = effects.judge(Registry(tags={SHADOW_ROLE_TAG: ShadowRole.ROLLBACK_WATCH}))
    for _ in range(10):
        assert judge.observe(equivalent(rng, 20), "1") is None
    assert judge.state is not None
    assert judge.state.n == 200
    assert effects.published == effects.carried_out == []


def test_a_production_equivalent_challenger_is_retired_not_promoted() -> None:
    # It is not better by the promotion margin: that is evidence against it, not a tie.
    effects = Effects()
    rng = np.random.default_rng(3)
    judge = effects.judge(Registry())
    decisions = [d for _ in range(10) if (d := judge.observe(equivalent(rng, 20), "1"))]
    assert [d.kind for d in decisions] == [ModelEvent.RETIREMENT]


def test_a_rollback_watch_whose_old_version_is_better_rolls_back() -> None:
    # v2 was production before v1 was promoted over it, and now runs in shadow with no margin.
    registry = Registry(tags={SHADOW_ROLE_TAG: ShadowRole.ROLLBACK_WATCH})
    effects = Effects()
    judge = effects.judge(registry)
    decisions = run(judge, champion=0.20, challenger=0.10)
    assert judge.state is not None
    assert judge.state.config.margin == 0
    assert [d.kind for d in decisions] == [ModelEvent.ROLLBACK]
    assert effects.carried_out == decisions


def test_a_rollback_watch_whose_old_version_is_worse_confirms_the_promotion() -> None:
    effects = Effects()
    registry = Registry(tags={SHADOW_ROLE_TAG: ShadowRole.ROLLBACK_WATCH})
    decisions = run(effects.judge(registry), champion=0.05, challenger=0.20)
    assert [d.kind for d in decisions] == [ModelEvent.RETIREMENT]


def test_a_restarted_monitor_resumes_the_saved_evaluation_of_the_same_versions() -> None:
    registry = Registry()
    rng = np.random.default_rng(1)
    first = Effects().judge(registry)
    first.observe(window(rng, 0.1, 0.1, fish=5), "1")
    first.observe(window(rng, 0.1, 0.1, fish=5), "1")
    restarted = Effects().judge(registry)
    restarted.observe(window(rng, 0.1, 0.1, fish=5), "1")
    assert restarted.state is not None
    assert (restarted.state.n, restarted.state.looks) == (15, 3)


def test_a_saved_state_of_an_older_release_is_not_resumed_and_the_evaluation_starts_afresh() -> (
    None
):
    registry = Registry()
    rng = np.random.default_rng(1)
    first = Effects().judge(registry)
    first.observe(window(rng, 0.1, 0.1, fish=5), "1")
    # The state as a release that named its minimums after one example saved it.
    old = registry.tags[SHADOW_STATE_TAG].replace('"min_items"', '"min_count_of_old"')
    registry.tags[SHADOW_STATE_TAG] = old
    restarted = Effects().judge(registry)
    restarted.observe(window(rng, 0.1, 0.1, fish=5), "1")
    assert restarted.state is not None
    assert (restarted.state.n, restarted.state.looks) == (5, 1)


def test_a_saved_evaluation_of_another_champion_is_not_resumed() -> None:
    registry = Registry()
    rng = np.random.default_rng(1)
    Effects().judge(registry).observe(window(rng, 0.1, 0.1, fish=5), "1")
    # Production moved to v3 meanwhile: fish scored by v1 are no evidence against v3.
    restarted = Effects().judge(registry)
    restarted.observe(window(rng, 0.1, 0.1, fish=5), "3")
    assert restarted.state is not None
    assert (restarted.state.champion_version, restarted.state.n) == ("3", 0)


def test_without_a_challenger_or_with_production_as_challenger_nothing_is_judged() -> None:
    rng = np.random.default_rng(1)
    for registry in (Registry(version=None), Registry(version="1")):
        judge = Effects().judge(registry)
        assert judge.observe(window(rng, 0.1, 0.1), "1") is None
        assert judge.state is None
        assert registry.saves == 0


def test_a_verdict_that_cannot_be_carried_out_still_is_saved_and_announced() -> None:
    registry = Registry()
    published: list[ModelDecision] = []

    def prefect_down(decision: ModelDecision) -> str:
        raise ConnectionError("Prefect is down")

    judge = ShadowJudge(SETTINGS, registry, published.append, prefect_down, ErrorKind.RELATIVE)
    decisions = run(judge, champion=0.20, challenger=0.05)
    assert [d.kind for d in decisions] == [ModelEvent.PROMOTION] == [d.kind for d in published]
    assert ShadowEvaluation.from_json(registry.tags[SHADOW_STATE_TAG]).decided


def test_a_rollback_watch_of_a_production_that_moved_on_is_not_judged() -> None:
    # v2 watched the promotion of v3; v1 is production now: v2 winning must not roll v1 back.
    registry = Registry(tags={SHADOW_ROLE_TAG: ShadowRole.ROLLBACK_WATCH, "shadow_champion": "3"})
    effects = Effects()
    assert run(effects.judge(registry), champion=0.20, challenger=0.05) == []
    assert effects.published == effects.carried_out == []
    assert registry.saves == 0


def test_a_verdict_run_s_key_repeats_for_one_model_and_differs_between_models() -> None:
    """Prefect keeps one run per key: another project's verdict on versions of the same numbers
    (seen in CI: fish v1 -> v2 after penguins v1 -> v2) must start a run of its own."""
    fish = ModelDecision(
        kind=ModelEvent.PROMOTION,
        model_name="fish-weight",
        champion_version="1",
        challenger_version="2",
        verdict=ShadowVerdict.PROMOTE,
        reason="better",
        decided_by="monitor",
        decided_at=datetime(2026, 12, 3, tzinfo=UTC),
    )
    again = fish.model_copy(update={"decided_at": datetime(2026, 12, 4, tzinfo=UTC)})
    penguins = fish.model_copy(update={"model_name": "penguin-mass"})
    assert verdict_key(again) == verdict_key(fish)
    assert verdict_key(penguins) != verdict_key(fish)
