"""The monitor and the Evidently UI as ``make up`` runs them."""

from __future__ import annotations

import socket
from pathlib import Path

from infra.local.components import Check, Component, http_ok, prefect_env, venv_bin
from tidemark.config import Settings


def _port_answers(port: int) -> Check:
    def check() -> None:
        socket.create_connection(("127.0.0.1", port), timeout=2.0).close()

    return check


def components(settings: Settings, state: Path) -> list[Component]:
    """``tidemark monitor`` (checked by its metrics port) and ``evidently ui`` on its reports."""
    workspace = settings.evidently_workspace or state / "evidently"
    ui = f"http://127.0.0.1:{settings.evidently_ui_port}"
    return [
        Component(
            name="monitor",
            command=[venv_bin("tidemark"), "monitor"],
            url=f"http://127.0.0.1:{settings.monitor_metrics_port}/metrics",
            check=_port_answers(settings.monitor_metrics_port),
            # Reports go under the stack's state; Prefect is reached for the retrain deployment.
            env={**prefect_env(settings, state), "TIDEMARK_STATE_DIR": str(state)},
            prepare=lambda: workspace.mkdir(parents=True, exist_ok=True),
            service=True,
        ),
        Component(
            name="evidently",
            command=[
                venv_bin("evidently"),
                "ui",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.evidently_ui_port),
                "--workspace",
                str(workspace),
            ],
            url=ui,
            check=http_ok(ui),
            prepare=lambda: workspace.mkdir(parents=True, exist_ok=True),
            service=True,
        ),
    ]
