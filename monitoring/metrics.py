"""The monitor's Prometheus metrics: what a dashboard or an alert rule reads.

One monitor process judges every project of a stack, each project's monitor on the thread of its
own loop (:mod:`tidemark.stream.projects`): every series carries the ``project`` label of the
thread that sets it, which the monitor names when its loop starts (:func:`watch`), so that the
modules judging a window set their metrics as if they were alone (``metrics.QUEUED.set(n)``).

Segments are bounded (:mod:`monitoring.segments`): at most ``monitor.max_segments`` segment
labels, the rest under ``other``; the gauges of the last closed window hold the segments of
that window only (a segment no longer seen leaves no series behind); both per project.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from contextvars import ContextVar
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge
from prometheus_client.metrics import MetricWrapperBase

from monitoring.policy import Alarm, Gate
from monitoring.segments import SegmentLabels
from monitoring.windows import ClosedWindow
from tidemark.judging.scored import scored_metrics, segment_of
from tidemark.metrics_registry import service_registry

W = TypeVar("W", bound=MetricWrapperBase)
# This service's metrics only (see tidemark.metrics_registry).
REGISTRY = service_registry()
# The label of the whole window (and of a drift incident, which is about every segment).
ALL_SEGMENTS = "all"
# The project whose monitor runs on this thread (each thread starts without one: "").
_PROJECT: ContextVar[str] = ContextVar("monitored_project", default="")
# Each project's labels of segments in every metric of its monitor (bounded by its settings).
_LABELS: dict[str, SegmentLabels] = {}
# The segment labels each per-segment gauge holds now, by project.
_shown: dict[tuple[MetricWrapperBase, str], set[str]] = {}
DEFAULT_MAX_SEGMENTS = 50


def watch(project: str, max_segments: int) -> None:
    """The monitor of ``project`` runs on this thread: the series set here carry its name, and
    name at most ``max_segments`` of its segments."""
    _PROJECT.set(project)
    bound_segments(max_segments)


def bound_segments(max_segments: int) -> None:
    """Name at most ``max_segments`` segments in the metrics of this thread's project."""
    labels = _LABELS.get(_PROJECT.get())
    if labels is None or labels.max_segments != max_segments:
        _LABELS[_PROJECT.get()] = SegmentLabels(max_segments)


def segment_labels() -> SegmentLabels:
    """The segment labels of this thread's project."""
    return _LABELS.setdefault(_PROJECT.get(), SegmentLabels(DEFAULT_MAX_SEGMENTS))


class _Scoped(Generic[W]):
    """A metric whose every series starts with the ``project`` label of the setting thread."""

    def __init__(self, metric: W) -> None:
        self.metric = metric

    def labels(self, *values: str) -> W:
        """The series of these labels' values (after the project's)."""
        return self.metric.labels(_PROJECT.get(), *values)

    def remove(self, *values: str) -> None:
        """Drop the series of these labels' values (after the project's)."""
        self.metric.remove(_PROJECT.get(), *values)


class ProjectCounter(_Scoped[Counter]):
    """A counter of the monitor, by project."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> None:
        super().__init__(Counter(name, documentation, ["project", *labels], registry=REGISTRY))

    def inc(self, amount: float = 1) -> None:
        """Count ``amount`` for this thread's project (a counter without other labels)."""
        self.labels().inc(amount)


