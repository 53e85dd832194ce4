"""The projects of a stack, and the settings each runs with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidemark.config import Settings
from tidemark.project.catalog import Catalog, load_catalog, topics_of
from tidemark.project.spec import ProjectError, load_project, save_project

REPO = Path(__file__).parents[4]
FISH = load_project(REPO / "projects" / "fish-weight.toml")


def test_each_project_runs_with_its_own_names() -> None:
    other = FISH.variant("fish-trial")
    catalog = Catalog((FISH, other))
    settings = Settings(_env_file=None)
    own = catalog.settings(settings, "fish-trial")
    assert own.kafka.topics.input == "fish-trial.measurements"
    assert own.kafka.topics.scored == "fish-trial.scored"
    assert (own.registry.model_name, own.registry.experiment) == ("fish-trial", "fish-trial")
    assert own.store.collection == "fish-trial"
    assert catalog.settings(settings).kafka.topics.input == "fish.measurements"
    assert catalog.settings(settings).store.collection == "training_data"


def test_an_explicit_stack_setting_moves_the_default_project_only() -> None:
    catalog = Catalog((FISH, FISH.variant("fish-trial")))
    settings = Settings(
        _env_file=None, kafka_topics_scored="t1.scored", registry_model_name="fish-t1"
    )
    default = catalog.settings(settings)
    assert (default.kafka.topics.scored, default.registry.model_name) == ("t1.scored", "fish-t1")
    assert default.kafka.topics.input == "fish.measurements"
    other = catalog.settings(settings, "fish-trial")
    assert (other.kafka.topics.scored, other.registry.model_name) == (
        "fish-trial.scored",
        "fish-trial",
    )


def test_two_projects_may_not_share_a_name_or_a_topic() -> None:
    with pytest.raises(ProjectError, match="two projects are named fish-weight"):
        Catalog((FISH, FISH))
    clash = FISH.variant("fish-two", topic_prefix="fish")
    with pytest.raises(ProjectError, match=r"both use topic fish\.measurements"):
        Catalog((FISH, clash))


def test_a_stack_runs_the_named_projects_in_order(tmp_path: Path) -> None:
    for project in (FISH, FISH.variant("fish-b")):
        saved = save_project(project, tmp_path / f"{project.name}.yaml")
        assert load_project(saved) == project
    assert load_catalog(tmp_path).names == ("fish-b", "fish-weight")
    assert load_catalog(tmp_path, ["fish-weight", "fish-b"]).default.name == "fish-weight"
    with pytest.raises(ProjectError, match="no project file absent"):
        load_catalog(tmp_path, ["absent"])
    assert topics_of(FISH)["truth"] == "fish.weights"
