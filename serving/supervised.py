"""The model server as ``make up`` runs it: ``tidemark serve``, healthy when /health answers."""

from __future__ import annotations

from pathlib import Path

from infra.local.components import Component, http_ok, venv_bin
from tidemark.config import Settings


def components(settings: Settings, state: Path) -> list[Component]:
    """One supervised ``tidemark serve`` at settings.serving_host:serving_port."""
    del state  # the server keeps no state of its own: the registry holds the models
    return [
        Component(
            name="serving",
            command=[venv_bin("tidemark"), "serve"],
            url=f"{settings.serving_url}/docs",
            check=http_ok(f"{settings.serving_url}/health"),
            service=True,
        )
    ]
