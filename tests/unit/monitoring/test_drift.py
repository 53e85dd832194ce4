"""Drift of window fish sizes against a reference of the same species mix, on fish of the default
and growth scenarios; the penguins' categories; a project without a segment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.fish import fish_scenario
from monitoring.drift import SEGMENT, DriftDetector, DriftResult, features_frame
from tests.integration.projects import example
from tests.unit.monitoring.scored import FISH, WHOLE_FISH, scored
from tidemark.judging.scored import WHOLE
from tidemark.simulation.generate import generate_frame

FISH_PROJECT = FISH.project


@pytest.fixture(scope="module")
def fish() -> dict[str, pd.DataFrame]:
    scenario = fish_scenario()
    return {
        "reference": generate_frame(scenario, 1, ["salmon"]),
        "salmon": generate_frame(scenario, 2, ["salmon"]),
        "walleye": generate_frame(scenario, 2, ["walleye"]),
        "both": generate_frame(scenario, 3, ["salmon", "walleye"]),
    }


@pytest.fixture(scope="module")
def detector(fish: dict[str, pd.DataFrame]) -> DriftDetector:
    return DriftDetector(fish["reference"], FISH_PROJECT, p_value=0.001, drift_share=0.5)


def test_the_reference_is_sampled_down(fish: dict[str, pd.DataFrame]) -> None:
    small = DriftDetector(
        fish["reference"], FISH_PROJECT, p_value=0.001, drift_share=0.5, max_reference_rows=200
    )
    assert small.reference_rows == 200


@pytest.mark.parametrize("size", [30, 100, 500])
def test_windows_of_the_same_fish_do_not_drift(
    detector: DriftDetector, fish: dict[str, pd.DataFrame], size: int
) -> None:
    for start in range(0, 1500 - size, 300):
        result = detector.check(fish["salmon"].iloc[start : start + size])
        assert not result.detected, result.p_values


def test_a_species_the_reference_lacks_is_not_tested(
    detector: DriftDetector, fish: dict[str, pd.DataFrame]
) -> None:
    assert detector.segments == {"salmon"}
    assert detector.comparable(fish["walleye"].iloc[:60]).empty
    mixed = pd.concat([fish["walleye"].iloc[:60], fish["salmon"].iloc[:40]])
    assert list(detector.comparable(mixed)[SEGMENT].unique()) == ["salmon"]
    assert not detector.check(mixed).detected


def test_a_window_of_one_species_does_not_drift_from_a_reference_of_two(
    fish: dict[str, pd.DataFrame],
) -> None:
    # A model trained on two species, then a line of one: the mix changed, not the fish.
    two = DriftDetector(fish["both"], FISH_PROJECT, p_value=0.001, drift_share=0.5)
    for species in ("salmon", "walleye"):
        for start in range(0, 900, 300):
            window = fish[species].iloc[start : start + 60]
            assert not two.check(window).detected, (species, start)
    reference = two.matched_reference(two.comparable(fish["salmon"].iloc[:60]))
    assert set(reference[SEGMENT]) == {"salmon"}


def test_larger_fish_of_the_same_species_drift(tmp_path: Path) -> None:
    growth = fish_scenario("growth")
    detector = DriftDetector(
        generate_frame(growth, 1, ["spring"]), FISH_PROJECT, p_value=0.001, drift_share=0.5
    )
    spring = generate_frame(growth, 2, ["spring"])
    assert not detector.check(spring.iloc[:60]).detected
    result = detector.check(generate_frame(growth, 2, ["autumn"]).iloc[:60])
    assert result.detected
    assert set(result.drifted_columns) == {"length_cm", "height_cm"}
    result.snapshot.save_html(str(tmp_path / "drift.html"))
    assert (tmp_path / "drift.html").stat().st_size > 10_000


def test_features_of_scored_records() -> None:
    frame = features_frame(
        [scored(0, species="walleye", length_cm=50.0, height_cm=11.0)], FISH_PROJECT
    )
    assert frame.to_dict("records") == [
        {"species": "walleye", "length_cm": 50.0, "height_cm": 11.0}
    ]


def test_bad_reference_or_empty_window_is_refused(
    detector: DriftDetector, fish: dict[str, pd.DataFrame]
) -> None:
    with pytest.raises(ValueError, match="lack the columns"):
        DriftDetector(
            fish["reference"].drop(columns="species"), FISH_PROJECT, p_value=0.01, drift_share=0.5
        )
    with pytest.raises(ValueError, match="empty"):
        DriftDetector(fish["reference"].iloc[:0], FISH_PROJECT, p_value=0.01, drift_share=0.5)
    with pytest.raises(ValueError, match="no rows"):
        detector.check(fish["salmon"].iloc[:0])
    with pytest.raises(ValueError, match="no rows"):
        detector.check(fish["walleye"].iloc[:30])


def test_without_a_segment_the_window_is_tested_against_all_of_the_reference(
    fish: dict[str, pd.DataFrame],
) -> None:
    # The fish as one segment: a window of walleye is no longer another segment, it drifted.
    whole = DriftDetector(fish["reference"], WHOLE_FISH, p_value=0.001, drift_share=0.5)
    assert whole.segments == {WHOLE}
    assert len(whole.comparable(fish["walleye"].iloc[:60])) == 60
    assert not whole.check(fish["salmon"].iloc[:60]).detected
    assert whole.check(fish["walleye"].iloc[:60]).detected


def _penguins(rng: np.random.Generator, n: int, island: list[str], flipper: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "species": rng.choice(["Adelie", "Chinstrap"], n),
            "island": rng.choice(island, n),
            "bill_length_mm": rng.normal(40, 3, n),
            "bill_depth_mm": rng.normal(18, 1, n),
            "flipper_length_mm": rng.normal(flipper, 5, n),
            "sex": rng.choice(np.array(["female", "male", None], dtype=object), n),
        }
    )


def test_the_categories_besides_the_segment_are_tested_too() -> None:
    penguins = example("penguin-mass")
    rng = np.random.default_rng(0)
    detector = DriftDetector(
        _penguins(rng, 600, ["Biscoe", "Dream"], 190), penguins, p_value=0.001, drift_share=0.5
    )
    same = detector.check(_penguins(rng, 60, ["Biscoe", "Dream"], 190))
    assert not same.detected, same.p_values
    assert set(same.p_values) == {
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "island",
        "sex",
    }
    moved = detector.check(_penguins(rng, 60, ["Torgersen"], 190))
    assert moved.drifted_columns == ("island",)
    assert not moved.detected  # one column of five
    grown = detector.check(_penguins(rng, 60, ["Torgersen"], 220))
    assert set(grown.drifted_columns) == {"flipper_length_mm", "island"}


def _shown(result: DriftResult) -> dict[str, float]:
    """The p-value of each column in the result's Evidently report."""
    return {
        metric["config"]["column"]: float(metric["value"])
        for metric in result.snapshot.dict()["metrics"]
        if metric["config"]["type"].endswith("ValueDrift")
    }


