"""Asking for a retrain: a message on ``fish.retrain-requests`` and a run of the Prefect deployment.

The deployment ``retrain/retrain`` is started through Prefect's API with the contract's
parameters; its flow runs wherever the deployments are served. The latest run of that
deployment, whoever started it, is what the in-flight and cooldown checks look at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kafka import KafkaProducer
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.deployments import run_deployment

from monitoring.policy import LastRun
from tidemark.config import Settings
from tidemark.orchestration import RETRAIN_DEPLOYMENT, prefect_api
from tidemark.schemas import RetrainRequest


def retrain_parameters(request: RetrainRequest, training_start: datetime) -> dict[str, Any]:
    """The ``retrain`` flow's parameters for a request (see the contract in the team brief).

    The flow reads the joined records measured from ``training_start`` (see
    ``monitoring.policy.training_start``) to the end of the window that fired.
    """
    start = min(request.window_start, training_start)
    return {
        "reason": request.reason.value,
        "window_start": start.isoformat(),
        "window_end": request.window_end.isoformat(),
        "last_n": None,
        "metric": request.metric,
        "metric_value": request.metric_value,
    }


class RetrainTrigger:
    """Publishes retrain requests and starts (and looks up) runs of the retrain deployment."""

    def __init__(
        self, settings: Settings, producer: KafkaProducer, deployment: str = RETRAIN_DEPLOYMENT
    ) -> None:
        self.settings = settings
        self.deployment = deployment
        self._producer = producer

    def publish(self, request: RetrainRequest) -> None:
        """Put the request on ``fish.retrain-requests`` (key: the reason) and wait for the ack."""
        self._producer.send(
            self.settings.topic_retrain_requests,
            key=request.reason.value.encode(),
            value=request.to_json(),
        ).get(timeout=self.settings.kafka_client_timeout_ms / 1000)

    def start_run(self, request: RetrainRequest, training_start: datetime) -> str:
        """Start a run of the retrain deployment now, on the records measured from
        ``training_start`` to the end of the request's window; returns its flow run id.

        The idempotency key names the window and model version, so a monitor that restarts and
        judges the same window again gets the same run instead of a second one.
        """
        key = f"monitor:{request.model_version}:{request.window_start.isoformat()}"
        with prefect_api(self.settings):
            run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync in a sync caller
                self.deployment,
                parameters=retrain_parameters(request, training_start),
                timeout=0,
                idempotency_key=key,
                tags=["tidemark-monitor", f"reason:{request.reason.value}"],
            )
        return str(run.id)

    def last_run(self) -> LastRun | None:
        """The most recently created run of the deployment, or None when it never ran.

        Raises ``prefect.exceptions.ObjectNotFound`` when the deployment does not exist.
        """
        with (
            prefect_api(self.settings),
            get_client(sync_client=True) as client,
        ):
            deployment = client.read_deployment_by_name(self.deployment)
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=1,
            )
        if not runs:
            return None
        run = runs[0]
        state = run.state
        created = run.created or run.expected_start_time
        if created is None:
            raise ValueError(f"flow run {run.id} has no creation time")
        return LastRun(
            flow_run_id=str(run.id),
            created_at=created,
            state=state.type.value if state else "UNKNOWN",
            final=bool(state and state.is_final()),
        )
