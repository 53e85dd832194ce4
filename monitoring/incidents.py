"""The monitor's incidents over time: what becomes of each alarm, and the retrains they start.

Each alarm of a judged window (:mod:`monitoring.judgement`) passes its own incident's gate
(:func:`monitoring.policy.gate`: that incident's last run, its cooldown, what it decided). The
alarms that pass start ONE run of the ``retrain`` deployment together, tagged with their
incidents (:mod:`monitoring.trigger`). Between windows this module keeps:

- the queue: alarms that wait for another incident's run to end; they start their run together
  as soon as it has (checked every ``monitor_queue_check_s``). An alarm raised while Prefect (or
  the registry) cannot be asked, or whose retrain could not be started, waits there too, and
  passes its own gate once Prefect answers: an alarm is never lost to an outage;
- the gathering: alarms whose segment has too few labelled items since their data
  begin for a retrain to train and judge on (``EvidenceRules.rows_alone``); every later window
  adds its items of that segment, and the incident is queued once it has enough;
- the windows judged last: where a retrain's data begin (:func:`monitoring.policy.
  training_start`), and how many items of a segment they held.

Every incident is about one segment (its error, its drift, or that it was never seen), and about
the production version it was measured on: when production moves, the old version's incidents
still gathering or queued are closed.

A retrain reads the windows since its data begin for the segments it must not forget, but each
incident's own segment only from where its change began (the alarm's start: the change-point on
its items' errors, or its first item judged on the production version), never its items from
before the change: they follow the law (or the sizes) the alarm says no longer hold. Those starts
go to the flow as its ``segment_starts``, each with its reason, and its incidents' segments are
the ones it judges.

All of it lives in memory: after a restart an incident that persists raises its alarm again at
its next window, and its gate reads its last run back from Prefect.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitoring import metrics
from monitoring.judgement import WindowJudgement
from monitoring.policy import (
    Alarm,
    Gate,
    Gated,
    GateState,
    IncidentKey,
    IncidentKind,
    IncidentRun,
    RunOutcome,
    Thresholds,
    WindowSpan,
    gate,
    labelled_since,
    training_start,
)
from monitoring.production import ProductionFollower
from monitoring.trigger import RetrainTrigger
from monitoring.windows import ClosedWindow
from tidemark.config import Settings
from tidemark.judging.holdout import EvidenceRules
from tidemark.judging.scored import segment_of
from tidemark.logs import get_logger
from tidemark.orchestration import SegmentStart
from tidemark.schemas import RetrainRequest, utc_now

log = get_logger("monitor")

# Which alarm speaks for a retrain that answers several: the strongest evidence first.
_PRIORITY = {IncidentKind.UNSEEN: 0, IncidentKind.ERROR: 1, IncidentKind.DRIFT: 2}


@dataclass(frozen=True, slots=True)
class Pending:
    """An alarm about to start a retrain (or queued or gathering evidence to): its window,
    where its data begin and, for a per-segment incident, its labelled items since then."""

    alarm: Alarm
    window_start: datetime
    window_end: datetime
    data_start: datetime
    items: int = 0
    # Where the incident's own segment's items begin (None: an incident of no segment), and why.
    segment_start: SegmentStart | None = None

    def merged(self, later: Pending, items: int | None = None) -> Pending:
        """This alarm raised again by a later window while it waited: the data of both, with
        ``items`` labelled items when given. Its segment starts where it started first."""
        starts = [s for s in (self.segment_start, later.segment_start) if s is not None]
        return Pending(
            later.alarm,
            min(self.window_start, later.window_start),
            max(self.window_end, later.window_end),
            min(self.data_start, later.data_start),
            max(self.items, later.items) if items is None else items,
            min(starts, key=lambda s: s.start) if starts else None,
        )

    @property
    def items_since(self) -> datetime:
        """From when the incident's items count as its evidence."""
        return self.segment_start.start if self.segment_start is not None else self.data_start


