"""Incidents: what a closed window alarms on, and whether each alarm may start a retrain.

An incident is a cause, named by an :class:`IncidentKey`:

- ``error:<segment>``: that segment's mean error (the error its project judges, on the items the
  production version scored) is above the threshold;
- ``unseen:<segment>``: the production model never saw that segment (it flagged its items as
  unknown or does not list it); it alarms on its first judged evidence, whatever the error, and
  takes the place of the segment's error incident while it lasts;
- ``drift:<segment>``: that segment's judged items drifted from its rows in the production
  version's training data (its sizes changed, not the mix of segments); an unseen segment has
  no such rows and is not tested.

A project without a segment has one, ``WHOLE`` (``error:*``, ``drift:*``). A segment is judged
only on at least ``min_count`` items; one with fewer pools its windows first
(:mod:`monitoring.evidence`), and its error and its drift are judged on the same pooled items.

An incident belongs to the production version it was measured on (its error, or its drift
against that version's training data): a promotion or a rollback closes the old version's
incidents, and their runs' cooldowns and outcomes hold nothing back on the new version. The
gate looks at the last retrain run of THIS incident only (read from Prefect, tagged with the
incident and the version it was asked on, so a monitor restart is respected):

- in flight, or created within the cooldown: held back, a repeat of the same incident;
- ended rejected (the candidate could not beat production): closed at the level the candidate
  reached on the held-out items of that segment; reopened only when the error grows beyond
  ``max(threshold, achievable * (1 + reopen_margin))``. A drift incident closed that way stays
  closed while the same version (the same drift reference) is in production;
- ended without a verdict (too little evidence, no version registered, or failed): open, and the
  next retrain goes back to the start of that run's data, so that the evidence accumulates;
- otherwise open. A new incident is never held back by another one; it waits (queued) only while
  another incident's retrain is in flight, so that two runs never judge against one champion.

An open incident then gathers evidence: its retrain starts once the windows since
its data begin hold enough labelled items of its segment for the retrain to train on and judge
(``EvidenceRules.rows_alone``), so that no run is spent on too few items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from monitoring.windows import ClosedWindow
from tidemark.config import Settings
from tidemark.judging.decisions import Decision
from tidemark.judging.scored import scored_by
from tidemark.modelling.metrics import JUDGED_METRIC, Metrics
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind
from tidemark.schemas import RetrainReason

MEAN_RELATIVE_ERROR = JUDGED_METRIC[ErrorKind.RELATIVE]
DRIFT_SHARE = "drift_share"
INCIDENT_TAG = "incident:"


class IncidentKind(StrEnum):
    """The kinds of cause an alarm names."""

    ERROR = "error"
    UNSEEN = "unseen"
    DRIFT = "drift"


@dataclass(frozen=True, slots=True, order=True)
class IncidentKey:
    """The identity of an incident: its kind, and the segment for the per-segment kinds."""

    kind: IncidentKind
    segment: str | None = None

    def __str__(self) -> str:
        return self.kind.value if self.segment is None else f"{self.kind.value}:{self.segment}"

    @property
    def tag(self) -> str:
        """The Prefect flow run tag that marks the retrain runs of this incident."""
        return f"{INCIDENT_TAG}{self}"

    @classmethod
    def from_tag(cls, tag: str) -> IncidentKey | None:
        """The incident a flow run tag names, or None for another tag."""
        if not tag.startswith(INCIDENT_TAG):
            return None
        kind, _, segment = tag.removeprefix(INCIDENT_TAG).partition(":")
        try:
            return cls(IncidentKind(kind), segment or None)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What counts as a problem, and how far a closed incident's error must grow to reopen;
    ``metric`` names the error judged (``mean_relative_error`` or ``mean_absolute_error``)."""

    error: float
    min_count: int
    drift_share: float
    retrain_on_drift: bool = True
    reopen_margin: float = 0.25
    metric: str = MEAN_RELATIVE_ERROR

    @classmethod
    def of(cls, settings: Settings, judged_by: ErrorKind) -> Thresholds:
        """The thresholds that the settings define, for a project judged by ``judged_by``."""
        monitor = settings.monitor
        return cls(
            error=monitor.error_threshold,
            min_count=monitor.min_window_count,
            drift_share=monitor.drift_share,
            retrain_on_drift=monitor.retrain_on_drift,
            reopen_margin=monitor.reopen_margin,
            metric=JUDGED_METRIC[judged_by],
        )


