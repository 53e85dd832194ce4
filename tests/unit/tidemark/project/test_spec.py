"""A project file is validated with an error that names the field at fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tidemark.project.spec import (
    ErrorKind,
    Project,
    ProjectError,
    load_project,
    parse_project,
    schema_text,
)

REPO = Path(__file__).parents[4]


def bakery(**changes: Any) -> dict[str, Any]:
    """A small valid project, as parsed TOML, with some parts changed."""
    data: dict[str, Any] = {
        "name": "bakery-loaf",
        "key": "loaf_id",
        "segment": "recipe",
        "times": {"input": "baked_at", "truth": "weighed_at"},
        "features": [
            {"name": "recipe", "type": "category"},
            {"name": "dough_g", "type": "number", "unit": "g", "min": 0, "exclusive_min": True},
        ],
        "target": {"name": "loaf_g", "unit": "g", "min": 0, "exclusive_min": True},
    }
    return data | changes


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(ProjectError) as caught:
        parse_project(data, "bakery.toml")
    return str(caught.value)


def test_a_valid_project_names_its_parts() -> None:
    project = parse_project(bakery())
    assert project.collection == "bakery-loaf"
    assert project.topic_prefix == "bakery-loaf"
    assert [f.name for f in project.numbers] == ["dough_g"]
    assert project.target.judged_by is ErrorKind.RELATIVE


ABSOLUTE_SCALES = {"monitor": {"error_threshold": 1.5}, "shadow": {"error_cap": 40}}


def test_a_target_that_may_be_negative_is_judged_by_its_absolute_error() -> None:
    project = parse_project(
        bakery(target={"name": "temperature_c", "unit": "C"}, loop=ABSOLUTE_SCALES)
    )
    assert project.target.judged_by is ErrorKind.ABSOLUTE


def test_an_absolute_error_needs_its_threshold_and_cap_in_the_targets_unit() -> None:
    """The stack's 0.10 threshold and 1.0 cap are relative errors: meaningless in °C."""
    message = refused(bakery(target={"name": "temperature_c", "unit": "C"}))
    assert "temperature_c is judged by its absolute error" in message
    assert "(in C)" in message
    assert "[loop.monitor] error_threshold and [loop.shadow] error_cap" in message
    half = {"monitor": {"error_threshold": 1.5}}
    assert "set [loop.shadow] error_cap;" in refused(
        bakery(target={"name": "temperature_c"}, loop=half)
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"features": [{"name": "recipe", "type": "text"}]},
            "features.0.type: Input should be 'number' or 'category'",
        ),
        (
            {
                "features": [
                    {"name": "recipe", "type": "category"},
                    {"name": "recipe", "type": "category"},
                ]
            },
            "features: recipe is declared twice",
        ),
        (
            {
                "features": [
                    {"name": "recipe", "type": "category"},
                    {"name": "loaf_g", "type": "number"},
                ]
            },
            "target: loaf_g is also a feature",
        ),
        (
            {"segment": "dough_g", "features": [{"name": "dough_g", "type": "number"}]},
            "segment: dough_g is a number, not a category",
        ),
        ({"segment": "oven"}, "segment: oven is not a feature"),
        (
            {"features": [{"name": "dough_g", "type": "number", "min": 900, "max": 100}]},
            "features.0: min 900.0 is above max 100.0",
        ),
        (
            {"target": {"name": "loaf_g", "error": "relative"}},
            "a relative error needs a positive target",
        ),
        ({"name": "Bakery Loaf"}, "name: String should match pattern"),
        ({"key": "dough_g"}, "key: dough_g is also a feature"),
    ],
)
def test_a_bad_project_is_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    data = bakery(**changes)
    if "segment" not in changes and "features" in changes:
        data.pop("segment")
    assert message in refused(data)


def test_a_key_that_is_also_a_time_is_refused() -> None:
    assert "key, times.input and times.truth" in refused(
        bakery(key="weighed_at", times={"input": "baked_at", "truth": "weighed_at"})
    )


