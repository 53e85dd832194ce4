"""The fish as a project: their scenarios live in examples/fish, read by the generic engine.

They were read by a fish-only engine until issue 23; the generic engine gave the same fish for
every scenario and seed (ids, species, lengths and heights exactly, weights to float round-off)
when that engine went.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tidemark.project.contracts import Contracts
from tidemark.project.spec import load_project
from tidemark.simulation.generate import generate, generate_frame
from tidemark.simulation.library import load_scenario, packaged_scenarios
from tidemark.simulation.scenario import ScenarioError, bind, parse_spec
from tidemark.simulation.spec import NOISE_CLIP_SD, LinearLaw, PowerLaw

REPO = Path(__file__).parents[3]
FISH = load_project(REPO / "projects" / "fish-weight.toml")


def test_every_fish_scenario_moved() -> None:
    assert packaged_scenarios(FISH) == ("default", "growth", "near-floor", "never-seen", "tutorial")
    assert FISH.scenarios == str(REPO / "examples" / "fish" / "scenarios")


def test_the_default_is_salmon_then_walleye_then_salmon() -> None:
    default = load_scenario(FISH)
    assert default.name == "salmon-walleye-salmon"
    assert [(p.name, list(p.segments), p.count) for p in default.phases] == [
        ("salmon", ["salmon"], 1500),
        ("walleye", ["walleye"], 1500),
        ("salmon-again", ["salmon"], 1000),
    ]


def test_realistic_sizes() -> None:
    frame = generate_frame(load_scenario(FISH), 2)
    median = frame.groupby("species")[["length_cm", "weight_kg"]].median()
    assert 60 < median.loc["salmon", "length_cm"] < 80
    assert 3 < median.loc["salmon", "weight_kg"] < 5
    assert 40 < median.loc["walleye", "length_cm"] < 60
    assert 0.8 < median.loc["walleye", "weight_kg"] < 1.6


def test_every_fish_of_every_scenario_is_a_valid_record() -> None:
    contracts = Contracts(FISH)
    for name in packaged_scenarios(FISH):
        for row in generate(load_scenario(FISH, name), 1):
            contracts.input.model_validate(
                {"fish_id": row.key, **row.features, "measured_at": "2026-01-01T00:00:00Z"}
            )
            contracts.truth.model_validate(
                {
                    "fish_id": row.key,
                    "species": row.features["species"],
                    "weight_kg": row.target,
                    "weighed_at": "2026-01-01T00:00:05Z",
                }
            )


def test_the_tutorial_is_the_original_data() -> None:
    tutorial = load_scenario(FISH, "tutorial")
    assert tutorial.event_interval_s == 2.0
    assert [(p.name, list(p.segments), p.count) for p in tutorial.phases] == [
        ("salmon", ["salmon"], 60),
        ("walleye", ["walleye"], 60),
        ("salmon-again", ["salmon"], 60),
    ]
    salmon = tutorial.phases[0].segments["salmon"].target
    walleye = tutorial.phases[1].segments["walleye"].target
    assert salmon == LinearLaw(
        law="linear", coefficients={"length_cm": 0.05, "height_cm": 0.01}, noise_sd=0.1
    )
    assert walleye == LinearLaw(
        law="linear", coefficients={"length_cm": 0.02, "height_cm": 0.04}, noise_sd=0.1
    )


def test_a_linear_law_adds_gaussian_noise_in_kg() -> None:
    tutorial = load_scenario(FISH, "tutorial")
    big = tutorial.with_phases([tutorial.phases[0].model_copy(update={"count": 20_000})])
    fish = generate_frame(big, 3)
    noise = (fish.weight_kg - (0.05 * fish.length_cm + 0.01 * fish.height_cm)).to_numpy()
    assert noise.mean() == pytest.approx(0.0, abs=0.005)
    assert noise.std() == pytest.approx(0.1, rel=0.05)
    assert np.abs(noise).max() <= NOISE_CLIP_SD * 0.1 + 1e-9


def test_never_seen_species_arrives_after_the_shift_and_growth_keeps_one_species() -> None:
    never_seen = load_scenario(FISH, "never-seen")
    seen_before = {s for p in never_seen.phases[:2] for s in p.segments}
    assert set(never_seen.phases[2].segments) - seen_before == {"plaice"}
    growth = load_scenario(FISH, "growth")
    assert {s for p in growth.phases for s in p.segments} == {"salmon"}
    lengths = [p.segments["salmon"].features["length_cm"].mean for p in growth.phases]  # type: ignore[union-attr]
    assert lengths == sorted(lengths)
    assert lengths[0] < lengths[-1]


def test_the_near_floor_walleye_floor_sits_just_under_the_threshold() -> None:
    scenario = load_scenario(FISH, "near-floor")
    walleye = generate_frame(scenario, 0).query("species == 'walleye'")
    law = scenario.phase("small-walleye").segments["walleye"].target
    assert law is not None
    truth = law.median(
        {"length_cm": walleye.length_cm.to_numpy(), "height_cm": walleye.height_cm.to_numpy()},
        len(walleye),
    )
    floor = float(np.mean(np.abs(walleye.weight_kg.to_numpy() - truth) / walleye.weight_kg))
    assert 0.075 < floor < 0.1


def test_walleye_are_lighter_than_salmon_of_their_size() -> None:
    default = load_scenario(FISH)
    salmon = default.phase("salmon").segments["salmon"].target
    walleye = default.phase("walleye").segments["walleye"].target
    assert isinstance(salmon, PowerLaw)
    assert isinstance(walleye, PowerLaw)
    size = {"length_cm": np.array([50.0]), "height_cm": np.array([11.0])}
    assert walleye.median(size, 1)[0] < 0.9 * salmon.median(size, 1)[0]


def test_a_fish_too_long_for_the_project_is_refused_naming_the_field() -> None:
    text = (REPO / "examples" / "fish" / "scenarios" / "default.yaml").read_text()
    too_long = text.replace("min: 50.0, max: 90.0}", "min: 50.0, max: 900.0}", 1)
    # The message the README quotes.
    with pytest.raises(
        ScenarioError,
        match=re.escape(
            "phases.0.segments.salmon.features.length_cm: draws range over [50, 900] cm, "
            "outside length_cm's bounds (0, 800] cm"
        ),
    ):
        bind(parse_spec(too_long, "too long"), FISH)
