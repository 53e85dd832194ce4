"""One monitor per project (issue 23): ``tidemark monitor --project NAME``."""

from __future__ import annotations

import pytest

from monitoring.cli import project_monitor_settings
from tidemark.config import Settings
from tidemark.project.spec import ProjectError


def test_each_project_gets_its_own_topics_model_collection_and_group() -> None:
    settings = Settings(projects_names="fish-weight,penguin-mass")
    default = project_monitor_settings(settings, None)
    penguins = project_monitor_settings(settings, "penguin-mass")
    assert project_monitor_settings(settings, "fish-weight") == default
    assert default.monitor.group_id == settings.monitor.group_id
    assert penguins.monitor.group_id == f"{settings.monitor.group_id}.penguin-mass"
    assert penguins.registry.model_name == "penguin-mass"
    assert penguins.kafka.topics.scored != default.kafka.topics.scored
    assert penguins.store.collection != default.store.collection


def test_an_unknown_project_is_refused_by_name() -> None:
    with pytest.raises(ProjectError, match="no project named 'nope'"):
        project_monitor_settings(Settings(projects_names="fish-weight"), "nope")
