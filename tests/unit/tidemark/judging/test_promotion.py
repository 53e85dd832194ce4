"""The promotion rule on held-out fish: the paired test, the margin, the evidence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tidemark.judging.decisions import Decision, Ruling
from tidemark.judging.promotion import (
    Focus,
    SignedRankTest,
    decide,
    gather_evidence,
    signed_rank_test,
    worse_segments,
)
from tidemark.modelling.metrics import Metrics

SIGNIFICANT = SignedRankTest(statistic=10.0, p_value=0.001, n=60)
NOT_SIGNIFICANT = SignedRankTest(statistic=800.0, p_value=0.3, n=60)


def metrics(mre: float, n: int = 60) -> Metrics:
    return Metrics(mae=mre * 3, rmse=mre * 4, judged=mre, n=n)


def test_without_a_champion_the_candidate_is_promoted() -> None:
    ruling = decide(metrics(0.08), None, margin=0.05, alpha=0.05)
    assert ruling.decision is Decision.PROMOTED
    assert ruling.promote
    assert "no model in production" in ruling.reason
    assert "60 held-out items" in ruling.reason


def test_a_clearly_better_candidate_is_promoted() -> None:
    ruling = decide(
        metrics(0.06), metrics(0.20), margin=0.05, alpha=0.05, test=SIGNIFICANT,
        champion_version="1",
    )  # fmt: skip
    assert ruling.decision is Decision.PROMOTED
    assert "v1" in ruling.reason
    assert "70.0% below" in ruling.reason
    assert "p = 0.001 < 0.05" in ruling.reason


def test_a_better_mean_without_a_significant_paired_test_is_rejected() -> None:
    # A few fish can pull the mean down while most fish are no better.
    ruling = decide(metrics(0.06), metrics(0.20), margin=0.05, alpha=0.05, test=NOT_SIGNIFICANT)
    assert ruling.decision is Decision.REJECTED
    assert "not significant (Wilcoxon signed-rank p = 0.3, alpha 0.05)" in ruling.reason
    no_test = decide(metrics(0.06), metrics(0.20), margin=0.05, alpha=0.05)
    assert not no_test.promote


@pytest.mark.parametrize("candidate", [0.0570, 0.0561, 0.0600])
def test_a_candidate_within_the_margin_is_rejected_however_significant(candidate: float) -> None:
    ruling = decide(
        metrics(candidate), metrics(0.0590), margin=0.05, alpha=0.05, test=SIGNIFICANT,
        champion_version="3",
    )  # fmt: skip
    assert ruling.decision is Decision.REJECTED
    assert not ruling.promote
    assert "not at least 5% below champion v3" in ruling.reason
    assert "significant" not in ruling.reason


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
    broken = Metrics(mae=bad, rmse=0.1, judged=0.01, n=10)
    assert decide(broken, None, margin=0.05, alpha=0.05).decision is Decision.REJECTED
    ruling = decide(metrics(bad), metrics(0.2), margin=0.05, alpha=0.05, test=SIGNIFICANT)
    assert ruling.decision is Decision.REJECTED


def test_a_champion_that_cannot_score_the_holdout_loses() -> None:
    ruling = decide(
        metrics(0.07), None, margin=0.05, alpha=0.05, champion_version="2",
        champion_error="sizes out of range",
    )  # fmt: skip
    assert ruling.promote
    assert "v2 could not score the holdout (sizes out of range)" in ruling.reason


def test_a_margin_or_alpha_outside_its_range_is_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        decide(metrics(0.05), None, margin=1.0, alpha=0.05)
    with pytest.raises(ValueError, match="alpha"):
        decide(metrics(0.05), None, margin=0.05, alpha=0.0)


def test_the_paired_test_sees_a_consistent_gain_and_not_a_coin_toss() -> None:
    rng = np.random.default_rng(0)
    champion = rng.uniform(0.05, 0.3, 40)
    better = signed_rank_test(champion * 0.8, champion)
    assert better.p_value < 0.001
    assert better.n == 40
    coin = signed_rank_test(champion * rng.choice([0.8, 1.25], 40), champion)
    assert coin.p_value > 0.05
    worse = signed_rank_test(champion * 1.2, champion)
    assert worse.p_value > 0.99


def test_identical_errors_are_no_evidence_of_a_gain() -> None:
    errors = np.array([0.1, 0.2, 0.05])
    assert signed_rank_test(errors, errors.copy()) == SignedRankTest(
        statistic=0.0, p_value=1.0, n=3
    )
    with pytest.raises(ValueError, match="paired"):
        signed_rank_test(errors, errors[:2])


def test_evidence_gives_per_species_errors_and_the_signed_rank_test() -> None:
    species = pd.Series(["salmon", "walleye", "salmon", "walleye"])
    evidence = gather_evidence(
        species, np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.2, 0.4, 0.6, 0.8]), {"pike": 3}
    )
    assert evidence.n == 4
    assert evidence.n_by_segment == {"salmon": 2, "walleye": 2}
    assert evidence.candidate_error_by_segment == pytest.approx({"salmon": 0.2, "walleye": 0.3})
    assert evidence.champion_error_by_segment == pytest.approx({"salmon": 0.4, "walleye": 0.6})
    assert evidence.test is not None
    assert evidence.test.p_value == pytest.approx(1 / 16)
    assert evidence.not_judged == {"pike": 3}
    alone = gather_evidence(species, np.array([0.1, 0.2, 0.3, 0.4]), None)
    assert alone.test is None
    assert alone.champion_error_by_segment is None


def _one_segment_cured(seed: int) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Fifteen plaice on which the candidate errs 30 % less, and fifty walleye and salmon on which
    two equally good fits differ item by item by noise of either sign."""
    rng = np.random.default_rng(seed)
    species = pd.Series(["plaice"] * 15 + ["walleye"] * 25 + ["salmon"] * 25)
    champion = np.concatenate([rng.uniform(0.05, 0.15, 15), rng.uniform(0.01, 0.12, 50)])
    candidate = champion.copy()
    candidate[:15] *= 0.7
    candidate[15:] = champion[15:] * (1 + rng.normal(0.0, 0.7, 50).clip(-0.9, 0.9))
    return species, candidate, champion


