"""One process serving the flows as Prefect deployments of the same names."""

from __future__ import annotations

import os
from typing import cast

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType

from flows.challenge import shadow_verdict
from flows.promote import promote
from flows.retrain import retrain
from flows.rollback import rollback
from flows.train import train
from tidemark.config import Settings
from tidemark.orchestration import prefect_api

FLOWS = (train, retrain, promote, rollback, shadow_verdict)

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
    "shadow-verdict": ("by the monitor", "The monitor starts it when a challenger's live "
                       "evidence is final: promote it, retire it, or roll a promotion back."),
}  # fmt: skip


def deployments() -> list[RunnerDeployment]:
    """A deployment per flow, named like it, so ``run_deployment("retrain/retrain", ...)``."""
    return [
        cast(
            RunnerDeployment,
            flow.to_deployment(
                name=flow.name,
                description=_description(flow.name, flow.description),
                tags=["tidemark", f"started {TRIGGERS[flow.name][0]}"],
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
    os.environ["PREFECT_API_URL"] = settings.prefect_api_url
    with prefect_api(settings):
        serve(*deployments())
