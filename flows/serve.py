"""One process serving the four flows as Prefect deployments of the same names."""

from __future__ import annotations

import os
from typing import cast

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType

from flows.promote import promote
from flows.retrain import retrain
from flows.rollback import rollback
from flows.train import train
from tidemark.config import Settings
from tidemark.orchestration import prefect_api

FLOWS = (train, retrain, promote, rollback)


def deployments() -> list[RunnerDeployment]:
    """A deployment per flow, named like it, so ``run_deployment("retrain/retrain", ...)``."""
    return [
        cast(
            RunnerDeployment,
            flow.to_deployment(
                name=flow.name,
                description=flow.description,
                # By module path: the runner starts each run in a fresh process, from any folder.
                entrypoint_type=EntrypointType.MODULE_PATH,
            ),
        )
        for flow in FLOWS
    ]


def serve_flows(settings: Settings) -> None:
    """Register the deployments and run their flow runs until interrupted."""
    # Flow runs are child processes: they read the API address from the environment.
    os.environ["PREFECT_API_URL"] = settings.prefect_api_url
    with prefect_api(settings):
        serve(*deployments())
