"""The Compose stack runs commands that exist and publishes nothing beyond 127.0.0.1.

(`docker compose config` checks the file's syntax where the compose plugin exists; this checks
what it cannot: that our image's services call real `tidemark` sub-commands.)
"""

from __future__ import annotations

import re
import shlex
from importlib.metadata import version
from pathlib import Path
from typing import Any

import typer
import yaml
from typer.core import TyperGroup

from tidemark.cli import app

COMPOSE = Path(__file__).parents[3] / "infra" / "docker" / "compose.yaml"


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _resolves(words: list[str]) -> bool:
    """Whether `tidemark WORDS…` names a command of the CLI (options after it are its own)."""
    command: Any = typer.main.get_command(app)
    for word in words:
        if word.startswith("-"):
            break
        if not isinstance(command, TyperGroup):
            return False
        command = command.get_command(typer.Context(command), word)
        if command is None:
            return False
    return not isinstance(command, TyperGroup)


def test_our_services_call_existing_tidemark_commands() -> None:
    ours = {n: s for n, s in _services().items() if s.get("image") == "tidemark:local"}
    assert {"serving", "scorer", "joiner", "monitor", "flows", "simulator", "setup"} <= set(ours)
    for name, service in ours.items():
        if "command" in service:
            assert _resolves(service["command"]), f"{name}: tidemark {service['command']}"
        script = " ".join(service.get("entrypoint", []))
        for call in re.findall(r"tidemark ([^&|;]+)", script):
            assert _resolves(shlex.split(call)), f"{name}: tidemark {call}"


def test_every_published_port_is_bound_to_loopback() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_the_api_gets_an_admin_token_from_the_environment() -> None:
    # The API binds 0.0.0.0 in its container, where it refuses the default token.
    environment = _services()["serving"]["environment"]
    assert environment["TIDEMARK_SERVING_ADMIN_TOKEN"].startswith(
        "${TIDEMARK_SERVING_ADMIN_TOKEN:?"
    )


def test_the_prefect_server_image_is_the_release_our_clients_run() -> None:
    image = _services()["prefect"]["image"]
    name, _, tag = image.partition(":")
    assert name == "prefecthq/prefect"
    assert tag.split("-")[0] == version("prefect")
