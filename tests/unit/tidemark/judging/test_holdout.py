"""The evidence minimums and the per-species holdout, as pure logic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tidemark.config import Settings
from tidemark.judging.holdout import (
    EvidenceRules,
    InsufficientEvidenceError,
    check_holdout,
    split_holdout,
)
from tidemark.modelling.frames import TrainingDataError

RULES = EvidenceRules(
    holdout_fraction=0.2,
    min_holdout_rows=30,
    min_holdout_rows_per_segment=15,
    min_training_rows_per_segment=30,
)

# The fish example's segment and time columns.
FISH = {"segment": "species", "time": "measured_at"}


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
    split = split_holdout(fish({"salmon": 200, "walleye": 100}), RULES, **FISH)
    held = split.holdout.groupby("species").size().to_dict()
    assert held == {"salmon": 40, "walleye": 20}
    assert len(split.training) == 240
    assert not split.not_judged
    for species, group in split.holdout.groupby("species"):
        trained = split.training[split.training.species == species]
        assert trained["measured_at"].max() < group["measured_at"].min()


def test_a_small_species_holds_out_its_minimum_and_the_holdout_meets_its_overall_minimum() -> None:
    split = split_holdout(fish({"salmon": 60}), RULES, **FISH)
    # 20 % would be 12, the per-species minimum 15, the overall minimum 30.
    assert (len(split.training), len(split.holdout)) == (30, 30)


def test_the_32_row_window_of_the_issue_is_short_of_evidence() -> None:
    with pytest.raises(InsufficientEvidenceError, match="salmon 40 rows") as caught:
        split_holdout(fish({"salmon": 40}), RULES, **FISH)
    assert caught.value.rows_short == {"salmon": 5}
    assert isinstance(caught.value, TrainingDataError)


def test_a_single_species_needs_rows_enough_for_the_overall_holdout() -> None:
    with pytest.raises(InsufficientEvidenceError, match="fewer than the minimum of 30") as caught:
        split_holdout(fish({"salmon": 50}), RULES, **FISH)
    assert caught.value.rows_short == {"all": 10}


def test_a_remembered_species_short_of_evidence_is_trained_on_not_judged() -> None:
    split = split_holdout(fish({"walleye": 120, "salmon": 20}), RULES, **FISH, required={"walleye"})
    assert split.not_judged == {"salmon": 20}
    assert set(split.holdout.species) == {"walleye"}
    assert (split.training.species == "salmon").sum() == 20
    with pytest.raises(InsufficientEvidenceError, match="salmon 20 rows"):
        split_holdout(fish({"walleye": 120, "salmon": 20}), RULES, **FISH)


def test_no_records_are_no_evidence() -> None:
    with pytest.raises(InsufficientEvidenceError, match="no records"):
        split_holdout(fish({}), RULES, **FISH)


def test_the_rows_a_species_needs_follow_from_the_rules() -> None:
    assert RULES.rows_per_segment == 45
    wide = EvidenceRules(
        holdout_fraction=0.5, min_holdout_rows=5, min_holdout_rows_per_segment=5,
        min_training_rows_per_segment=30,
    )  # fmt: skip
    assert wide.rows_per_segment == 60
    # Alone, a species must also fill the overall holdout minimum: 30 held out, 30 to train on.
    assert RULES.rows_alone == 60
    for rows in (RULES.rows_alone - 1, RULES.rows_alone):
        alone = fish({"pike": rows})
        if rows < RULES.rows_alone:
            with pytest.raises(InsufficientEvidenceError):
                split_holdout(alone, RULES, **FISH)
        else:
            assert len(split_holdout(alone, RULES, **FISH).holdout) >= RULES.min_holdout_rows
    assert EvidenceRules.of(Settings().retrain) == RULES
    with pytest.raises(ValueError, match="holdout_fraction"):
        EvidenceRules(holdout_fraction=1.0, min_holdout_rows=5, min_holdout_rows_per_segment=5,
                      min_training_rows_per_segment=5)  # fmt: skip


def test_a_holdout_to_judge_a_version_on_needs_its_minimums() -> None:
    check_holdout(pd.Series(["salmon"] * 20 + ["walleye"] * 15), RULES)
    with pytest.raises(InsufficientEvidenceError, match="walleye 14 rows") as caught:
        check_holdout(pd.Series(["salmon"] * 20 + ["walleye"] * 14), RULES)
    assert caught.value.rows_short == {"walleye": 1}
    with pytest.raises(InsufficientEvidenceError, match="20 items are fewer") as caught:
        check_holdout(pd.Series(["salmon"] * 20), RULES)
    assert caught.value.rows_short == {"all": 10}


def test_a_project_without_segment_holds_out_its_latest_records_as_one_group() -> None:
    records = fish({"salmon": 60}).drop(columns="species")
    split = split_holdout(records, RULES, segment=None, time="measured_at")
    assert len(split.holdout) == 30
    assert split.holdout["measured_at"].min() > split.training["measured_at"].max()
    with pytest.raises(InsufficientEvidenceError):
        split_holdout(records.head(40), RULES, segment=None, time="measured_at")