def test_a_project_file_of_any_supported_kind_loads(tmp_path: Path) -> None:
    toml = tmp_path / "loaf.toml"
    toml.write_text(
        'name = "loaf"\nkey = "id"\n[times]\ninput = "a"\ntruth = "b"\n'
        '[[features]]\nname = "x"\ntype = "number"\n[target]\nname = "y"\nmin = 0\n'
        "exclusive_min = true\n"
    )
    yaml = tmp_path / "loaf.yaml"
    yaml.write_text(
        "name: loaf\nkey: id\ntimes: {input: a, truth: b}\n"
        "features: [{name: x, type: number}]\ntarget: {name: y, min: 0, exclusive_min: true}\n"
    )
    assert load_project(toml) == load_project(yaml)


def test_an_unreadable_or_malformed_file_says_which_and_why(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="cannot be read"):
        load_project(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = ")
    with pytest.raises(ProjectError, match="not valid TOML"):
        load_project(broken)


def test_the_published_json_schema_is_the_one_the_code_validates_with() -> None:
    published = REPO / "docs" / "project.schema.json"
    assert json.loads(published.read_text()) == json.loads(schema_text()), (
        "docs/project.schema.json is stale: run `tidemark projects schema > "
        "docs/project.schema.json`"
    )
    assert Project.model_json_schema()["required"] == [
        "name",
        "key",
        "times",
        "features",
        "target",
    ]


def test_every_project_file_of_the_repository_loads() -> None:
    files = sorted((REPO / "projects").glob("*.toml"))
    assert files
    for path in files:
        load_project(path)


def test_a_variant_is_the_same_stream_under_its_own_name() -> None:
    project = parse_project(bakery(topics={"prefix": "bakery", "input": "loaves"}))
    variant = project.variant("bakery-trial")
    assert variant.features == project.features
    assert (variant.name, variant.topic_prefix, variant.collection) == (
        "bakery-trial",
        "bakery-trial",
        "bakery-trial",
    )
    assert variant.topics.input == "loaves"
    assert project.variant("x-1", topic_prefix="t1", collection="c1").collection == "c1"


def test_a_projects_loop_overrides_the_stacks_settings_and_is_checked() -> None:
    from tidemark.config import Settings
    from tidemark.project.catalog import project_settings

    settings = Settings(_env_file=None)
    project = parse_project(
        bakery(
            loop={"monitor": {"window_s": 15}},
            times={"input": "a", "truth": "b", "join_window_s": 30},
        )
    )
    own = project_settings(project, settings)
    assert own.monitor.window_s == 15
    assert own.stream.join_window_s == 30
    assert own.monitor.error_threshold == settings.monitor.error_threshold
    with pytest.raises(ProjectError, match="window_s: Input should be greater than 0"):
        project_settings(parse_project(bakery(loop={"monitor": {"window_s": -1}})), settings)
    with pytest.raises(ProjectError, match="windows: Extra inputs are not permitted"):
        project_settings(parse_project(bakery(loop={"monitor": {"windows": 1}})), settings)


def test_the_bootstrap_csv_is_found_relative_to_the_project_file(tmp_path: Path) -> None:
    folder = tmp_path / "projects"
    folder.mkdir()
    path = folder / "bakery-loaf.yaml"
    path.write_text(json.dumps(bakery(bootstrap="../data/first.csv")))
    assert load_project(path).bootstrap == str(tmp_path / "data" / "first.csv")
    assert load_project(folder / ".." / "projects" / path.name).bootstrap == str(
        tmp_path / "data" / "first.csv"
    )


def test_every_example_project_names_a_bootstrap_csv_that_exists() -> None:
    for path in sorted((REPO / "projects").glob("*.toml")):
        bootstrap = load_project(path).bootstrap
        assert bootstrap is not None, path
        assert Path(bootstrap).is_file(), bootstrap