class Incidents:
    """The incidents of one monitor: their gates, queue, gathering and retrain runs."""

    def __init__(
        self,
        settings: Settings,
        trigger: RetrainTrigger,
        follower: ProductionFollower,
        run_outcome: Callable[[str], RunOutcome | None],
        thresholds: Thresholds,
    ) -> None:
        self.settings = settings.monitor
        self.trigger = trigger
        self.follower = follower
        # What an ended retrain run decided, by flow run id.
        self.run_outcome = run_outcome
        self.thresholds = thresholds
        # The windows judged last, most recent first: where a retrain's data may begin.
        self._recent: deque[WindowSpan] = deque(
            maxlen=max(self.settings.retrain_windows, self.settings.evidence_windows)
        )
        # Incidents waiting for another incident's retrain to end, or for Prefect to answer.
        self.queue: dict[IncidentKey, Pending] = {}
        # Queued incidents whose gate could not be read (Prefect or the registry down, or a
        # start that failed): gated when Prefect answers again, before their retrain starts.
        self.unanswered: set[IncidentKey] = set()
        # Incidents waiting for enough labelled items of their segment to judge on.
        self.gathering: dict[IncidentKey, Pending] = {}
        self.items_needed = EvidenceRules.of(settings.retrain).rows_alone
        self._queue_checked = 0.0
        # The production version the incidents waiting here are about.
        self._version: str | None = None

    def answer(self, judgement: WindowJudgement, raised: Sequence[Alarm]) -> WindowJudgement:
        """What becomes of the alarms a judged window raised, and the retrain they start.

        The window's items then count for the incidents gathering evidence that it did not
        raise, and the window for where later retrains' data begin.
        """
        window = judgement.window
        self._follow(judgement.version)
        if raised:
            judgement = self._gate_and_start(judgement, raised, window)
        self._count_gathering(window, {a.incident for a in raised})
        times: dict[str, list[datetime]] = {}
        for record in window.records:
            times.setdefault(segment_of(record), []).append(record.at)
        self._recent.appendleft(
            WindowSpan(
                window.start,
                window.overall.n,
                _counts(window),
                {s: tuple(ts) for s, ts in times.items()},
            )
        )
        return judgement

    def _follow(self, version: str | None) -> None:
        """Incidents belong to the version they were measured on: when production moves, the
        incidents still gathering or queued about the old one are closed (they alarm again,
        as the new version's, if the new version shows them too)."""
        if version == self._version:
            return
        if self._version is not None and (self.gathering or self.queue):
            log.info(
                "production moved: the old version's waiting incidents are closed",
                old_version=self._version,
                version=version,
                incidents=sorted(str(k) for k in (*self.gathering, *self.queue)),
            )
            self.gathering.clear()
            self.queue.clear()
            self.unanswered.clear()
            metrics.GATHERING.set(0)
            metrics.QUEUED.set(0)
        self._version = version

    def drain(self, force: bool = False) -> str | None:
        """Start the retrain of the queued incidents once no run is in flight; its flow run id.

        Asks Prefect at most every ``monitor_queue_check_s`` unless ``force``.
        """
        now = time.monotonic()
        if not self.queue or (
            not force and now - self._queue_checked < self.settings.queue_check_s
        ):
            return None
        self._queue_checked = now
        production = self.follower.current
        # Production may have moved since the queued incidents' windows were judged (the run
        # they waited for promoted a version): they were measured on the old one.
        self._follow(production.version if production else None)
        if not self.queue:
            return None
        try:
            in_flight = self.trigger.in_flight()
        except Exception as error:  # Prefect down: the queue waits for the next check
            log.warning("cannot ask for the retrain in flight", error=f"{error}"[:300])
            return None
        if in_flight is not None:
            return None
        if self.unanswered:
            try:
                self._gate_unanswered()
            except Exception as error:  # Prefect down again: they wait for the next check
                log.warning("cannot gate the kept alarms", error=f"{error}"[:300])
                return None
            if not self.queue:
                return None
        pending = list(self.queue.values())
        try:
            request, flow_run_id = self._start(pending, production.version if production else None)
        except Exception as error:  # Prefect or Kafka down: the incidents stay queued
            log.warning("cannot start the queued retrain", error=f"{error}"[:300])
            return None
        self.queue.clear()
        metrics.QUEUED.set(0)
        log.warning(
            "retrain triggered for queued incidents",
            incidents=[str(p.alarm.incident) for p in pending],
            reason=request.reason.value,
            training_start=min(p.data_start for p in pending).isoformat(),
            flow_run_id=flow_run_id,
        )
        return flow_run_id

    def _gate_unanswered(self) -> None:
        """Gate the alarms kept while Prefect (or the registry) could not be asked, now that it
        answers: each incident's own gate (its last run, cooldown, outcome) holds as it would
        have, so that a run Prefect started before its answer was lost is not started again."""
        for key in sorted(self.unanswered & self.queue.keys(), key=str):
            waiting = self.queue[key]
            found = self._gate(waiting.alarm, None, self._version)
            if found.open:
                if found.since is not None and found.since < waiting.data_start:
                    self.queue[key] = replace(waiting, data_start=found.since)
                continue
            del self.queue[key]
            log.info("a kept alarm does not start a retrain", incident=str(key), why=found.why)
        self.unanswered.clear()
        metrics.QUEUED.set(len(self.queue))

    def _gate_and_start(
        self, judgement: WindowJudgement, raised: Sequence[Alarm], window: ClosedWindow
    ) -> WindowJudgement:
        try:
            now = self.follower.refresh()
            if now is not None and now.version != judgement.version:
                # The alias moved while the window was judged: its alarms speak of a version
                # that is no longer production, and the next windows judge the new one.
                why = f"judged on v{judgement.version}, but production is now v{now.version}"
                gated = [Gated(a, Gate(GateState.HELD, why)) for a in raised]
            else:
                in_flight = self.trigger.in_flight()
                gated = [Gated(a, self._gate(a, in_flight, judgement.version)) for a in raised]
        except Exception as error:  # Prefect or the registry down: the alarms wait in the queue
            why = f"kept until the retrain deployment and the registry answer: {error}"[:300]
            gated = [Gated(a, Gate(GateState.QUEUED, why)) for a in raised]
            self.unanswered |= {a.incident for a in raised}
        spans = training_start(
            WindowSpan(window.start, window.overall.n),
            list(self._recent),
            self.settings.retrain_windows,
        )
        pending = [
            Pending(
                g.alarm,
                window.start,
                window.end,
                min(spans, g.alarm.data_start, *([g.gate.since] if g.gate.since else [])),
                segment_start=segment_start(g),
            )
            for g in gated
        ]
        gated, pending = self._hold_for_evidence(window, gated, pending)
        for g, p in zip(gated, pending, strict=True):
            metrics.observe_alarm(g.alarm, g.gate)
            if g.gate.state is GateState.QUEUED:
                queued = self.queue.get(g.alarm.incident)
                self.queue[g.alarm.incident] = queued.merged(p) if queued else p
        metrics.QUEUED.set(len(self.queue))
        judgement = replace(judgement, alarms=tuple(gated))
        fired = {p.alarm.incident: p for g, p in zip(gated, pending, strict=True) if g.gate.open}
        if not fired:
            return judgement
        # No run is in flight (or these would be queued): the queued incidents go along, and
        # one that was queued before keeps the windows it waited through.
        for key, queued in self.queue.items():
            fired[key] = queued.merged(fired[key]) if key in fired else queued
        self.queue.clear()
        metrics.QUEUED.set(0)
        try:
            request, flow_run_id = self._start(list(fired.values()), judgement.version)
        except Exception as error:  # Kafka or Prefect failed under the start: keep the alarms
            log.warning("cannot start the retrain; its alarms are kept", error=f"{error}"[:300])
            self.queue.update(fired)
            self.unanswered |= set(fired)
            metrics.QUEUED.set(len(self.queue))
            return judgement
        return replace(judgement, request=request, flow_run_id=flow_run_id)

    def _hold_for_evidence(
        self, window: ClosedWindow, gated: list[Gated], pending: list[Pending]
    ) -> tuple[list[Gated], list[Pending]]:
        """Hold open per-segment alarms whose segment has too few labelled items since their
        data begin (this window's included); release those that now have enough."""
        # An incident that stopped alarming for as long as evidence is pooled starts afresh.
        oldest = window.start - self.settings.evidence_windows * timedelta(
            seconds=self.settings.window_s
        )
        self.gathering = {k: p for k, p in self.gathering.items() if p.window_end > oldest}
        kept_gated, kept_pending = [], []
        for g, p in zip(gated, pending, strict=True):
            segment = g.alarm.incident.segment
            if not g.gate.open or segment is None:
                kept_gated.append(g)
                kept_pending.append(p)
                continue
            earlier = self.gathering.pop(g.alarm.incident, None)
            if earlier is not None:
                here = _labelled(window, segment, earlier.items_since)
                p = earlier.merged(p, items=earlier.items + here)
            else:
                # Queued before (another run was in flight): its windows count too.
                queued = self.queue.pop(g.alarm.incident, None)
                p = queued.merged(p) if queued else p
                since = p.items_since
                p = replace(
                    p,
                    items=labelled_since(segment, since, self._recent)
                    + _labelled(window, segment, since),
                )
            if p.items < self.items_needed:
                self.gathering[g.alarm.incident] = p
                g = Gated(
                    g.alarm,
                    Gate(
                        GateState.GATHERING,
                        f"gathers evidence: {p.items} of the {self.items_needed} labelled "
                        f"{segment} items a retrain needs, since {p.items_since.isoformat()}",
                    ),
                )
            kept_gated.append(g)
            kept_pending.append(p)
        metrics.GATHERING.set(len(self.gathering))
        return kept_gated, kept_pending

    def _count_gathering(self, window: ClosedWindow, raised: set[IncidentKey]) -> None:
        """Count this window's items for the incidents gathering evidence that it did not raise
        (their segment pooled, or under the threshold for a window); queue those that now have
        enough, to start as soon as no run is in flight."""
        for key, waiting in list(self.gathering.items()):
            if key in raised or key.segment is None or key.segment not in window.by_segment:
                continue
            waiting = replace(
                waiting,
                window_end=max(waiting.window_end, window.end),
                items=waiting.items + window.by_segment[key.segment].n,
            )
            if waiting.items < self.items_needed:
                self.gathering[key] = waiting
                continue
            del self.gathering[key]
            queued = self.queue.get(key)
            self.queue[key] = queued.merged(waiting) if queued else waiting
            log.info(
                "incident gathered its evidence",
                incident=str(key),
                items=waiting.items,
                since=waiting.data_start.isoformat(),
            )
        metrics.GATHERING.set(len(self.gathering))
        metrics.QUEUED.set(len(self.queue))
        if any(p.items >= self.items_needed for p in self.queue.values()):
            self.drain(force=True)

    def _gate(self, alarm: Alarm, in_flight: IncidentRun | None, version: str | None) -> Gate:
        now = utc_now()
        last = self.trigger.last_run(alarm.incident)
        outcome = None
        if (
            last is not None
            and last.final
            and (now - last.created_at).total_seconds() >= self.settings.cooldown_s
        ):
            outcome = self.run_outcome(last.flow_run_id)
        return gate(
            alarm,
            last,
            outcome,
            in_flight,
            now=now,
            cooldown_s=self.settings.cooldown_s,
            production_version=version,
            thresholds=self.thresholds,
        )

    def _start(self, pending: list[Pending], version: str | None) -> tuple[RetrainRequest, str]:
        """Publish one request for the ``pending`` alarms and start their retrain run."""
        lead = min(pending, key=lambda p: (_PRIORITY[p.alarm.incident.kind], -p.alarm.value)).alarm
        request = RetrainRequest(
            reason=lead.reason,
            window_start=min(p.window_start for p in pending),
            window_end=max(p.window_end for p in pending),
            metric=lead.metric,
            metric_value=lead.value,
            threshold=lead.threshold,
            model_version=version,
            requested_at=utc_now(),
        )
        self.trigger.publish(request)
        starts: dict[str, SegmentStart] = {}
        # A segment whose incident still gathers evidence has shown where its change began: no
        # retrain, whatever alarm started it, reads that segment's items from before the change.
        for p in [*pending, *self.gathering.values()]:
            segment = p.alarm.incident.segment
            if segment is None or p.segment_start is None:
                continue
            known = starts.get(segment)
            if known is None or p.segment_start.start < known.start:
                starts[segment] = p.segment_start
        flow_run_id = self.trigger.start_run(
            request,
            min(p.data_start for p in pending),
            [p.alarm.incident for p in pending],
            starts,
        )
        metrics.RETRAINS.labels(request.reason.value).inc()
        return request, flow_run_id


def segment_start(gated: Gated) -> SegmentStart | None:
    """Where a retrain reads the items of a per-segment alarm's segment from, and why: its own
    start (the change it showed), or earlier where its last retrain ended short of evidence
    (whose data start was its own change's, so the evidence since then accumulates)."""
    alarm, gate = gated.alarm, gated.gate
    if alarm.incident.segment is None:
        return None
    own = alarm.start_reason or f"its evidence began at {alarm.since.isoformat()}"
    if gate.since is not None and gate.since < alarm.data_start:
        return SegmentStart(
            start=gate.since,
            reason=f"its last retrain had too little evidence from there; then {own}",
        )
    return SegmentStart(start=alarm.data_start, reason=own)


def _labelled(window: ClosedWindow, segment: str, since: datetime) -> int:
    """The window's items of ``segment`` seen at or after ``since``."""
    return sum(1 for r in window.records if segment_of(r) == segment and r.at >= since)


def _counts(window: ClosedWindow) -> dict[str, int]:
    return {s: stats.n for s, stats in window.by_segment.items()}
