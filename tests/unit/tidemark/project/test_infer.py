"""`tidemark init` writes a project file that loads as it is and says what it guessed."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd
import pytest

from tidemark.project.contracts import Contracts
from tidemark.project.infer import infer_project
from tidemark.project.spec import ErrorKind, FeatureType, ProjectError, parse_project
from tidemark.project.tables import checked_frame, read_table

LOAVES = pd.DataFrame(
    {
        "loaf_id": [f"l{i}" for i in range(24)],
        "recipe": ["rye", "spelt", "wheat"] * 8,
        "oven": ["a", "b"] * 12,
        "dough_g": [500.0 + i for i in range(24)],
        "proof_min": [40, 45, None, 50] * 6,
        "crust_delta_c": [-2.5, 1.0, 0.5] * 8,
        "loaf_g": [450.0 + i for i in range(24)],
    }
)


def test_the_written_file_loads_and_matches_its_data(tmp_path: Path) -> None:
    text, notes = infer_project("bakery", LOAVES, "loaf_g")
    project = parse_project(tomllib.loads(text))
    assert project.key == "loaf_id"
    assert project.segment == "recipe"
    assert project.feature("oven").type is FeatureType.CATEGORY  # type: ignore[union-attr]
    proof = project.feature("proof_min")
    assert proof is not None
    assert not proof.required
    crust = project.feature("crust_delta_c")
    assert crust is not None
    assert crust.min is not None
    assert crust.min < -2.5
    assert project.target.judged_by is ErrorKind.RELATIVE
    assert any("segment: recipe" in note for note in notes)
    csv = tmp_path / "loaves.csv"
    LOAVES.to_csv(csv, index=False)
    frame = read_table(Contracts(project), csv)
    assert len(frame) == len(LOAVES)


def test_a_target_that_may_be_negative_gets_its_error_scales_guessed() -> None:
    """Judged by its absolute error, the file states the threshold and cap in its unit."""
    text, notes = infer_project("bakery", LOAVES, "crust_delta_c")
    project = parse_project(tomllib.loads(text))
    assert project.target.judged_by is ErrorKind.ABSOLUTE
    spread = float(LOAVES["crust_delta_c"].std())
    threshold = project.loop.monitor["error_threshold"]
    assert 0.5 * spread <= threshold <= 0.6 * spread
    assert project.loop.shadow["error_cap"] >= 3.0  # the range seen: -2.5 to 1.0
    assert any("absolute error" in note for note in notes)


def test_a_target_that_is_not_a_number_or_not_a_column_is_refused() -> None:
    with pytest.raises(ProjectError, match="--target recipe is not a number"):
        infer_project("bakery", LOAVES, "recipe")
    with pytest.raises(ProjectError, match="--target mass is not a column"):
        infer_project("bakery", LOAVES, "mass")


def test_columns_that_are_not_field_names_are_refused() -> None:
    with pytest.raises(ProjectError, match=r"columns \['Loaf weight'\]"):
        infer_project("bakery", LOAVES.rename(columns={"loaf_g": "Loaf weight"}), "loaf_id")


def test_a_table_whose_columns_do_not_match_is_refused_naming_them() -> None:
    text, _ = infer_project("bakery", LOAVES, "loaf_g")
    contracts = Contracts(parse_project(tomllib.loads(text)))
    changed = LOAVES.drop(columns=["oven"]).assign(colour="gold")
    with pytest.raises(ProjectError, match=r"lacks the columns \['oven'\].*\['colour'\]"):
        checked_frame(contracts, changed, "loaves.csv")


def test_bad_rows_are_refused_with_their_line_numbers() -> None:
    text, _ = infer_project("bakery", LOAVES, "loaf_g")
    contracts = Contracts(parse_project(tomllib.loads(text)))
    bad = LOAVES.copy()
    bad.loc[3, "dough_g"] = -1.0
    bad.loc[5, "recipe"] = None
    with pytest.raises(ProjectError, match="2 bad rows") as caught:
        checked_frame(contracts, bad, "loaves.csv")
    assert "line 5: dough_g: Input should be greater than 0" in str(caught.value)
    assert "line 7: recipe: Field required" in str(caught.value)