def _judged(
    species: pd.Series, candidate: np.ndarray, champion: np.ndarray, focus: tuple[str, ...]
) -> tuple[Decision, str]:
    evidence = gather_evidence(species, candidate, champion, focus=focus)
    ruling = decide(
        metrics(float(candidate.mean()), len(species)),
        metrics(float(champion.mean()), len(species)),
        margin=0.05,
        alpha=0.05,
        test=evidence.test,
        focus=evidence.focus,
        worse=worse_segments(evidence, 0.05),
    )
    return ruling.decision, ruling.reason


def test_the_gain_is_tested_on_the_segments_the_alarm_was_about() -> None:
    # Pooled, the fifteen cured plaice drown in the noise of the fifty others in eight draws of
    # twenty; tested on their own items, the cure is significant in every draw.
    pooled = [_judged(*_one_segment_cured(seed), ())[0] for seed in range(20)]
    focused = [_judged(*_one_segment_cured(seed), ("plaice",)) for seed in range(20)]
    assert pooled.count(Decision.REJECTED) >= 5, pooled
    assert all(decision is Decision.PROMOTED for decision, _ in focused), focused
    reason = focused[0][1]
    assert "on plaice (the alarm's; 15 held-out items)" in reason
    assert "on 65 held-out items" in reason


def test_a_focused_gain_is_refused_when_another_segment_is_significantly_worse() -> None:
    species, candidate, champion = _one_segment_cured(0)
    candidate[15:40] = champion[15:40] * 1.3
    decision, reason = _judged(species, candidate, champion, ("plaice",))
    assert decision is Decision.REJECTED
    assert "significantly worse item by item on walleye" in reason
    evidence = gather_evidence(species, candidate, champion, focus=("plaice",))
    assert set(worse_segments(evidence, 0.05)) == {"walleye"}
    # A segment the alarm was about is never "worse elsewhere", whatever its harm test says.
    assert "walleye" not in worse_segments(
        gather_evidence(species, candidate, champion, focus=("plaice", "walleye")), 0.05
    )


def test_a_focus_absent_from_the_holdout_falls_back_to_all_items() -> None:
    species, candidate, champion = _one_segment_cured(1)
    evidence = gather_evidence(species, candidate, champion, focus=("pike",))
    assert evidence.focus is None
    assert evidence.test == signed_rank_test(candidate, champion)
    focused = gather_evidence(species, candidate, champion, focus=("plaice", "pike"))
    assert focused.focus is not None
    assert focused.focus.segments == ("plaice",)
    assert focused.focus.n == 15
    assert focused.test == signed_rank_test(candidate[:15], champion[:15])


def test_a_focused_gain_is_refused_when_the_candidate_is_higher_overall() -> None:
    focus = Focus(segments=("plaice",), n=15, candidate_error=0.05, champion_error=0.10)

    def ruling(overall: float) -> Ruling:
        return decide(
            metrics(overall), metrics(0.08), margin=0.05, alpha=0.05, test=SIGNIFICANT, focus=focus
        )

    assert ruling(0.09).decision is Decision.REJECTED
    assert ruling(0.09).reason.startswith("higher overall; 0.0900 against 0.0800 overall")
    assert ruling(0.07).promote
