"""The monitor's Prometheus metrics: what a dashboard or an alert rule reads.

Segments are bounded (:mod:`monitoring.segments`): at most ``monitor.max_segments`` segment
labels, the rest under ``other``; the gauges of the last closed window hold the segments of
that window only (a segment no longer seen leaves no series behind).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress

from prometheus_client import Counter, Gauge

from monitoring.policy import Alarm, Gate
from monitoring.segments import SegmentLabels
from monitoring.windows import ClosedWindow, ErrorStats
from tidemark.judging.scored import segment_of
from tidemark.metrics_registry import service_registry

# The label of the whole window (and of a drift incident, which is about every segment).
ALL_SEGMENTS = "all"
# The labels of segments in every metric of the monitor (set by the monitor from its settings).
LABELS = SegmentLabels(50)
# The segment labels each per-segment gauge holds now.
_shown: dict[Gauge, set[str]] = {}


def bound_segments(max_segments: int) -> None:
    """Name at most ``max_segments`` segments in the metrics (the monitor's setting)."""
    global LABELS
    LABELS = SegmentLabels(max_segments)


# This service's metrics only (see tidemark.metrics_registry).
REGISTRY = service_registry()
RECORDS = Counter(
    "tidemark_monitor_records_total",
    "Scored records read from the project's scored topic, by what happened to them",
    ["outcome"],
    registry=REGISTRY,
)
WINDOWS = Counter(
    "tidemark_monitor_windows_closed_total", "Windows closed and evaluated", registry=REGISTRY
)
WINDOW_COUNT = Gauge(
    "tidemark_monitor_window_count",
    "Items in the last closed window",
    ["segment"],
    registry=REGISTRY,
)
WINDOW_MAE = Gauge(
    "tidemark_monitor_window_mae",
    "Mean absolute error of the last closed window, in the target's unit",
    ["segment"],
    registry=REGISTRY,
)
WINDOW_RMSE = Gauge(
    "tidemark_monitor_window_rmse", "Root mean squared error of the last closed window",
    ["segment"],
    registry=REGISTRY,
)  # fmt: skip
WINDOW_ERROR = Gauge(
    "tidemark_monitor_window_judged_error",
    "Mean of the error the project judges (relative: |predicted - actual| / actual, or "
    "absolute) in the last closed window",
    ["segment"],
    registry=REGISTRY,
)
WINDOW_END = Gauge(
    "tidemark_monitor_window_end_timestamp_seconds",
    "Event-time end of the last closed window",
    registry=REGISTRY,
)
DRIFT_SHARE = Gauge(
    "tidemark_monitor_drift_share",
    "Share of feature columns that drifted in the last window",
    registry=REGISTRY,
)
DRIFT_DETECTED = Gauge(
    "tidemark_monitor_drift_detected",
    "1 when the last judged window drifted, else 0",
    registry=REGISTRY,
)
RETRAINS = Counter(
    "tidemark_monitor_retrains_triggered_total",
    "Retrains the monitor triggered",
    ["reason"],
    registry=REGISTRY,
)
SUPPRESSED = Counter(
    "tidemark_monitor_alarms_suppressed_total",
    "Windows that would have fired but a retrain was in flight or cooling down",
    registry=REGISTRY,
)
ALARMS = Counter(
    "tidemark_monitor_incident_alarms_total",
    "Alarms raised per incident, by what became of them: fired (a retrain started), held (a "
    "repeat of an incident whose retrain is in flight or cooling down), closed (its retrain "
    "could not beat production and the error has not grown beyond that), queued (another "
    "incident's retrain is in flight)",
    ["kind", "segment", "outcome"],
    registry=REGISTRY,
)
INCIDENT_VALUE = Gauge(
    "tidemark_monitor_incident_value",
    "The metric of each incident's last alarm (the judged error, or drift share)",
    ["kind", "segment"],
    registry=REGISTRY,
)
QUEUED = Gauge(
    "tidemark_monitor_incidents_queued",
    "Incidents waiting for another incident's retrain to end",
    registry=REGISTRY,
)
GATHERING = Gauge(
    "tidemark_monitor_incidents_gathering",
    "Incidents waiting for enough labelled items of their segment before a retrain can judge",
    registry=REGISTRY,
)
EVIDENCE_PENDING = Gauge(
    "tidemark_monitor_evidence_pending_items",
    "Judged items of a segment pooled while it is short of evidence (0 once judged)",
    ["segment"],
    registry=REGISTRY,
)
MODEL_VERSION = Gauge(
    "tidemark_monitor_model_version",
    "Production model version the monitor judges (0: none)",
    registry=REGISTRY,
)


def observe_window(window: ClosedWindow) -> None:
    """Publish a closed window's error, overall (segment="all") and per segment label; the
    labels of segments absent from it are removed."""
    WINDOWS.inc()
    WINDOW_END.set(window.end.timestamp())
    grouped = LABELS.group(window.records, segment_of)
    stats = {
        ALL_SEGMENTS: window.overall,
        **{k: ErrorStats.of(v, window.judged_by) for k, v in grouped.items()},
    }
    _show(WINDOW_COUNT, {label: float(e.count) for label, e in stats.items()})
    _show(WINDOW_MAE, {label: e.mae for label, e in stats.items()})
    _show(WINDOW_RMSE, {label: e.rmse for label, e in stats.items()})
    _show(WINDOW_ERROR, {label: e.judged for label, e in stats.items()})


def observe_pending(pending: Mapping[str, int]) -> None:
    """Publish the judged items pooled per segment short of evidence (summed per label); the
    labels no segment is short under any more are removed."""
    summed: dict[str, float] = {}
    for segment, count in pending.items():
        label = LABELS.label(segment)
        summed[label] = summed.get(label, 0.0) + count
    _show(EVIDENCE_PENDING, summed)


def _show(gauge: Gauge, values: Mapping[str, float]) -> None:
    for gone in _shown.get(gauge, set()) - set(values):
        with suppress(KeyError):  # removed already
            gauge.remove(gone)
    for label, value in values.items():
        gauge.labels(label).set(value)
    _shown[gauge] = set(values)


def observe_alarm(alarm: Alarm, gate: Gate) -> None:
    """Count what became of an incident's alarm (segment "all" for one of no segment)."""
    segment = LABELS.label(alarm.incident.segment) if alarm.incident.segment else ALL_SEGMENTS
    ALARMS.labels(alarm.incident.kind.value, segment, gate.state.value).inc()
    INCIDENT_VALUE.labels(alarm.incident.kind.value, segment).set(alarm.value)
    if not gate.open:
        SUPPRESSED.inc()


MODEL_DECISIONS = Counter(
    "tidemark_monitor_model_decisions_total",
    "Final verdicts of challenges on live items, by what they decided: promotion, retirement "
    "(lost or no evidence; for a rollback watch, the promotion confirmed) or rollback",
    ["kind"],
    registry=REGISTRY,
)
SHADOW_ITEMS = Gauge(
    "tidemark_monitor_shadow_items",
    "Joined items both production and the challenger predicted, in the running challenge",
    registry=REGISTRY,
)
SHADOW_P_VALUE = Gauge(
    "tidemark_monitor_shadow_p_value",
    "Always-valid p-value of the running challenge's overall test (1: no evidence yet)",
    registry=REGISTRY,
)
