"""Shadow evaluation: valid although looked at after every window, and decisive."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from tests.integration.projects import example
from tidemark.config import Settings
from tidemark.judging.shadow import (
    SHADOW_CHAMPION_TAG,
    SHADOW_ROLE_TAG,
    ShadowEvaluation,
    ShadowRole,
    ShadowRules,
    Standing,
    event_of,
    may_be_displaced,
    standing,
    verdict_is_current,
)
from tidemark.project.contracts import Contracts, Scored
from tidemark.project.spec import ErrorKind
from tidemark.schemas import ModelDecision, ModelEvent, ShadowVerdict

FISH = Contracts(example("fish-weight"))

SPECIES = np.array(["salmon", "walleye"])
# Errors of a log-space model: the weight is off by a factor exp(noise).
NOISE = 0.08

Pairs = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


def fish(
    rng: np.random.Generator,
    n: int,
    *,
    champion: float = NOISE,
    challenger: float = NOISE,
    challenger_bias: float = 0.0,
    tails: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Species and both models' relative errors on the same ``n`` fish.

    The two models share part of their error (the fish is hard for both), as two versions of
    one model do; ``tails`` draws the noise from a Student t with that many degrees of freedom.
    """

    def draw(size: tuple[int, ...]) -> np.ndarray:
        if tails is None:
            return rng.standard_normal(size)
        return rng.standard_t(tails, size) * math.sqrt((tails - 2) / tails)

    shared, own = draw((n,)) * math.sqrt(0.8), draw((2, n)) * math.sqrt(0.2)
    a = np.abs(np.expm1(champion * (shared + own[0])))
    b = np.abs(np.expm1(challenger * (shared + own[1]) + challenger_bias))
    return rng.choice(SPECIES, n), a, b


def run(config: ShadowRules, pairs: Pairs, seed: int) -> ShadowEvaluation:
    """One evaluation looked at after every window of 30 to 60 fish until it is decided."""
    rng = np.random.default_rng(seed)
    evaluation = ShadowEvaluation.start("1", "2", config)
    while not evaluation.decided:
        species, a, b = pairs(rng, int(rng.integers(30, 61)))
        evaluation = evaluation.update(species, a, b)
        assert evaluation.n >= config.min_items or not evaluation.decided
    return evaluation


