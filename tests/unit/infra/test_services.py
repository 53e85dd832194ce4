"""The platform services are command lines of the ``tidemark`` command, one row each."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.local.services import platform_services, scorers
from tidemark.cli import declared_commands
from tidemark.config import Settings


def test_each_service_runs_a_command_that_tidemark_offers(tmp_path: Path) -> None:
    services = platform_services(Settings(), tmp_path)
    commands = {s.command[1] for s in services if Path(s.command[0]).name == "tidemark"}
    assert commands == {"worker", "serve", "score", "join", "simulate", "monitor"}
    assert commands <= set(declared_commands())


def test_each_service_finds_the_projects_of_the_folder_the_stack_started_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Services run in the state folder, with the environment supervisor gives them: a relative
    # projects folder, or one inherited from the caller's environment, would not be found.
    monkeypatch.delenv("TIDEMARK_PROJECTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    projects = str((tmp_path / "projects").resolve())
    for service in platform_services(settings, tmp_path / "state"):
        if Path(service.command[0]).name != "tidemark":
            continue
        env = settings.as_env(*service.sections) | service.env
        named = env.get("TIDEMARK_PROJECTS_DIR") == projects
        given = "--projects" in service.command and projects in service.command
        assert named or given, f"{service.name} is not told where the projects are"


def test_services_have_distinct_names_and_start_after_the_infrastructure(tmp_path: Path) -> None:
    services = platform_services(Settings(), tmp_path)
    assert len({s.name for s in services}) == len(services)
    assert all(s.service for s in services)


def test_describing_the_services_touches_nothing(tmp_path: Path) -> None:
    platform_services(Settings(), tmp_path / "state")
    assert not (tmp_path / "state").exists()


def test_one_scorer_keeps_its_name_and_port() -> None:
    (scorer,) = scorers(Settings())
    assert scorer.name == "scorer"
    assert scorer.command[1:] == ["score"]
    assert scorer.url == f"http://127.0.0.1:{Settings().stream.scorer_metrics_port}/metrics"


def test_several_scorers_each_have_a_name_and_a_metrics_port() -> None:
    settings = Settings(stack_scorers=3)
    found = scorers(settings)
    assert [s.name for s in found] == ["scorer-1", "scorer-2", "scorer-3"]
    ports = [int(s.command[s.command.index("--metrics-port") + 1]) for s in found]
    assert ports == [settings.stream.scorer_metrics_port + 100 * i for i in range(3)]
    others = {settings.stream.joiner_metrics_port, settings.monitor.metrics_port}
    assert not others & set(ports)


def test_the_flows_service_deploys_to_the_pool_and_polls_it(tmp_path: Path) -> None:
    (flows,) = [s for s in platform_services(Settings(), tmp_path) if s.name == "flows"]
    assert flows.command[1:] == ["worker", "--deploy"]
    assert flows.url.endswith("/work-pools/work-pool/tidemark")


def test_processes_do_not_multiply_with_projects(tmp_path: Path) -> None:
    # The repository's projects folder holds two projects; the stack runs one scorer, one
    # joiner and one monitor for them all, each without --project (the stream runtime
    # dispatches every record to its project's handler, tidemark.stream.dispatch, or runs one
    # loop per project in the process, tidemark.stream.projects).
    repository = Path(__file__).resolve().parents[3] / "projects"
    settings = Settings(projects_dir=repository)
    assert len(list(repository.glob("*.toml"))) >= 2
    services = platform_services(settings, tmp_path)
    streaming = [s for s in services if s.command[1:2] in (["score"], ["join"], ["monitor"])]
    assert [s.name for s in streaming] == ["scorer", "joiner", "monitor"]
    assert not any("--project" in s.command for s in streaming)
