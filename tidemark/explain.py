"""Why an item got its prediction: the whole chain, from its inputs to the truth and the window.

**Where an item is found.** Three places hold an item after it was scored: the predictions
topic (every prediction, joined or not), the scored topic (every prediction joined with its
truth) and the training store (the joined records, the first of each item). The explanation
reads the two topics: they hold every item, including those still waiting for their truth, and
their retention is bounded (the topics' ``retention.ms``, Kafka's default seven days), which is
what "the retention period" means here. The store is the training set: kept without bound, and
blind to the items whose truth has not come. Every record of an item carries its key, and
Kafka's default partitioner puts all records of a key in one partition, so a lookup reads one
partition of each topic, from its end backwards in chunks, and stops at the item's latest
record: a recent item costs one chunk, an unknown key the whole partition's retained records.

**What it says.** The item's inputs; the version that predicted and when, and the challenger's
prediction when one ran in shadow; that version's lineage from its registry tags (training run,
window and rows, data fingerprint, trigger, the held-out evidence per segment, the decision) and
the move that brought it to production (``tidemark.registry.history``), with links to its MLflow
page and its Prefect flow run; and once the truth is joined, the truth, the errors and the
monitor's window that judged it (tumbling windows of ``monitor.window_s`` by event time, counted
from the epoch).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from tidemark.config import Settings
from tidemark.judging.tags import FLOW_RUN_TAG, NO_METRIC, SEGMENT_SEPARATOR
from tidemark.modelling.metrics import JUDGED_METRIC
from tidemark.project.contracts import Contracts, Prediction, Scored
from tidemark.registry.history import ProductionMove, moves_of
from tidemark.registry.reader import RegistryReader
from tidemark.stream.lookup import TopicReader, latest_record

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RETENTION = (
    "the retention of the predictions and scored topics (retention.ms; Kafka's default: 7 days)"
)


class ItemStatus(StrEnum):
    """Where an item stands in the loop."""

    # Joined with its truth: judged.
    SCORED = "scored"
    # Predicted; its truth may still come within the join window.
    WAITING = "waiting_for_truth"
    # Predicted; the join window has passed in wall-clock time with no truth joined.
    NO_TRUTH = "no_truth"


class RecordPlace(BaseModel):
    """Where a record of the item was read."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime | None


class PredictedBy(BaseModel):
    """The version that predicted the item, the value and when."""

    model_name: str
    version: str
    value: float
    segment_known: bool = Field(description="False when the version never saw the segment")
    predicted_at: datetime


class ChallengerPrediction(BaseModel):
    """The challenger's prediction of the same item, when one ran in shadow."""

    version: str
    value: float
    abs_error: float | None = None
    rel_error: float | None = None


class SegmentEvidence(BaseModel):
    """The held-out evidence on one segment: items, candidate's and champion's errors."""

    n: int | None = None
    candidate_error: float | None = None
    champion_error: float | None = None


class VersionLineage(BaseModel):
    """Where a version comes from and why it serves, from its registry tags and history."""

    version: str
    run_id: str
    training_window_start: str | None = None
    training_window_end: str | None = None
    training_rows: int | None = None
    data_fingerprint: str | None = None
    trigger: dict[str, str] = Field(
        default_factory=dict, description="reason, and the metric, value and threshold that fired"
    )
    decision: str | None = None
    decision_reason: str | None = None
    heldout_n: int | None = None
    p_value: float | None = None
    candidate_error: float | None = None
    champion_error: float | None = None
    champion_version: str | None = None
    segments: dict[str, SegmentEvidence] = Field(default_factory=dict)
    shadow: dict[str, str] = Field(
        default_factory=dict, description="the live verdict, when it ran in shadow"
    )
    came: ProductionMove | None = Field(
        default=None, description="the move that brought it to production before it predicted"
    )
    mlflow_url: str
    run_url: str | None = None
    flow_run_id: str | None = None
    prefect_url: str | None = None


class TruthJudged(BaseModel):
    """The item's truth, its errors and the monitor's window that judged it."""

    value: float
    abs_error: float
    rel_error: float | None
    judged_error: float = Field(description="the error the loop judges (relative or absolute)")
    joined_at: datetime
    window_start: datetime
    window_end: datetime


class Explanation(BaseModel):
    """The whole chain of one item's prediction."""

    project: str
    key: str
    status: ItemStatus
    note: str
    inputs: dict[str, Any]
    prediction: PredictedBy
    challenger: ChallengerPrediction | None
    lineage: VersionLineage | None
    lineage_error: str | None = None
    truth: TruthJudged | None
    found: list[RecordPlace]
    retention: str = RETENTION


