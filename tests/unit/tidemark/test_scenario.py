"""The scenario format, the deterministic generator and the CSV loader."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidemark.scenario import (
    NOISE_CLIP_SD,
    RECORD_COLUMNS,
    CsvError,
    FishRecord,
    LinearWeightLaw,
    Scenario,
    ScenarioError,
    fresh_seed,
    generate,
    generate_frame,
    load_csv,
    load_scenario,
    packaged_scenarios,
    parse_scenario,
    to_frame,
)

SMALL = """
name: small
phases:
  - name: mixed
    count: 4000
    species:
      perch:
        share: 3
        length_cm: {mean: 25, sd: 4, min: 15, max: 35}
        height_ratio: {mean: 0.3, sd: 0.02, min: 0.25, max: 0.35}
        weight: {a: 1.0e-4, b: 3.0, c: 1.0, noise_sd: 0.1}
      pike:
        share: 1
        length_cm: {mean: 60, sd: 10, min: 40, max: 100}
        height_ratio: {mean: 0.15, sd: 0.01, min: 0.12, max: 0.18}
        weight: {a: 6.0e-5, b: 3.0, c: 1.0, noise_sd: 0.1}
"""


@pytest.fixture(scope="module")
def default() -> Scenario:
    return load_scenario()


def test_default_is_salmon_then_walleye_then_salmon(default: Scenario) -> None:
    assert [(p.name, list(p.species), p.count) for p in default.phases] == [
        ("salmon", ["salmon"], 1500),
        ("walleye", ["walleye"], 1500),
        ("salmon-again", ["salmon"], 1000),
    ]
    assert default.count == 4000


def test_load_scenario_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SMALL)
    assert load_scenario(path).name == "small"


def test_same_seed_same_fish_other_seed_other_fish(default: Scenario) -> None:
    first = list(generate(default, 7))
    assert first == list(generate(default, 7))
    other = list(generate(default, 8))
    assert [r.fish_id for r in first] != [r.fish_id for r in other]
    assert [r.length_cm for r in first] != [r.length_cm for r in other]


def test_frame_matches_stream_and_phase_subsets_match_the_full_run(default: Scenario) -> None:
    full = generate_frame(default, 3)
    assert list(full.columns) == list(RECORD_COLUMNS)
    pd.testing.assert_frame_equal(full, to_frame(list(generate(default, 3))))
    walleye = generate_frame(default, 3, phases=["walleye"])
    pd.testing.assert_frame_equal(walleye, full[full.phase == "walleye"].reset_index(drop=True))
    assert list(generate_frame(default, 3, phases=[]).columns) == list(RECORD_COLUMNS)


def test_fish_ids_are_unique_uuids_that_depend_on_the_scenario(default: Scenario) -> None:
    ids = generate_frame(default, 1)["fish_id"]
    assert ids.is_unique
    assert all(uuid.UUID(i).version == 5 for i in ids[:10])
    renamed = default.model_copy(update={"name": "other"})
    assert set(ids).isdisjoint(generate_frame(renamed, 1)["fish_id"])


def test_unknown_phase_and_negative_seed_are_refused(default: Scenario) -> None:
    with pytest.raises(ScenarioError, match="no phases \\['pike'\\]"):
        generate_frame(default, 1, phases=["pike"])
    with pytest.raises(ValueError, match="seed"):
        next(generate(default, -1))


def test_values_stay_in_bounds_and_follow_the_weight_law(default: Scenario) -> None:
    frame = generate_frame(default, 5)
    for phase in default.phases:
        for name, spec in phase.species.items():
            rows = frame[(frame.phase == phase.name) & (frame.species == name)]
            length = rows.length_cm.to_numpy()
            ratio = rows.height_cm.to_numpy() / length
            weight = rows.weight_kg.to_numpy()
            assert np.all((length >= spec.length_cm.min) & (length <= spec.length_cm.max))
            assert np.all(ratio >= spec.height_ratio.min - 1e-12)
            assert np.all(ratio <= spec.height_ratio.max + 1e-12)
            assert np.all(np.isfinite(weight) & (weight > 0))
            noise = np.log(weight / spec.weight.median_kg(length, ratio))
            assert np.abs(noise).max() <= NOISE_CLIP_SD * spec.weight.noise_sd + 1e-9
            assert noise.std() == pytest.approx(spec.weight.noise_sd, rel=0.1)


def test_realistic_sizes(default: Scenario) -> None:
    frame = generate_frame(default, 2)
    median = frame.groupby("species")[["length_cm", "weight_kg"]].median()
    assert 60 < median.loc["salmon", "length_cm"] < 80
    assert 3 < median.loc["salmon", "weight_kg"] < 5
    assert 40 < median.loc["walleye", "length_cm"] < 60
    assert 0.8 < median.loc["walleye", "weight_kg"] < 1.6


def test_species_mix_follows_the_shares() -> None:
    frame = generate_frame(parse_scenario(SMALL), 9)
    assert (frame.species == "perch").mean() == pytest.approx(0.75, abs=0.03)


def test_zero_spread_gives_the_exact_law() -> None:
    text = SMALL.replace("sd: 4", "sd: 0").replace("sd: 0.02", "sd: 0")
    frame = generate_frame(parse_scenario(text.replace("noise_sd: 0.1", "noise_sd: 0")), 1)
    perch = frame[frame.species == "perch"]
    assert set(perch.length_cm) == {25.0}
    assert perch.weight_kg.to_numpy() == pytest.approx(1.0e-4 * 25**3 * 0.3)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("min: 15, max: 35", "min: 40, max: 35"), "phases.0.species.perch.length_cm"),
        (("sd: 4", "sd: -4"), "greater than or equal to 0"),
        (("share: 3", "shares: 3"), "Extra inputs are not permitted"),
        (("perch:", "Perch:"), "String should match pattern"),
        (("count: 4000", "count: 0"), "phases.0.count"),
        (("a: 1.0e-4", "a: 1.0e+3"), "outside \\(0, 2000.0\\] kg"),
        (("max: 100", "max: 1000"), "exceeds 800.0 cm"),
        (("noise_sd: 0.1}\n      pike", "noise_sd: .nan}\n      pike"), "finite number"),
        (("weight: {a: 6.0e-5, b: 3.0, c: 1.0, noise_sd: 0.1}", ""), "weight: Field required"),
    ],
)
def test_bad_scenarios_are_explained(edit: tuple[str, str], message: str) -> None:
    bad = SMALL.replace(*edit)
    assert bad != SMALL
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(bad)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nphases: [", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("name: x\nphases: []\n", "phases: List should have at least 1 item"),
        (
            SMALL + SMALL.split("phases:\n")[1],
            "phase names must be unique, repeated: \\['mixed'\\]",
        ),
    ],
)
def test_malformed_scenario_files(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(text)


def test_missing_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "nope.yaml")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fish.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_loads_and_derives_stable_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "\ufeffspecies,length_cm,height_cm,weight_kg,fish_id\n"
        "Salmon,70.5,17,4.1,f-1\n"
        " walleye ,50,11.2,1.05,\n",
    )
    records = load_csv(path)
    assert records[0] == FishRecord("csv", "f-1", "salmon", 70.5, 17.0, 4.1)
    assert records[1].species == "walleye"
    assert uuid.UUID(records[1].fish_id)
    assert load_csv(path) == records


def test_csv_phase_column_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "phase,species,length_cm,height_cm,weight_kg\nspring,pike,60,9,1.5\n")
    assert load_csv(path)[0].phase == "spring"


def test_csv_without_required_columns(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="lacks the columns \\['height_cm'\\]"):
        load_csv(write(tmp_path, "species,length_cm,weight_kg\nsalmon,70,4\n"))


def test_csv_bad_rows_are_all_reported_by_line(tmp_path: Path) -> None:
    text = (
        "species,length_cm,height_cm,weight_kg,fish_id\n"
        "salmon,70,17,4.0,a\n"
        "salmon,abc,17,4.0,b\n"
        "salmon,-3,17,4.0,c\n"
        "salmon,70,nan,4.0,d\n"
        "salmon,70,17,inf,e\n"
        ",70,17,4.0,f\n"
        "salmon,9000,17,4.0,g\n"
        "salmon,70,17\n"
        "salmon,70,17,4.0,a\n"
    )
    with pytest.raises(CsvError) as caught:
        load_csv(write(tmp_path, text))
    message = str(caught.value)
    for expected in (
        "line 3: length_cm: Input should be a valid number",
        "line 4: length_cm: Input should be greater than 0",
        "line 5: height_cm",
        "line 6: weight_kg",
        "line 7: species: Field required",
        "line 8: length_cm: Input should be less than or equal to 800",
        "line 9: weight_kg: Field required",
        "fish_id 'a' appears more than once",
    ):
        assert expected in message


def test_csv_with_only_a_header(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="no records"):
        load_csv(write(tmp_path, "species,length_cm,height_cm,weight_kg\n"))


def test_fresh_seeds_never_repeat_a_fish_id_of_an_earlier_run() -> None:
    scenario = load_scenario()
    first = fresh_seed()
    time.sleep(0.002)
    second = fresh_seed()
    assert second > first
    earlier = set(generate_frame(scenario, first)["fish_id"])
    assert earlier.isdisjoint(generate_frame(scenario, second)["fish_id"])


def test_packaged_scenarios_load_by_name() -> None:
    assert {"default", "tutorial", "never-seen", "growth"} <= set(packaged_scenarios())
    for name in packaged_scenarios():
        assert load_scenario(name).count > 0
    assert load_scenario("default") == load_scenario()


def test_an_unknown_scenario_name_lists_the_packaged_ones() -> None:
    with pytest.raises(ScenarioError, match=r"no packaged scenario 'nope'.*tutorial"):
        load_scenario("nope")


def test_a_file_in_the_working_directory_wins_over_a_packaged_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tutorial").write_text(SMALL)
    monkeypatch.chdir(tmp_path)
    assert load_scenario("tutorial").name == "small"


def test_the_tutorial_is_the_original_data() -> None:
    tutorial = load_scenario("tutorial")
    assert tutorial.event_interval_s == 2.0
    assert [(p.name, list(p.species), p.count) for p in tutorial.phases] == [
        ("salmon", ["salmon"], 60),
        ("walleye", ["walleye"], 60),
        ("salmon-again", ["salmon"], 60),
    ]
    salmon = tutorial.phases[0].species["salmon"].weight
    walleye = tutorial.phases[1].species["walleye"].weight
    assert salmon == LinearWeightLaw(per_length_cm=0.05, per_height_cm=0.01, noise_kg=0.1)
    assert walleye == LinearWeightLaw(per_length_cm=0.02, per_height_cm=0.04, noise_kg=0.1)


def test_a_linear_law_adds_gaussian_noise_in_kg() -> None:
    big = load_scenario("tutorial").phases[0].model_copy(update={"count": 20_000})
    fish = generate_frame(Scenario(name="t", phases=[big]), 3)
    true_kg = 0.05 * fish.length_cm + 0.01 * fish.height_cm
    noise = (fish.weight_kg - true_kg).to_numpy()
    assert noise.mean() == pytest.approx(0.0, abs=0.005)
    assert noise.std() == pytest.approx(0.1, rel=0.05)
    assert np.abs(noise).max() <= NOISE_CLIP_SD * 0.1 + 1e-9


def test_a_linear_law_that_could_weigh_nothing_is_refused() -> None:
    light = SMALL.replace(
        "weight: {a: 1.0e-4, b: 3.0, c: 1.0, noise_sd: 0.1}",
        "weight: {per_length_cm: 0.001, per_height_cm: 0, noise_kg: 0.1}",
    )
    with pytest.raises(ScenarioError, match=r"outside \(0, 2000.0\] kg"):
        parse_scenario(light)
    flat = light.replace("per_length_cm: 0.001", "per_length_cm: 0")
    with pytest.raises(ScenarioError, match="per_length_cm or per_height_cm must be positive"):
        parse_scenario(flat)


def test_never_seen_species_arrives_after_the_shift_and_growth_keeps_one_species() -> None:
    never_seen = load_scenario("never-seen")
    seen_before = {s for p in never_seen.phases[:2] for s in p.species}
    assert set(never_seen.phases[2].species) - seen_before == {"plaice"}
    growth = load_scenario("growth")
    assert {s for p in growth.phases for s in p.species} == {"salmon"}
    lengths = [p.species["salmon"].length_cm.mean for p in growth.phases]
    assert lengths == sorted(lengths)
    assert lengths[0] < lengths[-1]


def test_the_near_floor_walleye_floor_sits_just_under_the_threshold() -> None:
    scenario = load_scenario("near-floor")
    frame = generate_frame(scenario, 0)
    walleye = frame[frame["species"] == "walleye"]
    law = scenario.phases[1].species["walleye"].weight
    length = walleye["length_cm"].to_numpy()
    truth = law.median_kg(length, walleye["height_cm"].to_numpy() / length)
    floor = float(np.mean(np.abs(walleye["weight_kg"].to_numpy() - truth) / walleye["weight_kg"]))
    assert 0.075 < floor < 0.1
