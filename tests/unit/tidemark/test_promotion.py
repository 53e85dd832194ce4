"""The promotion policy, the evidence it needs and the per-species holdout, as pure logic."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tidemark.config import Settings
from tidemark.model import Metrics, TrainingDataError
from tidemark.promotion import (
    Decision,
    EvidenceRules,
    InsufficientEvidenceError,
    PairedTest,
    check_holdout,
    decide,
    decision_tags,
    evidence_metrics,
    evidence_tags,
    gather_evidence,
    metric_tags,
    paired_test,
    split_holdout,
)

RULES = EvidenceRules(
    holdout_fraction=0.2,
    min_holdout_rows=30,
    min_holdout_rows_per_species=15,
    min_training_rows_per_species=30,
)
SIGNIFICANT = PairedTest(statistic=10.0, p_value=0.001, n=60)
NOT_SIGNIFICANT = PairedTest(statistic=800.0, p_value=0.3, n=60)


def metrics(mre: float, n: int = 60) -> Metrics:
    return Metrics(mae=mre * 3, rmse=mre * 4, mean_relative_error=mre, n=n)


def test_without_a_champion_the_candidate_is_promoted() -> None:
    verdict = decide(metrics(0.08), None, margin=0.05, alpha=0.05)
    assert verdict.decision is Decision.PROMOTED
    assert verdict.promote
    assert "no model in production" in verdict.reason
    assert "60 held-out fish" in verdict.reason


def test_a_clearly_better_candidate_is_promoted() -> None:
    verdict = decide(
        metrics(0.06), metrics(0.20), margin=0.05, alpha=0.05, test=SIGNIFICANT,
        champion_version="1",
    )  # fmt: skip
    assert verdict.decision is Decision.PROMOTED
    assert "v1" in verdict.reason
    assert "70.0% below" in verdict.reason
    assert "p = 0.001 < 0.05" in verdict.reason


def test_a_better_mean_without_a_significant_paired_test_is_rejected() -> None:
    # A few fish can pull the mean down while most fish are no better.
    verdict = decide(metrics(0.06), metrics(0.20), margin=0.05, alpha=0.05, test=NOT_SIGNIFICANT)
    assert verdict.decision is Decision.REJECTED
    assert "not significant (Wilcoxon signed-rank p = 0.3, alpha 0.05)" in verdict.reason
    no_test = decide(metrics(0.06), metrics(0.20), margin=0.05, alpha=0.05)
    assert not no_test.promote


@pytest.mark.parametrize("candidate", [0.0570, 0.0561, 0.0600])
def test_a_candidate_within_the_margin_is_rejected_however_significant(candidate: float) -> None:
    verdict = decide(
        metrics(candidate), metrics(0.0590), margin=0.05, alpha=0.05, test=SIGNIFICANT,
        champion_version="3",
    )  # fmt: skip
    assert verdict.decision is Decision.REJECTED
    assert not verdict.promote
    assert "not at least 5% below champion v3" in verdict.reason
    assert "significant" not in verdict.reason


def test_the_margin_is_a_share_of_the_champion_error() -> None:
    champion = metrics(0.10)
    assert decide(metrics(0.0899), champion, margin=0.10, alpha=0.05, test=SIGNIFICANT).promote
    assert not decide(metrics(0.0901), champion, margin=0.10, alpha=0.05, test=SIGNIFICANT).promote


def test_with_no_margin_an_equal_candidate_is_still_rejected() -> None:
    assert not decide(
        metrics(0.05), metrics(0.05), margin=0.0, alpha=0.05, test=SIGNIFICANT
    ).promote


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_candidate_with_unusable_metrics_is_never_promoted(bad: float) -> None:
    broken = Metrics(mae=bad, rmse=0.1, mean_relative_error=0.01, n=10)
    assert decide(broken, None, margin=0.05, alpha=0.05).decision is Decision.REJECTED
    verdict = decide(metrics(bad), metrics(0.2), margin=0.05, alpha=0.05, test=SIGNIFICANT)
    assert verdict.decision is Decision.REJECTED


def test_a_champion_that_cannot_score_the_holdout_loses() -> None:
    verdict = decide(
        metrics(0.07), None, margin=0.05, alpha=0.05, champion_version="2",
        champion_error="sizes out of range",
    )  # fmt: skip
    assert verdict.promote
    assert "v2 could not score the holdout (sizes out of range)" in verdict.reason


def test_a_margin_or_alpha_outside_its_range_is_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        decide(metrics(0.05), None, margin=1.0, alpha=0.05)
    with pytest.raises(ValueError, match="alpha"):
        decide(metrics(0.05), None, margin=0.05, alpha=0.0)


def test_the_paired_test_sees_a_consistent_gain_and_not_a_coin_toss() -> None:
    rng = np.random.default_rng(0)
    champion = rng.uniform(0.05, 0.3, 40)
    better = paired_test(champion * 0.8, champion)
    assert better.p_value < 0.001
    assert better.n == 40
    coin = paired_test(champion * rng.choice([0.8, 1.25], 40), champion)
    assert coin.p_value > 0.05
    worse = paired_test(champion * 1.2, champion)
    assert worse.p_value > 0.99


def test_identical_errors_are_no_evidence_of_a_gain() -> None:
    errors = np.array([0.1, 0.2, 0.05])
    assert paired_test(errors, errors.copy()) == PairedTest(statistic=0.0, p_value=1.0, n=3)
    with pytest.raises(ValueError, match="paired"):
        paired_test(errors, errors[:2])


def fish(counts: dict[str, int]) -> pd.DataFrame:
    """Fish of each species, interleaved in time one minute apart, then shuffled."""
    species = [s for s, n in counts.items() for _ in range(n)]
    order = np.argsort([i for n in counts.values() for i in range(n)], kind="stable")
    frame = pd.DataFrame({"species": np.array(species)[order]})
    frame["fish_id"] = [f"f{i}" for i in range(len(frame))]
    frame["measured_at"] = pd.date_range("2026-11-25", periods=len(frame), freq="min", tz="UTC")
    # Shuffled on purpose: the split must order by time, not trust the row order.
    return frame.sample(frac=1.0, random_state=3)


def test_each_species_holds_out_its_most_recent_share() -> None:
    split = split_holdout(fish({"salmon": 200, "walleye": 100}), RULES)
    held = split.holdout.groupby("species").size().to_dict()
    assert held == {"salmon": 40, "walleye": 20}
    assert len(split.training) == 240
    assert not split.not_judged
    for species, group in split.holdout.groupby("species"):
        trained = split.training[split.training.species == species]
        assert trained["measured_at"].max() < group["measured_at"].min()


def test_a_small_species_holds_out_its_minimum_and_the_holdout_meets_its_overall_minimum() -> None:
    split = split_holdout(fish({"salmon": 60}), RULES)
    # 20 % would be 12, the per-species minimum 15, the overall minimum 30.
    assert (len(split.training), len(split.holdout)) == (30, 30)


def test_the_32_row_window_of_the_issue_is_short_of_evidence() -> None:
    with pytest.raises(InsufficientEvidenceError, match="salmon 40 rows") as caught:
        split_holdout(fish({"salmon": 40}), RULES)
    assert caught.value.rows_short == {"salmon": 5}
    assert isinstance(caught.value, TrainingDataError)


def test_a_single_species_needs_rows_enough_for_the_overall_holdout() -> None:
    with pytest.raises(InsufficientEvidenceError, match="fewer than the minimum of 30") as caught:
        split_holdout(fish({"salmon": 50}), RULES)
    assert caught.value.rows_short == {"all": 10}


def test_a_remembered_species_short_of_evidence_is_trained_on_not_judged() -> None:
    split = split_holdout(fish({"walleye": 120, "salmon": 20}), RULES, required={"walleye"})
    assert split.not_judged == {"salmon": 20}
    assert set(split.holdout.species) == {"walleye"}
    assert (split.training.species == "salmon").sum() == 20
    with pytest.raises(InsufficientEvidenceError, match="salmon 20 rows"):
        split_holdout(fish({"walleye": 120, "salmon": 20}), RULES)


def test_no_records_are_no_evidence() -> None:
    with pytest.raises(InsufficientEvidenceError, match="no records"):
        split_holdout(fish({}), RULES)


def test_the_rows_a_species_needs_follow_from_the_rules() -> None:
    assert RULES.rows_per_species == 45
    wide = EvidenceRules(
        holdout_fraction=0.5, min_holdout_rows=5, min_holdout_rows_per_species=5,
        min_training_rows_per_species=30,
    )  # fmt: skip
    assert wide.rows_per_species == 60
    # Alone, a species must also fill the overall holdout minimum: 30 held out, 30 to train on.
    assert RULES.rows_alone == 60
    for rows in (RULES.rows_alone - 1, RULES.rows_alone):
        alone = fish({"pike": rows})
        if rows < RULES.rows_alone:
            with pytest.raises(InsufficientEvidenceError):
                split_holdout(alone, RULES)
        else:
            assert len(split_holdout(alone, RULES).holdout) >= RULES.min_holdout_rows
    assert EvidenceRules.of(Settings().retrain) == RULES
    with pytest.raises(ValueError, match="holdout_fraction"):
        EvidenceRules(holdout_fraction=1.0, min_holdout_rows=5, min_holdout_rows_per_species=5,
                      min_training_rows_per_species=5)  # fmt: skip


def test_a_holdout_to_judge_a_version_on_needs_its_minimums() -> None:
    check_holdout(pd.Series(["salmon"] * 20 + ["walleye"] * 15), RULES)
    with pytest.raises(InsufficientEvidenceError, match="walleye 14 rows") as caught:
        check_holdout(pd.Series(["salmon"] * 20 + ["walleye"] * 14), RULES)
    assert caught.value.rows_short == {"walleye": 1}
    with pytest.raises(InsufficientEvidenceError, match="20 fish are fewer") as caught:
        check_holdout(pd.Series(["salmon"] * 20), RULES)
    assert caught.value.rows_short == {"all": 10}


def test_evidence_gives_per_species_errors_and_the_paired_test() -> None:
    species = pd.Series(["salmon", "walleye", "salmon", "walleye"])
    evidence = gather_evidence(
        species, np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.2, 0.4, 0.6, 0.8]), {"pike": 3}
    )
    assert evidence.n == 4
    assert evidence.n_by_species == {"salmon": 2, "walleye": 2}
    assert evidence.candidate_mre_by_species == pytest.approx({"salmon": 0.2, "walleye": 0.3})
    assert evidence.champion_mre_by_species == pytest.approx({"salmon": 0.4, "walleye": 0.6})
    assert evidence.test is not None
    assert evidence.test.p_value == pytest.approx(1 / 16)
    assert evidence.not_judged == {"pike": 3}
    alone = gather_evidence(species, np.array([0.1, 0.2, 0.3, 0.4]), None)
    assert alone.test is None
    assert alone.champion_mre_by_species is None


def test_tags_and_metrics_use_the_same_names() -> None:
    species = pd.Series(["salmon", "walleye", "salmon", "walleye"])
    evidence = gather_evidence(species, np.array([0.1, 0.2, 0.3, 0.4]), np.full(4, 0.5))
    figures = evidence_metrics(evidence)
    tags = evidence_tags(evidence)
    assert set(figures) == set(tags)
    assert tags["heldout_n"] == "4"
    assert tags["heldout_n.salmon"] == "2"
    assert float(tags["p_value"]) == figures["p_value"]
    assert float(tags["candidate_mean_relative_error.walleye"]) == pytest.approx(0.3)
    assert figures["champion_mean_relative_error.salmon"] == pytest.approx(0.5)
    alone = evidence_tags(gather_evidence(species, np.full(4, 0.1), None, {"pike": 3}))
    assert alone["p_value"] == "none"
    assert alone["not_judged"] == "pike (3 rows)"
    assert "champion_mean_relative_error.salmon" not in alone


def test_metric_tags_are_named_like_the_metrics() -> None:
    assert metric_tags("champion", None) == {
        "champion_mae": "none",
        "champion_rmse": "none",
        "champion_mean_relative_error": "none",
    }
    tags = metric_tags("candidate", metrics(0.05))
    assert set(tags) <= set(metrics(0.05).as_dict("candidate_"))
    assert float(tags["candidate_mean_relative_error"]) == 0.05
    assert float(tags["candidate_mae"]) == pytest.approx(0.15)
    verdict = decide(metrics(0.05), None, margin=0.05, alpha=0.05)
    assert decision_tags(verdict) == {"decision": "promoted", "decision_reason": verdict.reason}
