"""The deployment server as a supervised service of the local stack."""

from __future__ import annotations

from pathlib import Path

from infra.local.components import Component, prefect_env, venv_bin
from tidemark.config import Settings
from tidemark.orchestration import deployments_ready

# Bounds how long a triggered run waits to be picked up (Prefect's default is 10 s).
RUNNER_POLL_S = 5


def components(settings: Settings, state: Path) -> list[Component]:
    """``tidemark serve-flows``: the train, retrain, promote and rollback deployments."""

    def check() -> None:
        deployments_ready(settings)

    return [
        Component(
            name="flows",
            command=[venv_bin("tidemark"), "serve-flows"],
            url=f"{settings.prefect_ui_url}/deployments",
            check=check,
            env={
                **prefect_env(settings, state),
                "PREFECT_RUNNER_POLL_FREQUENCY": str(RUNNER_POLL_S),
            },
            service=True,
        )
    ]