def test_the_p_values_decided_on_are_those_the_report_shows(
    detector: DriftDetector, fish: dict[str, pd.DataFrame]
) -> None:
    # The checks without a report decide on the same figures as the window's, which the
    # workspace shows: numbers, categories with missing values, a category the reference lacks.
    penguins = example("penguin-mass")
    rng = np.random.default_rng(1)
    birds = DriftDetector(
        _penguins(rng, 600, ["Biscoe", "Dream"], 190), penguins, p_value=0.001, drift_share=0.5
    )
    growth = fish_scenario("growth")
    grown = generate_frame(growth, 4, ["summer"])
    cases = [
        (detector, fish["salmon"].iloc[:30]),
        (detector, pd.concat([fish["salmon"].iloc[:40], fish["walleye"].iloc[:20]])),
        (detector, grown.loc[grown["species"] == "salmon"].iloc[:60]),
        (birds, _penguins(rng, 60, ["Biscoe", "Dream"], 190)),
        (birds, _penguins(rng, 60, ["Torgersen"], 220)),
    ]
    for tested, window in cases:
        with_report = tested.check(window)
        without = tested.check(window, report=False)
        assert without.snapshot is None
        assert with_report.p_values == pytest.approx(_shown(with_report), rel=1e-12, abs=1e-300)
        assert without.p_values == with_report.p_values
        assert without.drifted_columns == with_report.drifted_columns
