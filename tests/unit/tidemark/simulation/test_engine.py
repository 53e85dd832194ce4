"""The scenario engine on a neutral project: draws, laws, determinism, resampling, checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tidemark.simulation
from tests.unit.tidemark.simulation.bakery import BAKERY, LOAVES, SMALL, scenario
from tidemark.project.contracts import Contracts
from tidemark.project.spec import parse_project
from tidemark.simulation.generate import columns, fresh_seed, generate, generate_frame
from tidemark.simulation.scenario import ScenarioError
from tidemark.simulation.spec import NOISE_CLIP_SD, LinearLaw, Normal, PowerLaw, Ratio

RESAMPLED = """
name: resampled
project: bakery-loaf
data:
  loaves: {file: loaves.csv}
phases:
  - name: real
    count: 3000
    segments:
      spelt: {share: 1, resample: {data: loaves, noise_sd: 0.01}}
      rye: {share: 1, resample: {data: loaves}}
"""


def test_same_seed_same_items_other_seed_other_items() -> None:
    small = scenario()
    first = list(generate(small, 7))
    assert first == list(generate(small, 7))
    other = list(generate(small, 8))
    assert [r.key for r in first] != [r.key for r in other]
    assert [r.features["dough_g"] for r in first] != [r.features["dough_g"] for r in other]


def test_frame_matches_stream_and_phase_subsets_match_the_full_run() -> None:
    small = scenario()
    full = generate_frame(small, 3)
    assert list(full.columns) == columns(small)
    assert columns(small) == [
        "phase", "loaf_id", "recipe", "dough_g", "crust_g", "oven", "humidity_pct", "loaf_g"
    ]  # fmt: skip
    rows = list(generate(small, 3))
    assert list(full["loaf_id"]) == [r.key for r in rows]
    assert list(full["loaf_g"]) == [r.target for r in rows]
    assert [r.features.get("humidity_pct") for r in rows] == [
        None if np.isnan(h) else h for h in full["humidity_pct"]
    ]
    later = generate_frame(small, 3, phases=["rye-only"])
    pd.testing.assert_frame_equal(later, full[full.phase == "rye-only"].reset_index(drop=True))
    assert list(generate_frame(small, 3, phases=[]).columns) == columns(small)


def test_keys_are_uuids_of_the_name_seed_and_index() -> None:
    small = scenario()
    keys = generate_frame(small, 1)["loaf_id"]
    assert keys.is_unique
    assert all(uuid.UUID(k).version == 5 for k in keys[:10])
    renamed = small.with_phases(small.phases, name="other")
    assert set(keys).isdisjoint(generate_frame(renamed, 1)["loaf_id"])


def test_unknown_phase_and_negative_seed_are_refused() -> None:
    with pytest.raises(ScenarioError, match="no phases \\['proofing'\\]"):
        generate_frame(scenario(), 1, phases=["proofing"])
    with pytest.raises(ValueError, match="seed"):
        next(generate(scenario(), -1))


def test_draws_stay_in_their_ranges_and_the_laws_hold() -> None:
    small = scenario()
    frame = generate_frame(small, 5)
    mixed = small.phase("mixed").segments
    for label, segment in mixed.items():
        rows = frame[(frame.phase == "mixed") & (frame.recipe == label)]
        dough = rows.dough_g.to_numpy()
        share = rows.crust_g.to_numpy() / dough
        normal = segment.features["dough_g"]
        ratio = segment.features["crust_g"]
        assert isinstance(normal, Normal)
        assert isinstance(ratio, Ratio)
        assert normal.min <= dough.min()
        assert dough.max() <= normal.max
        assert ratio.min - 1e-12 <= share.min()
        assert share.max() <= ratio.max + 1e-12
        law = segment.target
        assert law is not None
        values = {"dough_g": dough, "crust_g": rows.crust_g.to_numpy()}
        median = law.median(values, len(rows))
        if isinstance(law, PowerLaw):
            noise = np.log(rows.loaf_g.to_numpy() / median)
        else:
            assert isinstance(law, LinearLaw)
            noise = rows.loaf_g.to_numpy() - median
        assert np.abs(noise).max() <= NOISE_CLIP_SD * law.noise_sd + 1e-9
        assert noise.std() == pytest.approx(law.noise_sd, rel=0.1)
        assert noise.mean() == pytest.approx(0, abs=law.noise_sd / 10)


def test_shares_choices_and_optional_features() -> None:
    frame = generate_frame(scenario(), 9)
    mixed = frame[frame.phase == "mixed"]
    assert (mixed.recipe == "rye").mean() == pytest.approx(0.75, abs=0.03)
    rye = mixed[mixed.recipe == "rye"]
    assert (rye.oven == "north").mean() == pytest.approx(0.75, abs=0.03)
    assert set(mixed[mixed.recipe == "wheat"].oven) == {"south"}
    # An optional feature a segment does not draw is absent, never invented.
    assert rye.humidity_pct.isna().all()
    assert mixed[mixed.recipe == "wheat"].humidity_pct.notna().all()


def test_zero_spread_gives_the_exact_law() -> None:
    text = SMALL.replace("sd: 60", "sd: 0").replace("sd: 0.02", "sd: 0")
    exact = scenario(text.replace("noise_sd: 0.05", "noise_sd: 0"))
    rye = generate_frame(exact, 1, phases=["mixed"]).query("recipe == 'rye'")
    assert set(rye.dough_g) == {800.0}
    assert set(rye.crust_g) == {160.0}
    assert rye.loaf_g.to_numpy() == pytest.approx(0.9 * 800)


def test_every_generated_item_is_a_valid_record() -> None:
    contracts = Contracts(BAKERY)
    for row in generate(scenario(), 2):
        contracts.input.model_validate(
            {"loaf_id": row.key, **row.features, "baked_at": "2026-01-01T00:00:00Z"}
        )
        contracts.truth.model_validate(
            {"loaf_id": row.key, "loaf_g": row.target, "weighed_at": "2026-01-01T00:00:01Z"}
        )


def test_a_project_without_a_segment_mixes_populations_it_does_not_write() -> None:
    plain = parse_project(
        BAKERY.model_dump(mode="json")
        | {"segment": None, "features": [f for f in BAKERY.model_dump()["features"]
                                         if f["name"] != "recipe"]}
    )  # fmt: skip
    frame = generate_frame(scenario(SMALL.replace("rye-only", "later"), plain), 4)
    assert "recipe" not in frame.columns
    assert (frame.oven == "north").mean() > 0.4


def test_resampling_replays_the_segments_rows_with_noise(tmp_path: Path) -> None:
    (tmp_path / "loaves.csv").write_text(LOAVES)
    resampled = scenario(RESAMPLED, folder=tmp_path)
    table = resampled.data["loaves"]
    # The row without dough and the row without a loaf weight are skipped; the baker ignored.
    assert table.skipped == 2
    frame = generate_frame(resampled, 6)
    rye = frame[frame.recipe == "rye"]
    # Without noise, every rye loaf is the data set's one rye loaf.
    assert set(rye.dough_g) == {800.0}
    assert set(rye.loaf_g) == {730.0}
    spelt = frame[frame.recipe == "spelt"]
    nearest = np.where(spelt.dough_g < 800, 700.0, 900.0)
    ratio = spelt.dough_g.to_numpy() / nearest
    assert np.abs(np.log(ratio)).max() <= NOISE_CLIP_SD * 0.01 + 1e-12
    assert np.log(ratio).std() == pytest.approx(0.01, rel=0.15)
    # Both spelt rows come back, about as often; the missing humidity stays missing.
    assert (spelt.dough_g < 800).mean() == pytest.approx(0.5, abs=0.05)
    assert spelt[spelt.dough_g > 800].humidity_pct.isna().all()
    assert spelt[spelt.dough_g < 800].humidity_pct.notna().all()


def test_a_package_data_set_is_read_without_importing_the_package(tmp_path: Path) -> None:
    check = (
        "import sys\n"
        "from tidemark.simulation.datasets import locate\n"
        "from tidemark.simulation.spec import DataFile\n"
        "data = DataFile(package='palmerpenguins', path='data/penguins.csv')\n"
        "text, source = locate(data, None)\n"
        "assert text.startswith('species,island,bill_length_mm'), text[:40]\n"
        "assert 'palmerpenguins' not in sys.modules and 'pandas' not in sys.modules\n"
        "print(source)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "palmerpenguins:data/penguins.csv"


def _bad(edit: tuple[str, str], text: str = SMALL) -> str:
    bad = text.replace(*edit)
    assert bad != text
    return bad


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("          oven: {choice: {north: 3, south: 1}}\n", "          flour_g: {mean: 1, sd: 0, "
          "min: 1, max: 1}\n          oven: {choice: {north: 3}}\n"),
         r"phases.0.segments.rye.features.flour_g: not a feature of project bakery-loaf"),
        (("{mean: 800, sd: 60, min: 600, max: 1000}", "{mean: 800, sd: 60, min: 600, max: 9000}"),
         r"phases.0.segments.rye.features.dough_g: draws range over \[600, 9000\] g, outside "
         r"dough_g's bounds \(0, 5000\] g"),
        (("min: 0.15, max: 0.25}\n          oven: {choice: {north: 3",
          "min: 0.15, max: 2.5}\n          oven: {choice: {north: 3"),
         r"features.crust_g: draws range over \[90, 2500\] g, outside crust_g's bounds"),
        (("      rye:\n        share: 3", "      barley:\n        share: 3"),
         r"phases.0.segments.barley: 'barley' is not a value of recipe \(should be one of"),
        (("oven: {choice: {south: 1}}", "oven: {choice: {west: 1}}"),
         r"segments.wheat.features.oven.choice: 'west' is not a value of oven"),
        (("oven: {choice: {south: 1}}", "oven: {mean: 1, sd: 0, min: 1, max: 1}"),
         r"features.oven: oven is a category: draw it with choice"),
        (("dough_g: {mean: 500, sd: 40, min: 400, max: 600}", "dough_g: {choice: {a: 1}}"),
         r"features.dough_g: dough_g is a number: draw it from a normal or a ratio"),
        (("{ratio_of: dough_g, mean: 0.2", "{ratio_of: humidity_pct, mean: 0.2"),
         r"rye.features.crust_g.ratio_of: humidity_pct is not a number this segment draws from a "
         r"normal"),
        (("          oven: {choice: {south: 1}}\n", ""),
         r"phases.0.segments.wheat.features: lacks \['oven'\], required by the project"),
        (("scale: 0.9, exponents: {dough_g: 1.0}, noise_sd: 0.05}\n      wheat",
          "scale: 9, exponents: {dough_g: 1.0}, noise_sd: 0.05}\n      wheat"),
         r"phases.0.segments.rye.target: targets range over \[4421, 1.099e\+04\] g, outside "
         r"loaf_g's bounds \(0, 6000\] g"),
        (("intercept: 10", "intercept: -400"),
         r"segments.wheat.target: targets range over \[-88.8, 149.2\] g, outside loaf_g's bounds"),
        (("exponents: {dough_g: 1.0}, noise_sd: 0.05}\n      wheat",
          "exponents: {humidity_pct: 1.0}, noise_sd: 0.05}\n      wheat"),
         r"segments.rye.target.exponents.humidity_pct: not a number this segment draws"),
        (("        share: 3", "        resample: {data: x}\n        share: 3"),
         r"phases.0.segments.rye: a resampled segment draws no features and no target"),
        (("count: 4000", "count: 0"), r"phases.0.count: Input should be greater than or equal"),
        (("noise_sd: 8", "noise_sd: .nan"), r"noise_sd: Input should be a finite number"),
        (("project: bakery-loaf", "project: Bakery"), r"project: String should match pattern"),
    ],
)  # fmt: skip
def test_bad_scenarios_are_explained_by_field(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario(_bad(edit))


def test_a_power_law_needs_positive_features() -> None:
    text = _bad(("humidity_pct: {mean: 60, sd: 5, min: 40, max: 80}",
                 "humidity_pct: {mean: 60, sd: 5, min: 0, max: 80}"))  # fmt: skip
    text = _bad(("coefficients: {dough_g: 0.85, crust_g: 0.1}", "coefficients: {dough_g: 0.85}"),
                text)  # fmt: skip
    text = _bad(("law: linear\n", "law: power\n          scale: 1\n          exponents: "
                 "{dough_g: 1.0, humidity_pct: 0.1}\n"), text)  # fmt: skip
    text = text.replace("          intercept: 10\n", "").replace(
        "          coefficients: {dough_g: 0.85}\n", ""
    )
    with pytest.raises(ScenarioError, match=r"exponents.humidity_pct: a power law needs positive"):
        scenario(text)


def test_a_segment_in_another_spelling_is_refused() -> None:
    lower = parse_project(
        BAKERY.model_dump(mode="json")
        | {"features": [f | ({"case": "lower", "values": None} if f["name"] == "recipe" else {})
                        for f in BAKERY.model_dump(mode="json")["features"]]}
    )  # fmt: skip
    with pytest.raises(ScenarioError, match=r"segments.Rye: the project recipe spells 'Rye' as"):
        scenario(
            SMALL.replace("      rye:\n        share: 3", "      Rye:\n        share: 3"), lower
        )


def test_resampling_problems_are_explained(tmp_path: Path) -> None:
    (tmp_path / "loaves.csv").write_text(LOAVES)
    with pytest.raises(ScenarioError, match=r"segments.spelt.resample.data: no data set named"):
        scenario(
            RESAMPLED.replace("{data: loaves, noise_sd", "{data: bread, noise_sd"), folder=tmp_path
        )
    with pytest.raises(ScenarioError, match=r"segments.wheat.resample: .*loaves.csv has no rows of "
                       r"recipe wheat"):  # fmt: skip
        scenario(RESAMPLED.replace("rye: {share: 1", "wheat: {share: 1"), folder=tmp_path)
    noisy = r"spelt.resample.noise_sd: humidity_pct with noise ranges over .*outside .*\[0, 100\]"
    with pytest.raises(ScenarioError, match=noisy):
        scenario(RESAMPLED.replace("noise_sd: 0.01", "noise_sd: 0.2"), folder=tmp_path)
    (tmp_path / "loaves.csv").write_text(LOAVES.replace("rye,800", "rye,80000"))
    with pytest.raises(ScenarioError, match=r"data.loaves: .*loaves.csv has 1 bad rows:\n  line 5: "
                       r"dough_g: Input should be less than or equal to 5000"):  # fmt: skip
        scenario(RESAMPLED, folder=tmp_path)
    (tmp_path / "loaves.csv").write_text("recipe,dough_g\nrye,1\n")
    with pytest.raises(ScenarioError, match=r"lacks the columns \['crust_g', 'oven', 'loaf_g'\]"):
        scenario(RESAMPLED, folder=tmp_path)
    with pytest.raises(ScenarioError, match=r"data.loaves: cannot read .*nowhere.csv"):
        scenario(RESAMPLED.replace("loaves.csv", "nowhere.csv"), folder=tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nphases: [", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("name: x\nproject: bakery-loaf\nphases: []\n", "phases: List should have at least 1 item"),
        (SMALL + SMALL.split("phases:\n")[1], r"phase names must be unique, repeated: \['mixed'"),
    ],
)
def test_malformed_scenario_files(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario(text)


def test_a_project_field_named_phase_is_refused() -> None:
    clash = parse_project(BAKERY.model_dump(mode="json") | {"key": "phase"})
    with pytest.raises(ScenarioError, match="has a field named 'phase'"):
        scenario(project=clash)


def test_fresh_seeds_never_repeat_a_key_of_an_earlier_run() -> None:
    small = scenario()
    first = fresh_seed()
    time.sleep(0.002)
    second = fresh_seed()
    assert second > first
    earlier = set(generate_frame(small, first)["loaf_id"])
    assert earlier.isdisjoint(generate_frame(small, second)["loaf_id"])


def test_the_documented_example_is_a_scenario(tmp_path: Path) -> None:
    doc = tidemark.simulation.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    (tmp_path / "loaves.csv").write_text(LOAVES)
    example = scenario(textwrap.dedent(block), folder=tmp_path)
    frame = generate_frame(example, 1)
    assert set(frame.recipe) == {"rye", "spelt"}
