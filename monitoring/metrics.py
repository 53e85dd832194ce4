"""The monitor's Prometheus metrics: what a dashboard or an alert rule reads."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from monitoring.policy import Alarm, Gate
from monitoring.windows import ClosedWindow
from tidemark.metrics_registry import service_registry

ALL_SPECIES = "all"

# This service's metrics only (see tidemark.metrics_registry).
REGISTRY = service_registry()
RECORDS = Counter(
    "tidemark_monitor_records_total",
    "Scored records read from fish.scored, by what happened to them",
    ["outcome"],
    registry=REGISTRY,
)
WINDOWS = Counter(
    "tidemark_monitor_windows_closed_total", "Windows closed and evaluated", registry=REGISTRY
)
WINDOW_COUNT = Gauge(
    "tidemark_monitor_window_count",
    "Fish in the last closed window",
    ["species"],
    registry=REGISTRY,
)
WINDOW_MAE = Gauge(
    "tidemark_monitor_window_mae_kg",
    "Mean absolute error of the last closed window",
    ["species"],
    registry=REGISTRY,
)
WINDOW_RMSE = Gauge(
    "tidemark_monitor_window_rmse_kg", "Root mean squared error of the last closed window",
    ["species"],
    registry=REGISTRY,
)  # fmt: skip
WINDOW_MRE = Gauge(
    "tidemark_monitor_window_mean_relative_error",
    "Mean relative error (|predicted - actual| / actual) of the last closed window",
    ["species"],
    registry=REGISTRY,
)
WINDOW_END = Gauge(
    "tidemark_monitor_window_end_timestamp_seconds",
    "measured_at end of the last closed window",
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
    ["kind", "species", "outcome"],
    registry=REGISTRY,
)
INCIDENT_VALUE = Gauge(
    "tidemark_monitor_incident_value",
    "The metric of each incident's last alarm (mean relative error, or drift share)",
    ["kind", "species"],
    registry=REGISTRY,
)
QUEUED = Gauge(
    "tidemark_monitor_incidents_queued",
    "Incidents waiting for another incident's retrain to end",
    registry=REGISTRY,
)
GATHERING = Gauge(
    "tidemark_monitor_incidents_gathering",
    "Incidents waiting for enough labelled fish of their species before a retrain can judge",
    registry=REGISTRY,
)
EVIDENCE_PENDING = Gauge(
    "tidemark_monitor_evidence_pending_fish",
    "Judged fish of a species pooled while it is short of evidence (0 once judged)",
    ["species"],
    registry=REGISTRY,
)
MODEL_VERSION = Gauge(
    "tidemark_monitor_model_version",
    "Production model version the monitor judges (0: none)",
    registry=REGISTRY,
)


def observe_window(window: ClosedWindow) -> None:
    """Publish a closed window's error, overall (species="all") and per species."""
    WINDOWS.inc()
    WINDOW_END.set(window.end.timestamp())
    for species, stats in [(ALL_SPECIES, window.overall), *window.by_species.items()]:
        WINDOW_COUNT.labels(species).set(stats.count)
        WINDOW_MAE.labels(species).set(stats.mae)
        WINDOW_RMSE.labels(species).set(stats.rmse)
        WINDOW_MRE.labels(species).set(stats.mean_relative_error)


def observe_alarm(alarm: Alarm, gate: Gate) -> None:
    """Count what became of an incident's alarm (species "all" for drift)."""
    species = alarm.incident.species or ALL_SPECIES
    ALARMS.labels(alarm.incident.kind.value, species, gate.state.value).inc()
    INCIDENT_VALUE.labels(alarm.incident.kind.value, species).set(alarm.value)
    if not gate.open:
        SUPPRESSED.inc()


MODEL_DECISIONS = Counter(
    "tidemark_monitor_model_decisions_total",
    "Final verdicts of challenges on live fish, by what they decided: promotion, retirement "
    "(lost or no evidence; for a rollback watch, the promotion confirmed) or rollback",
    ["kind"],
    registry=REGISTRY,
)
SHADOW_FISH = Gauge(
    "tidemark_monitor_shadow_fish",
    "Joined fish both production and the challenger predicted, in the running challenge",
    registry=REGISTRY,
)
SHADOW_P_VALUE = Gauge(
    "tidemark_monitor_shadow_p_value",
    "Always-valid p-value of the running challenge's overall test (1: no evidence yet)",
    registry=REGISTRY,
)