def window_of(at: datetime, window_s: float) -> tuple[datetime, datetime]:
    """The monitor's tumbling window (by event time, from the epoch) that holds ``at``."""
    size = timedelta(seconds=window_s)
    start = EPOCH + ((at - EPOCH) // size) * size
    return start, start + size


def lineage_of(
    version: str,
    run_id: str,
    tags: Mapping[str, str],
    moves: list[ProductionMove],
    *,
    predicted_at: datetime,
    links: Links,
) -> VersionLineage:
    """A version's lineage from its tags and the history's moves (pure)."""
    came = None
    for move in moves:
        if move.version == version and move.at <= predicted_at:
            came = move
    segments: dict[str, SegmentEvidence] = {}
    for key, value in tags.items():
        name, _, segment = key.partition(SEGMENT_SEPARATOR)
        field = _SEGMENT_TAGS.get(name)
        if not segment or field is None:
            continue
        entry = segments.setdefault(segment, SegmentEvidence())
        setattr(entry, field, _number(value) if field != "n" else _integer(value))
    flow_run = _text(tags.get(FLOW_RUN_TAG))
    return VersionLineage(
        version=version,
        run_id=run_id,
        training_window_start=_text(tags.get("training_window_start")),
        training_window_end=_text(tags.get("training_window_end")),
        training_rows=_integer(tags.get("row_count")),
        data_fingerprint=_text(tags.get("data_fingerprint")),
        trigger={
            k.removeprefix("trigger_"): v
            for k, v in sorted(tags.items())
            if k.startswith("trigger_") and v != NO_METRIC
        },
        decision=_text(tags.get("decision")),
        decision_reason=_text(tags.get("decision_reason")),
        heldout_n=_integer(tags.get("heldout_n")),
        p_value=_number(tags.get("p_value")),
        candidate_error=_judged(tags, "candidate"),
        champion_error=_judged(tags, "champion"),
        champion_version=_text(tags.get("champion_version")),
        segments=dict(sorted(segments.items())),
        shadow={
            k: v for k, v in sorted(tags.items()) if k.startswith("shadow_") and k != "shadow_state"
        },
        came=came,
        mlflow_url=links.model_version(version),
        run_url=links.run(run_id),
        flow_run_id=flow_run,
        prefect_url=links.flow_run(flow_run) if flow_run else None,
    )


_SEGMENT_TAGS = {
    "heldout_n": "n",
    **{f"candidate_{name}": "candidate_error" for name in JUDGED_METRIC.values()},
    **{f"champion_{name}": "champion_error" for name in JUDGED_METRIC.values()},
}


class Links:
    """Addresses of a version's pages in the MLflow and Prefect UIs."""

    def __init__(self, settings: Settings, experiment_id: str | None = None) -> None:
        self.tracking = settings.registry.tracking_uri.rstrip("/")
        self.model_name = settings.registry.model_name
        self.prefect = settings.orchestration.ui_url
        self.experiment_id = experiment_id

    def model_version(self, version: str) -> str:
        """The version's page in the MLflow UI."""
        return f"{self.tracking}/#/models/{self.model_name}/versions/{version}"

    def run(self, run_id: str) -> str | None:
        """The training run's page, when its experiment is known."""
        if not self.experiment_id or not run_id:
            return None
        return f"{self.tracking}/#/experiments/{self.experiment_id}/runs/{run_id}"

    def flow_run(self, flow_run_id: str) -> str:
        """The Prefect flow run's page."""
        return f"{self.prefect}/runs/flow-run/{flow_run_id}"


def assemble(
    contracts: Contracts,
    settings: Settings,
    *,
    prediction: Prediction,
    scored: Scored | None,
    lineage: VersionLineage | None,
    lineage_error: str | None,
    found: list[RecordPlace],
    now: datetime,
) -> Explanation:
    """The explanation of an item from what was found of it (pure)."""
    truth, challenger = None, None
    if prediction.challenger_version is not None and prediction.challenger_value is not None:
        challenger = ChallengerPrediction(
            version=prediction.challenger_version,
            value=prediction.challenger_value,
            abs_error=scored.challenger_abs_error if scored else None,
            rel_error=scored.challenger_rel_error if scored else None,
        )
    if scored is not None:
        start, end = window_of(scored.at, settings.monitor.window_s)
        truth = TruthJudged(
            value=scored.truth,
            abs_error=scored.abs_error,
            rel_error=scored.rel_error,
            judged_error=contracts.error(scored),
            joined_at=scored.joined_at,
            window_start=start,
            window_end=end,
        )
        status = ItemStatus.SCORED
        note = (
            f"joined with its truth at {scored.joined_at:%Y-%m-%d %H:%M:%S} UTC; judged in the "
            f"monitor's window {start:%H:%M:%S}-{end:%H:%M:%S} UTC"
        )
    else:
        window = timedelta(seconds=settings.stream.join_window_s)
        if now <= prediction.at + window:
            status = ItemStatus.WAITING
            note = (
                f"waiting for its truth: the joiner pairs it if the truth comes within "
                f"{settings.stream.join_window_s:g} s of {prediction.at:%H:%M:%S} UTC"
            )
        else:
            status = ItemStatus.NO_TRUTH
            note = (
                f"no truth joined: the join window of {settings.stream.join_window_s:g} s "
                f"after {prediction.at:%Y-%m-%d %H:%M:%S} UTC has passed"
            )
    return Explanation(
        project=contracts.project.name,
        key=prediction.key,
        status=status,
        note=note,
        inputs=dict(prediction.item.fields),
        prediction=PredictedBy(
            model_name=prediction.model_name,
            version=prediction.model_version,
            value=prediction.value,
            segment_known=prediction.segment_known,
            predicted_at=prediction.predicted_at,
        ),
        challenger=challenger,
        lineage=lineage,
        lineage_error=lineage_error,
        truth=truth,
        found=found,
    )


class ItemNotFoundError(LookupError):
    """No prediction of the key is left on the topics."""


def explain(
    settings: Settings, contracts: Contracts, key: str, *, now: datetime | None = None
) -> Explanation:
    """The explanation of the item ``key`` of a project (``settings`` are the project's).

    Raises ``ItemNotFoundError`` when no prediction of it is on the topics (never predicted,
    or older than their retention); Kafka and registry errors propagate.
    """
    topics = settings.kafka.topics
    found: list[RecordPlace] = []
    scored: Scored | None = None
    prediction: Prediction | None = None
    with TopicReader(settings) as consumer:
        record = latest_record(consumer, topics.scored, key)
        if record is not None:
            scored = contracts.decode_scored(record.value)
            prediction = scored.prediction
            found.append(_place(record))
        predicted = latest_record(consumer, topics.predictions, key)
        if predicted is not None:
            found.insert(0, _place(predicted))
            if prediction is None:
                prediction = contracts.decode_prediction(predicted.value)
    if prediction is None:
        raise ItemNotFoundError(
            f"no prediction of {key!r} on {topics.predictions} or {topics.scored}: it was never "
            f"scored, or longer ago than {RETENTION}"
        )
    lineage, problem = None, None
    try:
        lineage = read_lineage(settings, prediction)
    except Exception as error:  # the record explains itself even when the registry is down
        problem = f"{type(error).__name__}: {error}"
    return assemble(
        contracts,
        settings,
        prediction=prediction,
        scored=scored,
        lineage=lineage,
        lineage_error=problem,
        found=found,
        now=now or datetime.now(UTC),
    )


def read_lineage(settings: Settings, prediction: Prediction) -> VersionLineage | None:
    """The lineage of the version that made ``prediction``, from the registry (REST)."""
    registry = settings.registry.model_copy(update={"model_name": prediction.model_name})
    with RegistryReader(registry) as reader:
        ref = reader.version(prediction.model_version)
        if ref is None:
            return None
        run = reader.run(ref.run_id) if ref.run_id else None
        moves = moves_of(reader.model_tags() or {})
    experiment = str(run["info"]["experiment_id"]) if run else None
    links = Links(settings.model_copy(update={"registry": registry}), experiment)
    return lineage_of(
        ref.version,
        ref.run_id,
        ref.tags,
        moves,
        predicted_at=prediction.predicted_at,
        links=links,
    )


def _place(record: Any) -> RecordPlace:
    stamp = record.timestamp
    return RecordPlace(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=datetime.fromtimestamp(stamp / 1000, UTC) if stamp and stamp > 0 else None,
    )


def _judged(tags: Mapping[str, str], prefix: str) -> float | None:
    # The judged error's tag is named after its kind (tidemark.modelling.metrics).
    for kind in JUDGED_METRIC.values():
        value = _number(tags.get(f"{prefix}_{kind}"))
        if value is not None:
            return value
    return None


def _text(value: str | None) -> str | None:
    return None if value in (None, "", NO_METRIC) else value


def _number(value: str | None) -> float | None:
    try:
        return None if _text(value) is None else float(str(value))
    except ValueError:
        return None


def _integer(value: str | None) -> int | None:
    number = _number(value)
    return None if number is None else int(number)
