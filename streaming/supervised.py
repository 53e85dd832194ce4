"""The streaming services as ``make up`` runs them: a scorer, the joiner, a gentle simulator."""

from __future__ import annotations

import socket
from pathlib import Path

from infra.local.components import Check, Component, venv_bin
from tidemark.config import Settings


def _port_answers(port: int) -> Check:
    def check() -> None:
        socket.create_connection(("127.0.0.1", port), timeout=2.0).close()

    return check


def _running() -> None:
    # The simulator serves nothing to probe; supervisor's own state says whether it runs.
    return None


def components(settings: Settings, state: Path) -> list[Component]:
    """Scorer and joiner (checked by their metrics ports) and the simulator, looping slowly."""
    del state
    scorer_metrics = f"http://127.0.0.1:{settings.scorer_metrics_port}/metrics"
    joiner_metrics = f"http://127.0.0.1:{settings.joiner_metrics_port}/metrics"
    return [
        Component(
            name="scorer",
            command=[venv_bin("tidemark"), "score"],
            url=scorer_metrics,
            check=_port_answers(settings.scorer_metrics_port),
            service=True,
        ),
        Component(
            name="joiner",
            command=[venv_bin("tidemark"), "join"],
            url=joiner_metrics,
            check=_port_answers(settings.joiner_metrics_port),
            service=True,
        ),
        Component(
            name="simulator",
            command=[
                venv_bin("tidemark"),
                "simulate",
                "--loop",
                "--no-progress",
                "--rate",
                str(settings.simulator_rate),
                "--label-delay",
                str(settings.simulator_label_delay_s),
                "--missing-weights",
                str(settings.simulator_missing_weight_fraction),
            ],
            url="(no endpoint)",
            check=_running,
            service=True,
        ),
    ]
