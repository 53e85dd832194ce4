"""When a closed window asks for a retrain, and when that request is held back.

Two questions, kept apart so that each is plain logic:

1. ``alarm``: does this window show a problem with the production model? Only the fish that
   the production version itself scored are judged, so after a promotion the records still
   scored by the previous version (the scorers swap a few seconds later) never fire again for
   an incident that is already fixed. A window needs ``min_count`` such fish to be judged. The
   error fires when the mean relative error exceeds the threshold; drift fires when detected
   (and drift triggers are enabled). Error wins when both fire: it is the stronger evidence.
2. ``gate``: may a retrain start now? Not while the last run of the retrain deployment is still
   scheduled or running (in flight), and not within the cooldown after it was created. The last
   run is read from Prefect, so a monitor restart, or a retrain started by hand, is respected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitoring.windows import ClosedWindow, ErrorStats
from tidemark.schemas import RetrainReason, Scored

MEAN_RELATIVE_ERROR = "mean_relative_error"
DRIFT_SHARE = "drift_share"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What counts as a problem."""

    error: float
    min_count: int
    drift_share: float
    retrain_on_drift: bool = True


@dataclass(frozen=True, slots=True)
class Alarm:
    """A window's reason to retrain: the metric that fired, its value and its threshold."""

    reason: RetrainReason
    metric: str
    value: float
    threshold: float


@dataclass(frozen=True, slots=True)
class LastRun:
    """The latest run of the retrain deployment, as Prefect reports it."""

    flow_run_id: str
    created_at: datetime
    state: str
    final: bool


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """Where a closed window starts and how many fish it held."""

    start: datetime
    count: int


@dataclass(frozen=True, slots=True)
class Gate:
    """Whether a retrain may start now, and if not, why."""

    open: bool
    why: str


def judged_records(window: ClosedWindow, production_version: str | None) -> Sequence[Scored]:
    """The records a window is judged on: those scored by the production version.

    With no known production version (the registry is unreachable or empty) every record is.
    """
    if production_version is None:
        return window.records
    return window.scored_by(production_version)


def alarm(
    stats: ErrorStats | None,
    drift_detected: bool,
    drift_share: float | None,
    thresholds: Thresholds,
) -> Alarm | None:
    """The alarm that a window's judged stats and drift verdict raise, if any."""
    if stats is None or stats.count < thresholds.min_count:
        return None
    if stats.mean_relative_error > thresholds.error:
        return Alarm(
            RetrainReason.ERROR, MEAN_RELATIVE_ERROR, stats.mean_relative_error, thresholds.error
        )
    if thresholds.retrain_on_drift and drift_detected and drift_share is not None:
        return Alarm(RetrainReason.DRIFT, DRIFT_SHARE, drift_share, thresholds.drift_share)
    return None


def gate(last_run: LastRun | None, now: datetime, cooldown_s: float) -> Gate:
    """Whether a new retrain may start, given the deployment's last run."""
    if last_run is None:
        return Gate(True, "no retrain has run yet")
    if not last_run.final:
        return Gate(False, f"retrain run {last_run.flow_run_id} is still {last_run.state}")
    age = (now - last_run.created_at).total_seconds()
    if age < cooldown_s:
        return Gate(
            False,
            f"cooldown: the last retrain run started {age:.0f} s ago "
            f"(cooldown {cooldown_s:.0f} s, it ended {last_run.state})",
        )
    return Gate(True, f"the last retrain run ended {last_run.state} {age:.0f} s ago")


def training_start(fired: WindowSpan, before: Sequence[WindowSpan], max_windows: int) -> datetime:
    """Where the data of a retrain begin: the window that fired, and the windows just before it.

    ``before`` lists the windows closed before the one that fired, most recent first. Up to
    ``max_windows - 1`` of them are added as long as together they hold no more fish than the
    window that fired: the new model then knows the fish from before the shift too, while the
    fish after it stay at least half of the data, so that the retrain's held-out share (its most
    recent records) never takes all of them.
    """
    start, taken = fired.start, 0
    for window in before[: max_windows - 1]:
        if taken + window.count > fired.count:
            break
        taken += window.count
        start = window.start
    return start
