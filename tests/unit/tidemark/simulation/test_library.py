"""A project's scenarios: found in the folder its file names, chosen per project by a command."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.tidemark.simulation.bakery import BAKERY, SMALL
from tidemark.project.catalog import load_catalog
from tidemark.project.spec import ProjectError, load_project
from tidemark.simulation.library import (
    choose_scenarios,
    load_scenario,
    packaged_scenarios,
    scenario_folder,
)
from tidemark.simulation.scenario import ScenarioError


def _project_file(folder: Path, name: str, scenarios: str | None) -> Path:
    data = BAKERY.model_dump(mode="json", exclude_none=True) | {"name": name}
    data["topics"] = {"prefix": name}
    if scenarios is not None:
        data["scenarios"] = scenarios
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """projects/ with two bakeries; the first's scenarios in examples/bakery/scenarios/."""
    projects = tmp_path / "projects"
    projects.mkdir()
    _project_file(projects, "bakery-loaf", "../examples/bakery/scenarios")
    _project_file(projects, "bakery-roll", None)
    scenarios = tmp_path / "examples" / "bakery" / "scenarios"
    scenarios.mkdir(parents=True)
    (scenarios / "default.yaml").write_text(SMALL)
    (scenarios / "winter.yaml").write_text(SMALL.replace("name: small", "name: winter"))
    (scenarios / "notes.txt").write_text("not a scenario")
    return tmp_path


def test_the_scenarios_folder_is_relative_to_the_project_file(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree / "examples")
    project = load_project(tree / "projects" / "bakery-loaf.yaml")
    assert scenario_folder(project) == tree / "examples" / "bakery" / "scenarios"
    assert packaged_scenarios(project) == ("default", "winter")
    assert load_scenario(project).name == "small"
    assert load_scenario(project, "winter").name == "winter"
    assert packaged_scenarios(load_project(tree / "projects" / "bakery-roll.yaml")) == ()


def test_an_unknown_name_lists_the_projects_scenarios(tree: Path) -> None:
    project = load_project(tree / "projects" / "bakery-loaf.yaml")
    with pytest.raises(ScenarioError, match=r"no scenario 'summer' in .*its scenarios: default, "):
        load_scenario(project, "summer")
    roll = load_project(tree / "projects" / "bakery-roll.yaml")
    with pytest.raises(ScenarioError, match="its project file names no scenarios folder"):
        load_scenario(roll)


def test_a_file_in_the_working_directory_wins_over_a_name(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree)
    (tree / "winter").write_text(SMALL.replace("name: small", "name: my-winter"))
    project = load_project(tree / "projects" / "bakery-loaf.yaml")
    assert load_scenario(project, "winter").name == "my-winter"
    with pytest.raises(ScenarioError, match=r"cannot read scenario nowhere\.yaml"):
        load_scenario(project, "nowhere.yaml")


def test_a_command_plays_the_default_project_s_default_scenario(tree: Path) -> None:
    catalog = load_catalog(tree / "projects")
    (played,) = choose_scenarios(catalog)
    assert (played.project.name, played.name) == ("bakery-loaf", "small")
    (winter,) = choose_scenarios(catalog, scenarios=["winter"])
    assert winter.name == "winter"


def test_a_scenario_file_plays_for_the_project_it_names(tree: Path) -> None:
    catalog = load_catalog(tree / "projects")
    roll = tree / "roll.yaml"
    roll.write_text(SMALL.replace("project: bakery-loaf", "project: bakery-roll"))
    (played,) = choose_scenarios(catalog, scenarios=[roll])
    assert played.project.name == "bakery-roll"
    both = choose_scenarios(catalog, ["bakery-loaf", "bakery-roll"], [roll, "winter"])
    assert [(s.project.name, s.name) for s in both] == [
        ("bakery-loaf", "winter"),
        ("bakery-roll", "small"),
    ]


@pytest.mark.parametrize(
    ("projects", "scenarios", "message"),
    [
        ((), ["winter", "default"], "name one scenario for every project"),
        (["bakery-loaf"], ["ROLL"], "is a scenario of bakery-roll, which is not simulated"),
        ((), ["ROLL", "ROLL"], "are both scenarios of bakery-roll"),
        (["bakery-roll"], (), "its project file names no scenarios folder"),
    ],
)
def test_choices_that_cannot_be_played_are_refused(
    tree: Path, projects: list[str], scenarios: list[str], message: str
) -> None:
    roll = tree / "roll.yaml"
    roll.write_text(SMALL.replace("project: bakery-loaf", "project: bakery-roll"))
    catalog = load_catalog(tree / "projects")
    with pytest.raises(ScenarioError, match=message):
        choose_scenarios(catalog, projects, [str(roll) if s == "ROLL" else s for s in scenarios])


def test_a_scenario_of_an_unknown_project_is_refused(tree: Path) -> None:
    other = tree / "other.yaml"
    other.write_text(SMALL.replace("project: bakery-loaf", "project: brewery"))
    with pytest.raises(ProjectError, match="no project named 'brewery'"):
        choose_scenarios(load_catalog(tree / "projects"), scenarios=[other])
