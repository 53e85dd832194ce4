"""One process serving the four flows as Prefect deployments of the same names."""

from __future__ import annotations

import os
from typing import cast

import httpx
from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.types.entrypoint import EntrypointType

from flows.promote import promote
from flows.retrain import retrain
from flows.rollback import rollback
from flows.train import train
from tidemark.config import Settings

FLOWS = (train, retrain, promote, rollback)

# Who starts each deployment, as its description's first line and as a tag, so that the Prefect
# UI answers "why did this run?" without the code.
TRIGGERS: dict[str, tuple[str, str]] = {
    "train": ("by make up", "`make up` (`tidemark train --if-no-production`) trains the first "
              "version when the registry has no production model; `tidemark train` by hand."),
    "retrain": ("by the monitor", "The monitor starts it when a closed window's error or drift "
                "passes its threshold (the retrain request names the window and the figures)."),
    "promote": ("by a person", "A person, with Run here and a version, or `tidemark promote "
                "VERSION` (a retrain promotes its own candidate without this deployment)."),
    "rollback": ("by a person", "A person, with Run here or `tidemark rollback`: puts the "
                 "previous production version back."),
}  # fmt: skip


def deployments() -> list[RunnerDeployment]:
    """A deployment per flow, named like it, so ``run_deployment("retrain/retrain", ...)``."""
    return [
        cast(
            RunnerDeployment,
            flow.to_deployment(
                name=flow.name,
                description=_description(flow.name, flow.description),
                # The list shows the first tag only: who starts it, rather than the project.
                tags=[f"started {TRIGGERS[flow.name][0]}", "tidemark"],
                # By module path: the runner starts each run in a fresh process, from any folder.
                entrypoint_type=EntrypointType.MODULE_PATH,
            ),
        )
        for flow in FLOWS
    ]


def _description(name: str, what: str | None) -> str:
    return f"Who starts it: {TRIGGERS[name][1]}\n\n{what or ''}".strip()


def serve_flows(settings: Settings) -> None:
    """Register the deployments and run their flow runs until interrupted."""
    # Flow runs are child processes: they read the API address from the environment.
    os.environ.setdefault("PREFECT_API_URL", settings.prefect_api_url)
    with temporary_settings(updates={PREFECT_API_URL: os.environ["PREFECT_API_URL"]}):
        serve(*deployments())


def deployments_ready(settings: Settings, timeout_s: float = 3.0) -> None:
    """Raise unless every deployment exists and a runner is polling it (status READY)."""
    api = settings.prefect_api_url.rstrip("/")
    for flow in FLOWS:
        response = httpx.get(f"{api}/deployments/name/{flow.name}/{flow.name}", timeout=timeout_s)
        response.raise_for_status()
        status = response.json().get("status")
        if status != "READY":
            raise RuntimeError(f"deployment {flow.name}/{flow.name} is {status}")