def at_the_margin(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A challenger exactly 5 % better than the champion on average: at the promotion bar."""
    species, a, b = fish(rng, n)
    return species, a, 0.95 * b


RUNS = 400
ALPHA = 0.05
# The rate of wrong decisions may exceed alpha by three Monte-Carlo standard errors at most.
TOLERANCE = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)


@pytest.mark.parametrize(
    ("label", "margin", "pairs"),
    [
        ("equal models, no margin", 0.0, lambda rng, n: fish(rng, n)),
        ("equal models, heavy tails", 0.0, lambda rng, n: fish(rng, n, tails=3)),
        # At the bar itself, promoting and retiring are both wrong.
        ("exactly at the margin", 0.05, at_the_margin),
    ],
)
def test_false_decisions_stay_below_alpha_with_a_look_every_window(
    label: str, margin: float, pairs: Pairs
) -> None:
    config = ShadowRules(alpha=ALPHA, margin=margin, min_items=100, max_items=2_000)
    outcomes = [run(config, pairs, seed) for seed in range(RUNS)]
    wrong = sum(c.verdict is not ShadowVerdict.NO_EVIDENCE for c in outcomes)
    assert all(c.n >= config.max_items for c in outcomes if c.verdict is ShadowVerdict.NO_EVIDENCE)
    assert wrong / RUNS <= ALPHA + TOLERANCE, f"{label}: {wrong} of {RUNS} decided"


def test_the_simulation_would_catch_a_test_that_is_not_valid_under_peeking() -> None:
    # The same looks with a fixed-n z-test at 5 %: the rate of false decisions the test above
    # rules out for the mixture SPRT.
    rng = np.random.default_rng(0)
    wrong = 0
    for _ in range(RUNS):
        d = np.empty(0)
        while d.size < 2_000:
            _, a, b = fish(rng, int(rng.integers(30, 61)))
            d = np.concatenate([d, a - b])
            if d.size >= 100 and abs(d.mean()) / (d.std(ddof=1) / math.sqrt(d.size)) > 1.96:
                wrong += 1
                break
    assert wrong / RUNS > ALPHA + TOLERANCE


def test_a_clearly_better_challenger_is_promoted_and_a_worse_one_retired() -> None:
    config = ShadowRules(alpha=ALPHA, margin=0.05, min_items=100, max_items=5_000)
    better = [run(config, lambda rng, n: fish(rng, n, challenger=0.06), s) for s in range(20)]
    worse = [run(config, lambda rng, n: fish(rng, n, challenger=0.11), s) for s in range(20)]
    assert {c.verdict for c in better} == {ShadowVerdict.PROMOTE}
    assert {c.verdict for c in worse} == {ShadowVerdict.RETIRE}
    for evaluation in (*better, *worse):
        assert config.min_items <= evaluation.n < config.max_items
        assert evaluation.p_value <= config.alpha / 2
        assert evaluation.statistic >= math.log(2 / config.alpha)
    assert "better by more than the margin" in better[0].reason
    assert f"on {better[0].n} items" in better[0].reason


def test_no_decision_before_the_minimum_number_of_fish() -> None:
    config = ShadowRules(min_items=300, max_items=1_000)
    rng = np.random.default_rng(3)
    evaluation = ShadowEvaluation.start("1", "2", config)
    while evaluation.n < 300:
        assert not evaluation.decided, evaluation.reason
        species, a, b = fish(rng, 40, challenger=0.01)
        evaluation = evaluation.update(species, a, b)
    assert evaluation.verdict is ShadowVerdict.PROMOTE
    assert evaluation.n == 320


def test_a_challenger_worse_on_one_species_is_retired_although_better_overall() -> None:
    config = ShadowRules(min_items=100, max_items=5_000)
    rng = np.random.default_rng(4)
    evaluation = ShadowEvaluation.start("1", "2", config)
    while not evaluation.decided:
        species, a, b = fish(rng, 50, challenger=0.04)
        walleye = species == "walleye"
        b[walleye] = a[walleye] * 1.3 + 0.01
        evaluation = evaluation.update(species, a, b)
    assert evaluation.verdict is ShadowVerdict.RETIRE
    assert "worse than the champion on walleye" in evaluation.reason
    assert evaluation.overall.improvement > 0
    assert evaluation.segments["walleye"].challenger_worse
    # Species levels are halved in the order species appear, so that they sum below alpha / 2.
    assert sorted(t.alpha for t in evaluation.segments.values()) == [0.00625, 0.0125]


def test_an_undecided_evaluation_ends_with_no_evidence_at_the_maximum() -> None:
    config = ShadowRules(margin=0.0, min_items=100, max_items=400)
    rng = np.random.default_rng(5)
    evaluation = ShadowEvaluation.start("1", "2", config)
    while not evaluation.decided:
        evaluation = evaluation.update(*fish(rng, 50))
    assert evaluation.verdict is ShadowVerdict.NO_EVIDENCE
    assert evaluation.n == 400
    assert "no decision after 400 items" in evaluation.reason


def test_a_verdict_is_final() -> None:
    evaluation = ShadowEvaluation.start("1", "2", ShadowRules(min_items=10, max_items=20))
    rng = np.random.default_rng(6)
    decided = evaluation.update(*fish(rng, 30))
    assert decided.decided
    assert decided.update(*fish(rng, 30)) == decided


def test_a_resumed_evaluation_continues_exactly_where_it_stopped() -> None:
    config = ShadowRules(min_items=100, max_items=3_000)
    rng = np.random.default_rng(7)
    windows = [fish(rng, 45, challenger=0.075) for _ in range(30)]
    straight = resumed = ShadowEvaluation.start("1", "2", config)
    for window in windows:
        straight = straight.update(*window)
        resumed = ShadowEvaluation.from_json(resumed.update(*window).to_json())
    assert resumed == straight
    assert len(straight.to_json()) < 2_000


def test_errors_are_capped_before_they_are_compared() -> None:
    config = ShadowRules(min_items=2, error_cap=1.0)
    evaluation = ShadowEvaluation.start("1", "2", config).update(
        ["pike"] * 2, [5.0, 0.1], [40.0, 0.1]
    )
    assert evaluation.overall.champion_mean == pytest.approx(0.55)
    assert evaluation.overall.challenger_mean == pytest.approx(0.55)


def test_only_fish_of_both_versions_count() -> None:
    at = datetime(2026, 11, 25, 12, tzinfo=UTC)

    def scored(model: str, challenger: str | None, i: int) -> Scored:
        prediction = FISH.decode_prediction(
            json.dumps(
                {
                    "fish_id": f"f{i}", "species": "salmon", "length_cm": 70.0,
                    "height_cm": 17.0, "measured_at": at.isoformat(),
                    "predicted_weight_kg": 4.4, "species_known": True,
                    "model_name": "fish-weight", "model_version": model,
                    "predicted_at": at.isoformat(), "challenger_version": challenger,
                    "challenger_predicted_weight_kg": 4.2 if challenger else None,
                }
            )
        )  # fmt: skip
        weight = FISH.decode_truth(
            json.dumps(
                {"fish_id": f"f{i}", "species": "salmon", "weight_kg": 4.0,
                 "weighed_at": at.isoformat()}
            )
        )  # fmt: skip
        return FISH.join(prediction, weight, at)

    records = [scored("3", "4", 0), scored("3", None, 1), scored("2", "4", 2), scored("3", "5", 3)]
    start = ShadowEvaluation.start("3", "4", ShadowRules())
    evaluation = start.update_scored(records, ErrorKind.RELATIVE)
    assert evaluation.n == 1
    assert evaluation.overall.champion_mean == pytest.approx(0.1)
    assert evaluation.overall.challenger_mean == pytest.approx(0.05)
    # Judged by the absolute error, in the target's unit (kg here).
    absolute = start.update_scored(records, ErrorKind.ABSOLUTE)
    assert absolute.overall.champion_mean == pytest.approx(0.4)
    assert absolute.overall.challenger_mean == pytest.approx(0.2)


def test_the_decision_record_carries_the_evidence() -> None:
    rng = np.random.default_rng(8)
    evaluation = ShadowEvaluation.start("3", "4", ShadowRules())
    while not evaluation.decided:
        evaluation = evaluation.update(*fish(rng, 50, challenger=0.05))
    at = datetime(2026, 11, 26, 9, tzinfo=UTC)
    record = evaluation.decision(model_name="fish-weight", decided_by="monitor", decided_at=at)
    assert record.kind is ModelEvent.PROMOTION
    assert (record.champion_version, record.challenger_version) == ("3", "4")
    assert (record.n, record.statistic, record.p_value) == (
        evaluation.n,
        evaluation.statistic,
        evaluation.p_value,
    )
    assert set(record.segments) == {"salmon", "walleye"}
    assert sum(s.n for s in record.segments.values()) == record.n
    assert ModelDecision.from_json(record.to_json()) == record
    rollback = evaluation.decision(
        model_name="fish-weight",
        decided_by="monitor",
        decided_at=at,
        role=ShadowRole.ROLLBACK_WATCH,
    )
    assert rollback.kind is ModelEvent.ROLLBACK


def test_the_rules_come_from_the_settings() -> None:
    settings = Settings(shadow_alpha=0.01, shadow_min_items=50, promotion_margin=0.1)
    config = ShadowRules.from_settings(settings)
    assert (config.alpha, config.min_items, config.margin) == (0.01, 50, 0.1)
    assert ShadowRules.from_settings(settings, ShadowRole.ROLLBACK_WATCH).margin == 0.0
    with pytest.raises(ValueError, match="cannot challenge itself"):
        ShadowEvaluation.start("3", "3", config)


WATCH = {SHADOW_ROLE_TAG: "rollback-watch", SHADOW_CHAMPION_TAG: "3"}


def test_the_role_is_read_from_the_tags_and_a_watch_is_never_displaced() -> None:
    assert ShadowRole.of({}) is ShadowRole.CHALLENGER
    assert ShadowRole.of({SHADOW_ROLE_TAG: "challenger"}) is ShadowRole.CHALLENGER
    assert ShadowRole.of(WATCH) is ShadowRole.ROLLBACK_WATCH
    assert may_be_displaced({SHADOW_ROLE_TAG: "challenger"})
    assert not may_be_displaced(WATCH)


@pytest.mark.parametrize(
    ("production", "challenger", "tags", "expected"),
    [
        ("3", "2", {}, Standing.JUDGED),
        ("3", "2", WATCH, Standing.JUDGED),
        ("4", "2", WATCH, Standing.STALE_WATCH),  # production moved on since the watch began
        ("4", "2", {SHADOW_CHAMPION_TAG: "3"}, Standing.JUDGED),  # a challenger is not stale
        (None, "2", {}, Standing.NOTHING),
        ("3", None, {}, Standing.NOTHING),
        ("3", "3", {}, Standing.NOTHING),
    ],
)
def test_the_version_in_shadow_is_judged_only_against_the_production_it_was_set_against(
    production: str | None, challenger: str | None, tags: dict[str, str], expected: Standing
) -> None:
    assert standing(production, challenger, tags) is expected


@pytest.mark.parametrize(
    ("verdict", "role", "event"),
    [
        (ShadowVerdict.PROMOTE, ShadowRole.CHALLENGER, ModelEvent.PROMOTION),
        (ShadowVerdict.PROMOTE, ShadowRole.ROLLBACK_WATCH, ModelEvent.ROLLBACK),
        (ShadowVerdict.RETIRE, ShadowRole.CHALLENGER, ModelEvent.RETIREMENT),
        (ShadowVerdict.RETIRE, ShadowRole.ROLLBACK_WATCH, ModelEvent.RETIREMENT),
        (ShadowVerdict.NO_EVIDENCE, ShadowRole.ROLLBACK_WATCH, ModelEvent.RETIREMENT),
    ],
)
def test_a_final_verdict_promotes_rolls_back_or_retires_by_role(
    verdict: ShadowVerdict, role: ShadowRole, event: ModelEvent
) -> None:
    assert event_of(verdict, role) is event


def test_a_verdict_applies_only_to_the_versions_it_is_about() -> None:
    at = datetime(2026, 11, 26, 9, tzinfo=UTC)
    decided = run(ShadowRules(min_items=10, max_items=20), lambda rng, n: fish(rng, n), 1)
    record = decided.decision(model_name="fish-weight", decided_by="monitor", decided_at=at)
    assert verdict_is_current(record, "1", "2")
    assert not verdict_is_current(record, "2", None)
    assert not verdict_is_current(record, "1", "3")
    retired = decided.retirement(model_name="fish-weight", reason="enough", decided_at=at)
    assert (retired.kind, retired.verdict, retired.reason) == (
        ModelEvent.RETIREMENT,
        ShadowVerdict.RETIRE,
        "enough",
    )
    assert (retired.decided_by, retired.n) == ("manual", decided.n)
