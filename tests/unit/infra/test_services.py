"""The platform services are command lines of the ``tidemark`` command, one row each."""

from __future__ import annotations

from pathlib import Path

from infra.local.services import platform_services
from tidemark.cli import declared_commands
from tidemark.config import Settings


def test_each_service_runs_a_command_that_tidemark_offers(tmp_path: Path) -> None:
    services = platform_services(Settings(), tmp_path)
    commands = {s.command[1] for s in services if Path(s.command[0]).name == "tidemark"}
    assert commands == {"serve-flows", "serve", "score", "join", "simulate", "monitor"}
    assert commands <= set(declared_commands())


def test_services_have_distinct_names_and_start_after_the_infrastructure(tmp_path: Path) -> None:
    services = platform_services(Settings(), tmp_path)
    assert len({s.name for s in services}) == len(services)
    assert all(s.service for s in services)


def test_describing_the_services_touches_nothing(tmp_path: Path) -> None:
    platform_services(Settings(), tmp_path / "state")
    assert not (tmp_path / "state").exists()
