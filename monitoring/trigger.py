"""Asking for a retrain: a message on the project's retrain-requests topic and a run of the
Prefect deployment.

The deployment ``retrain/retrain`` is started through Prefect's API with the contract's
parameters; its flow runs on a worker of the pool. Each run the monitor starts is tagged with
the registered model it retrains (``model:<project>``), the incidents it answers
(``incident:error:<segment>``, ``incident:drift:<segment>``...) and the production version it was
asked on (``model-version:3``): the gate reads the last run of one incident of its model, and
any run of its model in flight, back from Prefect, so a monitor restart is respected and the
monitors of other models sharing the server do not hold it back. A run tagged ``incident:drift``
(by a monitor from before drift was per segment) is no incident's now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from kafka import KafkaProducer
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.deployments import run_deployment

from monitoring.policy import IncidentKey, IncidentRun
from tidemark.config import Settings
from tidemark.orchestration import (
    RETRAIN_DEPLOYMENT,
    SegmentStart,
    crash_stale_runs,
    open_client,
    prefect_api,
)
from tidemark.schemas import RetrainRequest

MONITOR_TAG = "tidemark-monitor"
MODEL_VERSION_TAG = "model-version:"
# The registered model a run retrains: monitors of several models may share one Prefect server.
MODEL_TAG = "model:"
# Prefect's states of a run that has not ended yet.
IN_FLIGHT = [
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
]


def retrain_parameters(
    request: RetrainRequest,
    training_start: datetime,
    incidents: Iterable[IncidentKey] = (),
    segment_starts: Mapping[str, SegmentStart] | None = None,
    project: str | None = None,
    *,
    segmented: bool = True,
) -> dict[str, Any]:
    """The ``retrain`` flow's parameters for a request (of ``project``, the stack's default
    project when None).

    The flow reads the joined records seen from ``training_start`` (see
    ``monitoring.policy.training_start``) to the end of the window that fired, but the items of
    a segment in ``segment_starts`` only from its start (where its change began), with the
    reason. The flow judges the segments of the ``incidents`` (each must have evidence enough)
    and trains on the others without judging them; every segment of the window when no
    incident names one.

    A project without a segment (not ``segmented``) has one, ``WHOLE``: its records are read
    from its start when it has one (its change), and the flow is given no segments.
    """
    starts = dict(segment_starts or {})
    if not segmented:
        start = min(
            (s.start for s in starts.values()),
            default=min(request.window_start, training_start),
        )
        starts, incidents = {}, ()
    else:
        start = min(request.window_start, training_start, *(s.start for s in starts.values()))
    segments = sorted({i.segment for i in incidents if i.segment is not None})
    return {
        "reason": request.reason.value,
        "window_start": start.isoformat(),
        "window_end": request.window_end.isoformat(),
        "last_n": None,
        "metric": request.metric,
        "metric_value": request.metric_value,
        "threshold": request.threshold,
        "segments": segments or None,
        "segment_starts": {name: starts[name].model_dump(mode="json") for name in sorted(starts)}
        or None,
        **({"project": project} if project is not None else {}),
    }


def run_tags(
    request: RetrainRequest, incidents: Iterable[IncidentKey], model_name: str
) -> list[str]:
    """The tags of a retrain run: the monitor, the model, the reason, its incidents, the judged
    version."""
    tags = [
        MONITOR_TAG,
        f"{MODEL_TAG}{model_name}",
        f"reason:{request.reason.value}",
        *sorted({i.tag for i in incidents}),
    ]
    if request.model_version is not None:
        tags.append(f"{MODEL_VERSION_TAG}{request.model_version}")
    return tags


def retrain_key(request: RetrainRequest, incidents: Iterable[IncidentKey], model_name: str) -> str:
    """The idempotency key of a retrain run: the model, the version judged, the window and the
    incidents. A monitor that judges the same window again after a restart gets the same run;
    the model is in it because Prefect keeps one run per key across the whole deployment, and
    two projects judge windows that start at the same instant on versions of the same number."""
    named = "+".join(sorted({i.tag.removeprefix("incident:") for i in incidents}))
    window = request.window_start.isoformat()
    return f"monitor:{model_name}:{request.model_version}:{window}:{named}"


def incident_run(run: FlowRun) -> IncidentRun:
    """A Prefect flow run as the gate reads it: its state, incidents, data start and version."""
    state = run.state
    created = run.created or run.expected_start_time
    if created is None:
        raise ValueError(f"flow run {run.id} has no creation time")
    incidents = frozenset(k for t in run.tags if (k := IncidentKey.from_tag(t)) is not None)
    version = next(
        (t.removeprefix(MODEL_VERSION_TAG) for t in run.tags if t.startswith(MODEL_VERSION_TAG)),
        None,
    )
    start = run.parameters.get("window_start")
    starts = run.parameters.get("segment_starts") or {}
    return IncidentRun(
        flow_run_id=str(run.id),
        created_at=created,
        state=state.type.value if state else "UNKNOWN",
        final=bool(state and state.is_final()),
        incidents=incidents,
        data_start=datetime.fromisoformat(str(start)) if start else None,
        model_version=version,
        segment_starts={
            str(name): SegmentStart.model_validate(value).start for name, value in starts.items()
        },
    )


class RetrainTrigger:
    """Publishes retrain requests and starts (and looks up) runs of the retrain deployment."""

    def __init__(
        self,
        settings: Settings,
        producer: KafkaProducer,
        deployment: str = RETRAIN_DEPLOYMENT,
        project: str | None = None,
        *,
        segmented: bool = True,
    ) -> None:
        """A trigger of ``project``'s retrains (the stack's default project when None), whose
        items are ``segmented`` or one segment."""
        self.settings = settings
        self.deployment = deployment
        self.project = project
        self.segmented = segmented
        self._producer = producer
        # One client for every query, opened at the first (the server may not be up yet).
        self._client: SyncPrefectClient | None = None

    def close(self) -> None:
        """Close the client of the Prefect server, if one was opened."""
        if self._client is not None:
            self._client.__exit__(None, None, None)
            self._client = None

    def publish(self, request: RetrainRequest) -> None:
        """Put the request on the retrain-requests topic (key: the reason) and wait for the
        ack."""
        self._producer.send(
            self.settings.kafka.topics.retrain_requests,
            key=request.reason.value.encode(),
            value=request.to_json(),
        ).get(timeout=self.settings.kafka.client_timeout_ms / 1000)

    def start_run(
        self,
        request: RetrainRequest,
        training_start: datetime,
        incidents: Iterable[IncidentKey] = (),
        segment_starts: Mapping[str, SegmentStart] | None = None,
    ) -> str:
        """Start a run of the retrain deployment now, on the records seen from
        ``training_start`` to the end of the request's window (of a segment in
        ``segment_starts``, from its start), tagged with the ``incidents`` it answers; returns
        its flow run id.

        The idempotency key is :func:`retrain_key`'s.
        """
        key = retrain_key(request, incidents, self.settings.registry.model_name)
        tags = run_tags(request, incidents, self.settings.registry.model_name)
        with prefect_api(self.settings.orchestration):
            run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync in a sync caller
                self.deployment,
                parameters=retrain_parameters(
                    request,
                    training_start,
                    incidents,
                    segment_starts,
                    self.project,
                    segmented=self.segmented,
                ),
                timeout=0,
                idempotency_key=key,
                tags=tags,
            )
        return str(run.id)

    def last_run(self, incident: IncidentKey | None = None) -> IncidentRun | None:
        """The most recent run of the deployment (of ``incident`` when given), or None.

        Raises ``prefect.exceptions.ObjectNotFound`` when the deployment does not exist.
        """
        tags = [self._model_tag, *([incident.tag] if incident is not None else [])]
        runs = self._runs(FlowRunFilter(tags=FlowRunFilterTags(all_=tags)))
        return incident_run(runs[0]) if runs else None

    def in_flight(self) -> IncidentRun | None:
        """The most recent run of the deployment for this model that has not ended."""
        runs = self._runs(
            FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=IN_FLIGHT)),
                tags=FlowRunFilterTags(all_=[self._model_tag]),
            )
        )
        return incident_run(runs[0]) if runs else None

    @property
    def _model_tag(self) -> str:
        return f"{MODEL_TAG}{self.settings.registry.model_name}"

    def _runs(self, flow_run_filter: FlowRunFilter) -> list[FlowRun]:
        # A run whose worker died would stay in flight for ever and hold its incident: past the
        # bound it is crashed first, and the gate then sees it ended (tidemark.orchestration).
        if self._client is None:
            self._client = open_client(self.settings.orchestration)
        client = self._client
        crash_stale_runs(client, self.deployment, self.settings.retrain.max_run_s)
        with client:
            deployment = client.read_deployment_by_name(self.deployment)
            return client.read_flow_runs(
                flow_run_filter=flow_run_filter,
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=1,
            )
