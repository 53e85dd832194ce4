"""The platform's own long-running processes, supervised beside the infrastructure.

One table: each service is a command line (a ``tidemark`` sub-command, or the Evidently UI), the
URL to show, the health check that says it serves, the settings sections it reads (its process
receives those as ``TIDEMARK_*`` variables, and no others) and the environment it needs beyond
them. The stack knows services only as commands: it imports none of
their code. Each starts once the infrastructure is healthy.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from infra.local.components import (
    Component,
    http_ok,
    makes_progress,
    prefect_env,
    supervised_state,
    venv_bin,
)
from tidemark.config import Section, Settings
from tidemark.orchestration import work_pool_ready


def _with_metrics(
    name: str,
    command: list[str],
    port: int,
    sections: tuple[Section, ...],
    env: dict[str, str] | None = None,
) -> Component:
    """A stream service, healthy while its metrics answer and say it makes progress."""
    return Component(
        name=name,
        command=command,
        url=f"http://127.0.0.1:{port}/metrics",
        check=makes_progress(port),
        service=True,
        sections=sections,
        env=env or {},
    )


def projects_env(settings: Settings) -> dict[str, str]:
    """Where a service finds the stack's projects: it runs in the state folder, so the folder
    `tidemark stack up` was started from is named absolutely."""
    env = {"TIDEMARK_PROJECTS_DIR": str(settings.projects.dir.resolve())}
    if settings.projects.names:
        env["TIDEMARK_PROJECTS_NAMES"] = settings.projects.names
    return env


def scorers(settings: Settings) -> list[Component]:
    """``scorers`` scorer processes in one consumer group, each with its own metrics port.

    One is named ``scorer``; several are ``scorer-1`` … ``scorer-N``, scorer i (from 0) serving
    its metrics on ``scorer_metrics_port + 100·i``.
    """
    tidemark = venv_bin("tidemark")
    sections: tuple[Section, ...] = ("kafka", "stream", "registry")
    base = settings.stream.scorer_metrics_port
    env = projects_env(settings)
    if settings.stack.scorers == 1:
        return [_with_metrics("scorer", [tidemark, "score"], base, sections, env)]
    found = []
    for index in range(settings.stack.scorers):
        port = base + 100 * index
        command = [tidemark, "score", "--metrics-port", str(port)]
        found.append(_with_metrics(f"scorer-{index + 1}", command, port, sections, env))
    return found


def platform_services(settings: Settings, state: Path) -> list[Component]:
    """The services that ``make up`` runs on top of the infrastructure."""
    tidemark = venv_bin("tidemark")
    prefect = prefect_env(settings, state)
    workspace = settings.monitor.evidently_workspace or state / "evidently"
    evidently_ui = f"http://127.0.0.1:{settings.stack.evidently_ui_port}"
    return [
        # Deploys the flows to the work pool, then polls it as the pool's first worker.
        Component(
            name="flows",
            command=[tidemark, "worker", "--deploy"],
            url=f"{settings.orchestration.ui_url}/work-pools/work-pool/{settings.orchestration.work_pool}",
            check=lambda: work_pool_ready(settings.orchestration),
            # A retrain reads its project's file.
            env={**prefect, **projects_env(settings)},
            service=True,
            sections=("orchestration", "registry", "store", "retrain", "shadow"),
        ),
        Component(
            name="serving",
            command=[tidemark, "serve"],
            url=f"{settings.serving.url}/docs",
            check=http_ok(f"{settings.serving.url}/health"),
            # Its workers (TIDEMARK_SERVING_WORKERS) meet their metrics there; emptied at start.
            env={
                "PROMETHEUS_MULTIPROC_DIR": str(state / "serving-metrics"),
                **projects_env(settings),
            },
            service=True,
            # Projects name the models it serves; kafka, stream and monitor say where a
            # prediction is found again and which window judged it (GET …/predictions/{key}).
            sections=(
                "serving",
                "registry",
                "projects",
                "kafka",
                "stream",
                "monitor",
                "orchestration",
            ),
        ),
        *scorers(settings),
        _with_metrics(
            "joiner",
            [tidemark, "join"],
            settings.stream.joiner_metrics_port,
            # The registry's model name: a prediction from another model is refused as forged.
            ("kafka", "stream", "store", "registry"),
            projects_env(settings),
        ),
        Component(
            name="simulator",
            command=[
                tidemark,
                "simulate",
                # The services run in the state folder: the projects are those of the folder
                # `tidemark stack up` was started from (until the settings name it).
                "--projects",
                str(Path("projects").resolve()),
                "--loop",
                "--no-progress",
                "--rate",
                str(settings.stack.simulator_rate),
                "--label-delay",
                str(settings.stack.simulator_label_delay_s),
                "--missing-weights",
                str(settings.stack.simulator_missing_truth_fraction),
            ],
            url="(no endpoint)",
            check=supervised_state,
            service=True,
            sections=("kafka",),
        ),
        replace(
            _with_metrics(
                "monitor",
                [tidemark, "monitor"],
                settings.monitor.metrics_port,
                ("kafka", "stream", "registry", "monitor", "orchestration", "retrain", "shadow"),
            ),
            # Reports go under the stack's state (of the stack section, only its folder);
            # Prefect is reached for the retrain deployment.
            env={**prefect, **projects_env(settings), "TIDEMARK_STACK_STATE_DIR": str(state)},
            prepare=lambda: workspace.mkdir(parents=True, exist_ok=True),
        ),
        Component(
            name="evidently",
            command=[
                venv_bin("evidently"),
                "ui",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.stack.evidently_ui_port),
                "--workspace",
                str(workspace),
            ],
            url=evidently_ui,
            check=http_ok(evidently_ui),
            prepare=lambda: workspace.mkdir(parents=True, exist_ok=True),
            service=True,
        ),
    ]
