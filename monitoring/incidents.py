"""The monitor's incidents over time: what becomes of each alarm, and the retrains they start.

Each alarm of a judged window (:mod:`monitoring.judgement`) passes its own incident's gate
(:func:`monitoring.policy.gate`: that incident's last run, its cooldown, what it decided). The
alarms that pass start ONE run of the ``retrain`` deployment together, tagged with their
incidents (:mod:`monitoring.trigger`). Between windows this module keeps:

- the queue: alarms that wait for another incident's run to end; they start their run together
  as soon as it has (checked every ``monitor_queue_check_s``);
- the gathering: per-species alarms whose species has too few labelled fish since their data
  begin for a retrain to train and judge on (``EvidenceRules.rows_alone``); every later window
  adds its fish of that species, and the incident is queued once it has enough;
- the windows judged last: where a retrain's data begin (:func:`monitoring.policy.
  training_start`), and how many fish of a species they held.

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
from tidemark.logs import get_logger
from tidemark.schemas import RetrainRequest, utc_now

log = get_logger("monitor")

# Which alarm speaks for a retrain that answers several: the strongest evidence first.
_PRIORITY = {IncidentKind.UNSEEN: 0, IncidentKind.ERROR: 1, IncidentKind.DRIFT: 2}


@dataclass(frozen=True, slots=True)
class Pending:
    """An alarm about to start a retrain (or queued or gathering evidence to): its window,
    where its data begin and, for a per-species incident, its labelled fish since then."""

    alarm: Alarm
    window_start: datetime
    window_end: datetime
    data_start: datetime
    fish: int = 0

    def merged(self, later: Pending, fish: int | None = None) -> Pending:
        """This alarm raised again by a later window while it waited: the data of both, with
        ``fish`` labelled fish when given."""
        return Pending(
            later.alarm,
            min(self.window_start, later.window_start),
            max(self.window_end, later.window_end),
            min(self.data_start, later.data_start),
            max(self.fish, later.fish) if fish is None else fish,
        )


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
        # Incidents waiting for another incident's retrain to end.
        self.queue: dict[IncidentKey, Pending] = {}
        # Per-species incidents waiting for enough labelled fish of their species to judge on.
        self.gathering: dict[IncidentKey, Pending] = {}
        self.fish_needed = EvidenceRules.of(settings.retrain).rows_alone
        self._queue_checked = 0.0

    def answer(self, judgement: WindowJudgement, raised: Sequence[Alarm]) -> WindowJudgement:
        """What becomes of the alarms a judged window raised, and the retrain they start.

        The window's fish then count for the incidents gathering evidence that it did not
        raise, and the window for where later retrains' data begin.
        """
        window = judgement.window
        if raised:
            judgement = self._gate_and_start(judgement, raised)
        self._count_gathering(window, {a.incident for a in raised})
        self._recent.appendleft(
            WindowSpan(
                window.start,
                window.overall.count,
                {s: stats.count for s, stats in window.by_species.items()},
            )
        )
        return judgement

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
        try:
            in_flight = self.trigger.in_flight()
        except Exception as error:  # Prefect down: the queue waits for the next check
            log.warning("cannot ask for the retrain in flight", error=f"{error}"[:300])
            return None
        if in_flight is not None:
            return None
        pending = list(self.queue.values())
        production = self.follower.current
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

    def _gate_and_start(
        self, judgement: WindowJudgement, raised: Sequence[Alarm]
    ) -> WindowJudgement:
        window = judgement.window
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
        except Exception as error:  # Prefect or the registry down: say so, judge the next one
            why = f"cannot reach the retrain deployment or the registry: {error}"[:300]
            gated = [Gated(a, Gate(GateState.HELD, why)) for a in raised]
        spans = training_start(
            WindowSpan(window.start, window.overall.count),
            list(self._recent),
            self.settings.retrain_windows,
        )
        pending = [
            Pending(
                g.alarm,
                window.start,
                window.end,
                min(spans, g.alarm.since, *([g.gate.since] if g.gate.since else [])),
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
        request, flow_run_id = self._start(list(fired.values()), judgement.version)
        return replace(judgement, request=request, flow_run_id=flow_run_id)

    def _hold_for_evidence(
        self, window: ClosedWindow, gated: list[Gated], pending: list[Pending]
    ) -> tuple[list[Gated], list[Pending]]:
        """Hold open per-species alarms whose species has too few labelled fish since their data
        begin (this window's included); release those that now have enough."""
        # An incident that stopped alarming for as long as evidence is pooled starts afresh.
        oldest = window.start - self.settings.evidence_windows * timedelta(
            seconds=self.settings.window_s
        )
        self.gathering = {k: p for k, p in self.gathering.items() if p.window_end > oldest}
        kept_gated, kept_pending = [], []
        for g, p in zip(gated, pending, strict=True):
            species = g.alarm.incident.species
            if not g.gate.open or species is None:
                kept_gated.append(g)
                kept_pending.append(p)
                continue
            here = window.by_species[species].count if species in window.by_species else 0
            earlier = self.gathering.pop(g.alarm.incident, None)
            if earlier is not None:
                p = earlier.merged(p, fish=earlier.fish + here)
            else:
                # Queued before (another run was in flight): its windows count too.
                queued = self.queue.pop(g.alarm.incident, None)
                p = queued.merged(p) if queued else p
                p = replace(p, fish=labelled_since(species, p.data_start, self._recent) + here)
            if p.fish < self.fish_needed:
                self.gathering[g.alarm.incident] = p
                g = Gated(
                    g.alarm,
                    Gate(
                        GateState.GATHERING,
                        f"gathers evidence: {p.fish} of the {self.fish_needed} labelled "
                        f"{species} fish a retrain needs, since {p.data_start.isoformat()}",
                    ),
                )
            kept_gated.append(g)
            kept_pending.append(p)
        metrics.GATHERING.set(len(self.gathering))
        return kept_gated, kept_pending

    def _count_gathering(self, window: ClosedWindow, raised: set[IncidentKey]) -> None:
        """Count this window's fish for the incidents gathering evidence that it did not raise
        (their species pooled, or under the threshold for a window); queue those that now have
        enough, to start as soon as no run is in flight."""
        for key, waiting in list(self.gathering.items()):
            if key in raised or key.species is None or key.species not in window.by_species:
                continue
            waiting = replace(
                waiting,
                window_end=max(waiting.window_end, window.end),
                fish=waiting.fish + window.by_species[key.species].count,
            )
            if waiting.fish < self.fish_needed:
                self.gathering[key] = waiting
                continue
            del self.gathering[key]
            queued = self.queue.get(key)
            self.queue[key] = queued.merged(waiting) if queued else waiting
            log.info(
                "incident gathered its evidence",
                incident=str(key),
                fish=waiting.fish,
                since=waiting.data_start.isoformat(),
            )
        metrics.GATHERING.set(len(self.gathering))
        metrics.QUEUED.set(len(self.queue))
        if any(p.fish >= self.fish_needed for p in self.queue.values()):
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
        flow_run_id = self.trigger.start_run(
            request, min(p.data_start for p in pending), [p.alarm.incident for p in pending]
        )
        metrics.RETRAINS.labels(request.reason.value).inc()
        return request, flow_run_id