class ProjectGauge(_Scoped[Gauge]):
    """A gauge of the monitor, by project."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> None:
        super().__init__(Gauge(name, documentation, ["project", *labels], registry=REGISTRY))

    def set(self, value: float) -> None:
        """Set this thread's project's value (a gauge without other labels)."""
        self.labels().set(value)


RECORDS = ProjectCounter(
    "tidemark_monitor_records_total",
    "Scored records read from the project's scored topic, by what happened to them",
    ("outcome",),
)
WINDOWS = ProjectCounter("tidemark_monitor_windows_closed_total", "Windows closed and evaluated")
WINDOW_COUNT = ProjectGauge(
    "tidemark_monitor_window_count",
    "Items in the last closed window",
    ("segment",),
)
WINDOW_MAE = ProjectGauge(
    "tidemark_monitor_window_mae",
    "Mean absolute error of the last closed window, in the target's unit",
    ("segment",),
)
WINDOW_RMSE = ProjectGauge(
    "tidemark_monitor_window_rmse",
    "Root mean squared error of the last closed window",
    ("segment",),
)
WINDOW_ERROR = ProjectGauge(
    "tidemark_monitor_window_judged_error",
    "Mean of the error the project judges (relative: |predicted - actual| / actual, or "
    "absolute) in the last closed window",
    ("segment",),
)
WINDOW_END = ProjectGauge(
    "tidemark_monitor_window_end_timestamp_seconds",
    "Event-time end of the last closed window",
)
DRIFT_SHARE = ProjectGauge(
    "tidemark_monitor_drift_share",
    "Share of feature columns that drifted in the last window",
)
DRIFT_DETECTED = ProjectGauge(
    "tidemark_monitor_drift_detected",
    "1 when the last judged window drifted, else 0",
)
RETRAINS = ProjectCounter(
    "tidemark_monitor_retrains_triggered_total",
    "Retrains the monitor triggered",
    ("reason",),
)
SUPPRESSED = ProjectCounter(
    "tidemark_monitor_alarms_suppressed_total",
    "Windows that would have fired but a retrain was in flight or cooling down",
)
ALARMS = ProjectCounter(
    "tidemark_monitor_incident_alarms_total",
    "Alarms raised per incident, by what became of them: fired (a retrain started), held (a "
    "repeat of an incident whose retrain is in flight or cooling down), closed (its retrain "
    "could not beat production and the error has not grown beyond that), queued (another "
    "incident's retrain is in flight)",
    ("kind", "segment", "outcome"),
)
INCIDENT_VALUE = ProjectGauge(
    "tidemark_monitor_incident_value",
    "The metric of each incident's last alarm (the judged error, or drift share)",
    ("kind", "segment"),
)
QUEUED = ProjectGauge(
    "tidemark_monitor_incidents_queued",
    "Incidents waiting for another incident's retrain to end",
)
GATHERING = ProjectGauge(
    "tidemark_monitor_incidents_gathering",
    "Incidents waiting for enough labelled items of their segment before a retrain can judge",
)
EVIDENCE_PENDING = ProjectGauge(
    "tidemark_monitor_evidence_pending_items",
    "Judged items of a segment pooled while it is short of evidence (0 once judged)",
    ("segment",),
)
MODEL_VERSION = ProjectGauge(
    "tidemark_monitor_model_version",
    "Production model version the monitor judges (0: none)",
)


def observe_window(window: ClosedWindow) -> None:
    """Publish a closed window's error, overall (segment="all") and per segment label; the
    labels of segments absent from it are removed."""
    WINDOWS.inc()
    WINDOW_END.set(window.end.timestamp())
    grouped = segment_labels().group(window.records, segment_of)
    stats = {
        ALL_SEGMENTS: window.overall,
        **{k: scored_metrics(v, window.judged_by) for k, v in grouped.items()},
    }
    _show(WINDOW_COUNT, {label: float(e.n) for label, e in stats.items()})
    _show(WINDOW_MAE, {label: e.mae for label, e in stats.items()})
    _show(WINDOW_RMSE, {label: e.rmse for label, e in stats.items()})
    _show(WINDOW_ERROR, {label: e.judged for label, e in stats.items()})


def observe_pending(pending: Mapping[str, int]) -> None:
    """Publish the judged items pooled per segment short of evidence (summed per label); the
    labels no segment is short under any more are removed."""
    summed: dict[str, float] = {}
    for segment, count in pending.items():
        label = segment_labels().label(segment)
        summed[label] = summed.get(label, 0.0) + count
    _show(EVIDENCE_PENDING, summed)


def _show(gauge: ProjectGauge, values: Mapping[str, float]) -> None:
    shown = (gauge.metric, _PROJECT.get())
    for gone in _shown.get(shown, set()) - set(values):
        with suppress(KeyError):  # removed already
            gauge.remove(gone)
    for label, value in values.items():
        gauge.labels(label).set(value)
    _shown[shown] = set(values)


def observe_alarm(alarm: Alarm, gate: Gate) -> None:
    """Count what became of an incident's alarm (segment "all" for one of no segment)."""
    segment = (
        segment_labels().label(alarm.incident.segment) if alarm.incident.segment else ALL_SEGMENTS
    )
    ALARMS.labels(alarm.incident.kind.value, segment, gate.state.value).inc()
    INCIDENT_VALUE.labels(alarm.incident.kind.value, segment).set(alarm.value)
    if not gate.open:
        SUPPRESSED.inc()


MODEL_DECISIONS = ProjectCounter(
    "tidemark_monitor_model_decisions_total",
    "Final verdicts of challenges on live items, by what they decided: promotion, retirement "
    "(lost or no evidence; for a rollback watch, the promotion confirmed) or rollback",
    ("kind",),
)
SHADOW_ITEMS = ProjectGauge(
    "tidemark_monitor_shadow_items",
    "Joined items both production and the challenger predicted, in the running challenge",
)
SHADOW_P_VALUE = ProjectGauge(
    "tidemark_monitor_shadow_p_value",
    "Always-valid p-value of the running challenge's overall test (1: no evidence yet)",
)