@dataclass(frozen=True, slots=True)
class JudgedSegment:
    """One segment judged on enough items, pooled from ``since`` over as many windows as it
    took, and whether the production version never saw it."""

    segment: str
    since: datetime
    stats: Metrics
    unseen: bool
    # Where a retrain's items of this segment begin (None: at ``since``), and why: the
    # change-point inside the evidence, or its first item judged on the production version.
    start: datetime | None = None
    start_reason: str = ""
    # The pooled items themselves: their drift is judged on them too.
    items: tuple[Scored, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Alarm:
    """An incident a window raised: the metric that fired, its value and threshold, its items,
    and where its evidence begins."""

    incident: IncidentKey
    metric: str
    value: float
    threshold: float
    count: int
    since: datetime
    # Where a retrain's items of the incident's segment begin (None: at ``since``), and why.
    start: datetime | None = None
    start_reason: str = ""

    @property
    def data_start(self) -> datetime:
        """The first moment whose items a retrain for this alarm may read (of its segment)."""
        return self.start if self.start is not None else self.since

    @property
    def reason(self) -> RetrainReason:
        """The retrain request's reason: drift for drift, error for the per-segment kinds."""
        return (
            RetrainReason.DRIFT if self.incident.kind is IncidentKind.DRIFT else RetrainReason.ERROR
        )


@dataclass(frozen=True, slots=True)
class IncidentRun:
    """A run of the retrain deployment, as Prefect reports it."""

    flow_run_id: str
    created_at: datetime
    state: str
    final: bool
    incidents: frozenset[IncidentKey] = frozenset()
    # Where the run's data began (its window_start parameter) and the version it was asked on.
    data_start: datetime | None = None
    model_version: str | None = None
    # Where it read each incident segment's items from (its segment_starts parameter).
    segment_starts: Mapping[str, datetime] = field(default_factory=dict)

    def data_start_of(self, segment: str | None) -> datetime | None:
        """Where the run read ``segment``'s items from (all items when None)."""
        if segment is not None and segment in self.segment_starts:
            return self.segment_starts[segment]
        return self.data_start


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What an ended retrain run decided, and the candidate's held-out error per segment."""

    decision: Decision
    achievable: Mapping[str, float] = field(default_factory=dict)


class GateState(StrEnum):
    """What becomes of an alarm."""

    # It starts a retrain now.
    FIRED = "fired"
    HELD = "held"
    # Open, but its segment has too few labelled items for a retrain to judge: it waits for more.
    GATHERING = "gathering"
    CLOSED = "closed"
    QUEUED = "queued"


@dataclass(frozen=True, slots=True)
class Gate:
    """Whether an incident's alarm may start a retrain now, why, and (when the incident's last
    retrain had too little evidence) where its data must begin."""

    state: GateState
    why: str
    since: datetime | None = None

    @property
    def open(self) -> bool:
        """Whether the alarm may start a retrain now."""
        return self.state is GateState.FIRED


@dataclass(frozen=True, slots=True)
class Gated:
    """An incident's alarm and what became of it."""

    alarm: Alarm
    gate: Gate


def judged_records(window: ClosedWindow, production_version: str | None) -> Sequence[Scored]:
    """The records a window is judged on: those scored by the production version.

    With no known production version (the registry is unreachable or empty) every record is.
    """
    if production_version is None:
        return window.records
    return scored_by(window.records, production_version)


def alarms(
    evidence: Sequence[JudgedSegment], drifted: Mapping[str, float], thresholds: Thresholds
) -> list[Alarm]:
    """The incidents a window raises from its segments' evidence and their drift verdicts.

    ``evidence`` holds only the segments judged now (enough items); ``drifted`` gives the drift
    share of those of them whose items drifted. An unseen segment alarms whatever its error.
    A segment's drift alarm begins where its evidence does, as its error alarm would.
    """
    raised = []
    for item in sorted(evidence, key=lambda e: e.segment):
        error = item.stats.judged
        found: list[tuple[IncidentKind, str, float, float]] = []
        if item.unseen:
            found.append((IncidentKind.UNSEEN, thresholds.metric, error, thresholds.error))
        elif error > thresholds.error:
            found.append((IncidentKind.ERROR, thresholds.metric, error, thresholds.error))
        if thresholds.retrain_on_drift and item.segment in drifted:
            share = drifted[item.segment]
            found.append((IncidentKind.DRIFT, DRIFT_SHARE, share, thresholds.drift_share))
        raised += [
            Alarm(
                IncidentKey(kind, item.segment),
                metric,
                value,
                threshold,
                item.stats.n,
                item.since,
                item.start,
                item.start_reason,
            )
            for kind, metric, value, threshold in found
        ]
    return raised


def reopen_level(achievable: float, thresholds: Thresholds) -> float:
    """The error above which an incident closed at ``achievable`` reopens."""
    return max(thresholds.error, achievable * (1 + thresholds.reopen_margin))


def gate(
    alarm: Alarm,
    last: IncidentRun | None,
    outcome: RunOutcome | None,
    in_flight: IncidentRun | None,
    *,
    now: datetime,
    cooldown_s: float,
    production_version: str | None,
    thresholds: Thresholds,
) -> Gate:
    """Whether ``alarm`` may start a retrain, given the last run of its own incident (and that
    run's outcome once it ended) and the run of the deployment in flight, if any.

    An incident belongs to the production version it was measured on: a run asked on another
    version (before a promotion or a rollback) is not this incident's, and neither its cooldown
    nor its outcome holds this alarm back.
    """
    earlier = None
    if last is not None and last.model_version != production_version:
        earlier, last, outcome = last, None, None
    if last is not None:
        held = _held_by_own_run(
            alarm, last, outcome, now, cooldown_s, production_version, thresholds
        )
        if held is not None:
            return held
    since = _accumulated_since(last, outcome, alarm.incident.segment)
    if in_flight is not None and (last is None or in_flight.flow_run_id != last.flow_run_id):
        others = ", ".join(sorted(str(i) for i in in_flight.incidents)) or "another cause"
        return Gate(
            GateState.QUEUED,
            f"waits for retrain run {in_flight.flow_run_id} ({others}, {in_flight.state}) to end",
            since,
        )
    if last is None:
        if earlier is not None:
            return Gate(
                GateState.FIRED,
                f"first retrain of this incident on v{production_version} (its last run, "
                f"{earlier.flow_run_id}, was asked on v{earlier.model_version})",
            )
        return Gate(GateState.FIRED, "first retrain of this incident")
    age = (now - last.created_at).total_seconds()
    if outcome is not None and outcome.decision is Decision.REJECTED:
        return Gate(GateState.FIRED, _reopened(alarm, last, outcome, thresholds))
    if since is not None:
        return Gate(
            GateState.FIRED,
            f"the last retrain of this incident ({last.flow_run_id}, {age:.0f} s ago) gave no "
            f"verdict ({outcome.decision.value if outcome else last.state}): "
            f"its data are read again with the windows since",
            since,
        )
    ended = outcome.decision.value if outcome else last.state
    return Gate(GateState.FIRED, f"the last retrain of this incident ended {ended} {age:.0f} s ago")


def _held_by_own_run(
    alarm: Alarm,
    last: IncidentRun,
    outcome: RunOutcome | None,
    now: datetime,
    cooldown_s: float,
    production_version: str | None,
    thresholds: Thresholds,
) -> Gate | None:
    if not last.final:
        return Gate(GateState.HELD, f"its retrain run {last.flow_run_id} is still {last.state}")
    age = (now - last.created_at).total_seconds()
    if age < cooldown_s:
        return Gate(
            GateState.HELD,
            f"cooldown: its last retrain run started {age:.0f} s ago "
            f"(cooldown {cooldown_s:.0f} s, it ended {last.state})",
        )
    if outcome is None or outcome.decision is not Decision.REJECTED:
        return None
    segment = alarm.incident.segment
    if alarm.incident.kind is IncidentKind.DRIFT:
        if production_version is not None and production_version == last.model_version:
            return Gate(
                GateState.CLOSED,
                f"closed: retrain {last.flow_run_id} could not beat v{production_version}, "
                "which is still in production (the same drift reference)",
            )
        return None
    if segment is None:
        return None
    achievable = outcome.achievable.get(segment)
    if achievable is None:
        return None
    level = reopen_level(achievable, thresholds)
    if alarm.value <= level:
        return Gate(
            GateState.CLOSED,
            f"closed: retrain {last.flow_run_id} could not beat production; {segment} reached "
            f"{achievable:.3f} at best on its held-out items, so {alarm.value:.3f} is within "
            f"reach of its floor (reopens above {level:.3f})",
        )
    return None


def _reopened(alarm: Alarm, last: IncidentRun, outcome: RunOutcome, thresholds: Thresholds) -> str:
    """Why an incident closed by a rejected retrain may fire again."""
    segment = alarm.incident.segment
    if alarm.incident.kind is IncidentKind.DRIFT or segment is None:
        return (
            f"production changed since retrain {last.flow_run_id} was rejected "
            f"(on v{last.model_version}): a new drift reference"
        )
    achievable = outcome.achievable.get(segment)
    if achievable is None:
        return f"its rejected retrain {last.flow_run_id} stated no achievable error for {segment}"
    return (
        f"reopened: {alarm.value:.3f} is above {reopen_level(achievable, thresholds):.3f}, "
        f"beyond the {achievable:.3f} its rejected retrain {last.flow_run_id} reached"
    )


def _accumulated_since(
    last: IncidentRun | None, outcome: RunOutcome | None, segment: str | None
) -> datetime | None:
    """Where the next retrain's data begin (of ``segment``, all when None) when the last one
    ended without a verdict."""
    if last is None or not last.final or last.data_start_of(segment) is None:
        return None
    if outcome is None or outcome.decision is Decision.INSUFFICIENT_EVIDENCE:
        return last.data_start_of(segment)
    return None


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """Where a closed window starts and how many items it held, in all and per segment, and
    the event time of each item of a segment (when known)."""

    start: datetime
    count: int
    by_segment: Mapping[str, int] = field(default_factory=dict)
    times: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)

    def labelled_since(self, segment: str, start: datetime) -> int:
        """This window's items of ``segment`` seen at or after ``start``."""
        if segment in self.times:
            return sum(1 for t in self.times[segment] if t >= start)
        return self.by_segment.get(segment, 0) if self.start >= start else 0


def labelled_since(segment: str, start: datetime, windows: Sequence[WindowSpan]) -> int:
    """The items of ``segment`` in the ``windows`` seen at or after ``start`` (by window
    start for a window that kept no times)."""
    return sum(w.labelled_since(segment, start) for w in windows)


def training_start(fired: WindowSpan, before: Sequence[WindowSpan], max_windows: int) -> datetime:
    """Where the data of a retrain begin: the window that fired, and the windows just before it.

    ``before`` lists the windows closed before the one that fired, most recent first. Up to
    ``max_windows - 1`` of them are added as long as together they hold no more items than the
    window that fired: the new model then knows the items from before the shift too, while the
    items after it stay at least half of the data, so that the retrain's held-out share (its
    most recent records) never takes all of them.
    """
    start, taken = fired.start, 0
    for window in before[: max_windows - 1]:
        if taken + window.count > fired.count:
            break
        taken += window.count
        start = window.start
    return start
