"""One monitor process for every project (issue 23), each project with its own loop, group and
settings; ``tidemark monitor --project NAME`` judges one project alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from monitoring import cli
from monitoring.cli import project_monitor_settings
from monitoring.monitor import Monitor
from tidemark.config import Settings, get_settings
from tidemark.project.spec import ProjectError
from tidemark.stream import projects
from tidemark.stream.projects import ProjectLoop

REPOSITORY_PROJECTS = Path(__file__).resolve().parents[3] / "projects"


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


class Watched:
    """What ``Monitor.create`` would have made: the settings and contracts it was given."""

    def __init__(self, settings: Settings, contracts: Any) -> None:
        self.group_id = settings.monitor.group_id
        self.settings = settings
        self.contracts = contracts
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[list[ProjectLoop], int]]]:
    """The loops and metrics port ``tidemark monitor`` would have run, for the repository's
    two projects."""
    runs: list[tuple[list[ProjectLoop], int]] = []

    def run_project_loops(name: str, loops: Any, port: int, registry: Any) -> None:
        assert name == "monitor"
        runs.append((list(loops), port))

    monkeypatch.setattr(Monitor, "create", classmethod(lambda c, s, k: Watched(s, k)))
    monkeypatch.setattr(projects, "run_project_loops", run_project_loops)
    monkeypatch.setenv("TIDEMARK_PROJECTS_DIR", str(REPOSITORY_PROJECTS))
    monkeypatch.delenv("TIDEMARK_PROJECTS_NAMES", raising=False)
    get_settings.cache_clear()
    yield runs
    get_settings.cache_clear()


def _monitor(*args: str) -> None:
    app = typer.Typer()
    app.command()(cli.monitor)
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def test_one_process_judges_every_project_each_in_its_own_group(
    started: list[tuple[list[ProjectLoop], int]],
) -> None:
    _monitor("--metrics-port", "9555")
    ((loops, port),) = started
    assert port == 9555
    assert [loop.project for loop in loops] == ["fish-weight", "penguin-mass"]
    settings = get_settings()
    for loop in loops:
        assert isinstance(loop.handler, Watched)
        assert loop.handler.settings == loop.settings
        assert loop.handler.contracts.project.name == loop.project
        assert loop.settings == project_monitor_settings(settings, loop.project)
        assert loop.handler.closed  # closed once the loops ended
    assert len({loop.handler.group_id for loop in loops}) == 2
    assert len({loop.settings.kafka.topics.scored for loop in loops}) == 2


def test_a_project_named_is_judged_alone(started: list[tuple[list[ProjectLoop], int]]) -> None:
    _monitor("--project", "penguin-mass")
    ((loops, port),) = started
    assert [loop.project for loop in loops] == ["penguin-mass"]
    assert port == get_settings().monitor.metrics_port
