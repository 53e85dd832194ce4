"""The monitor: reads ``fish.scored``, judges every closed window, asks for retrains per incident.

One loop in one process (one monitor per consumer group: a window needs every partition's
records). Each poll adds records to the tumbling windows (:mod:`monitoring.windows`); each
window that closes is judged on the fish that the production version scored: per species once
enough of its fish are in (:mod:`monitoring.evidence`), drift against that version's training
data, then the incidents it raises and each incident's own gate (:mod:`monitoring.policy`).
A challenger in shadow is judged on the same window's paired errors (:mod:`monitoring.shadow`).
The alarms that pass their gates start ONE run of the ``retrain`` deployment together, tagged
with their incidents; an alarm that waits for another incident's run to end is queued and
starts its run as soon as that one has ended (checked every ``monitor_queue_check_s``).

Offsets are committed only up to the first record still in an open window, with the end of the
last closed window and the offsets read so far as commit metadata: a restarted monitor rebuilds
its open windows from Kafka and does not judge a closed window twice. The queue and the pooled
evidence of short species live in memory: after a restart an incident that persists raises its
alarm again at its next window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from monitoring import metrics
from monitoring.drift import DriftResult, features_frame
from monitoring.evidence import SpeciesEvidence
from monitoring.outcome import find_outcome
from monitoring.policy import (
    Alarm,
    Evidence,
    Gate,
    GateState,
    IncidentKey,
    IncidentKind,
    IncidentRun,
    RunOutcome,
    Thresholds,
    WindowSpan,
    alarms,
    gate,
    judged_records,
    labelled_since,
    training_start,
)
from monitoring.production import Production, ProductionFollower
from monitoring.reports import ReportStore, SavedReport, WindowOutcome
from monitoring.shadow import RestShadowRegistry, ShadowJudge, publisher, run_verdict
from monitoring.trigger import RetrainTrigger
from monitoring.windows import Admission, ClosedWindow, ErrorStats, Resume, TumblingWindows
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.judging.holdout import EvidenceRules
from tidemark.logs import get_logger
from tidemark.schemas import DeadLetter, RetrainRequest, Scored, utc_now
from tidemark.stream.records import parse

log = get_logger("monitor")

# Which alarm speaks for a retrain that answers several: the strongest evidence first.
_PRIORITY = {IncidentKind.UNSEEN: 0, IncidentKind.ERROR: 1, IncidentKind.DRIFT: 2}


@dataclass(frozen=True, slots=True)
class Gated:
    """An incident's alarm and what became of it."""

    alarm: Alarm
    gate: Gate


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


@dataclass(frozen=True)
class Verdict:
    """Everything the monitor concluded about one closed window."""

    window: ClosedWindow
    version: str | None
    judged: ErrorStats | None
    drift: DriftResult | None
    evidence: tuple[Evidence, ...] = ()
    alarms: tuple[Gated, ...] = ()
    request: RetrainRequest | None = None
    flow_run_id: str | None = None
    reports: SavedReport | None = None

    @property
    def triggered(self) -> bool:
        """Whether this window started a retrain."""
        return self.flow_run_id is not None

    def gate_of(self, incident: IncidentKey) -> Gate | None:
        """What became of ``incident``'s alarm in this window (None: it raised none)."""
        return next((g.gate for g in self.alarms if g.alarm.incident == incident), None)


def thresholds_of(settings: Settings) -> Thresholds:
    """The alarm thresholds that the settings define."""
    return Thresholds(
        error=settings.monitor.error_threshold,
        min_count=settings.monitor.min_window_count,
        drift_share=settings.monitor.drift_share,
        retrain_on_drift=settings.monitor.retrain_on_drift,
        reopen_margin=settings.monitor.reopen_margin,
    )


class Monitor:
    """Judges the windows of ``fish.scored`` and triggers retrains."""

    def __init__(
        self,
        settings: Settings,
        follower: ProductionFollower,
        trigger: RetrainTrigger,
        reports: ReportStore,
        producer: KafkaProducer,
        on_verdict: Callable[[Verdict], None] | None = None,
        outcome_of: Callable[[str], RunOutcome | None] | None = None,
        shadow: ShadowJudge | None = None,
    ) -> None:
        self.settings = settings
        # The running challenge of a version in shadow (None: no shadow evaluation).
        self.shadow = shadow
        # What an ended retrain run decided, by flow run id (the registry's tags by default).
        self.outcome_of = outcome_of or (lambda flow_run_id: find_outcome(settings, flow_run_id))
        self.follower = follower
        self.trigger = trigger
        self.reports = reports
        self.thresholds = thresholds_of(settings)
        self._producer = producer
        self._on_verdict = on_verdict
        self.windows: TumblingWindows | None = None
        # The windows judged last, most recent first: where a retrain's data may begin.
        self._recent: deque[WindowSpan] = deque(
            maxlen=max(settings.monitor.retrain_windows, settings.monitor.evidence_windows)
        )
        self.evidence = SpeciesEvidence(
            settings.monitor.min_window_count, settings.monitor.evidence_windows
        )
        # Incidents waiting for another incident's retrain to end, and when that was last asked.
        self.queue: dict[IncidentKey, Pending] = {}
        # Per-species incidents waiting for enough labelled fish of their species to judge on.
        self.gathering: dict[IncidentKey, Pending] = {}
        self.fish_needed = EvidenceRules.of(settings.retrain).rows_alone
        self._queue_checked = 0.0

    @classmethod
    def create(
        cls, settings: Settings, on_verdict: Callable[[Verdict], None] | None = None
    ) -> Monitor:
        """A monitor with its own producer, registry follower (started), trigger and reports."""
        producer = kafka_io.producer(settings.kafka)
        follower = ProductionFollower(settings)
        follower.start()
        shadow = ShadowJudge(
            settings,
            RestShadowRegistry(settings),
            publisher(settings, producer),
            lambda decision: run_verdict(settings, decision),
        )
        return cls(
            settings,
            follower,
            RetrainTrigger(settings, producer),
            ReportStore(settings),
            producer,
            on_verdict,
            shadow=shadow,
        )

    def close(self) -> None:
        """Stop following the registry and close the producer."""
        self.follower.stop()
        self._producer.close()

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; Kafka errors propagate to the caller."""
        consumer = kafka_io.consumer(
            self.settings.kafka, self.settings.monitor.group_id, self.settings.kafka.topics.scored
        )
        last_record = time.monotonic()
        try:
            while not stop.is_set():
                batch = consumer.poll(
                    timeout_ms=self.settings.stream.poll_timeout_ms,
                    max_records=self.settings.stream.max_batch,
                )
                windows = self.windows
                if windows is None:
                    if not consumer.assignment():
                        continue
                    windows = self.windows = self._new_windows(consumer)
                for records in batch.values():
                    for record in records:
                        self._admit(windows, record)
                closed = windows.close_due()
                if batch:
                    last_record = time.monotonic()
                elif (
                    windows.open_windows
                    and time.monotonic() - last_record > self.settings.monitor.idle_flush_s
                ):
                    log.info("no record for a while; closing the open windows")
                    closed += windows.flush()
                for window in closed:
                    self.judge(window)
                self.drain_queue()
                if batch or closed:
                    self._commit(consumer, windows)
        finally:
            consumer.close()

    def _new_windows(self, consumer: KafkaConsumer) -> TumblingWindows:
        resume = _resume_point(consumer, self.settings.kafka.topics.scored)
        if resume is not None:
            log.info("resuming", closed_until=resume.closed_until.isoformat())
        return TumblingWindows(
            self.settings.monitor.window_s, self.settings.monitor.allowed_lateness_s, resume
        )

    def _admit(self, windows: TumblingWindows, record: Any) -> None:
        parsed = parse(record, Scored, self.settings.stream.max_record_bytes)
        if isinstance(parsed, DeadLetter):
            self._producer.send(
                self.settings.kafka.topics.dead_letter,
                key=parsed.source_topic.encode(),
                value=parsed.to_json(),
            ).get(timeout=self.settings.kafka.client_timeout_ms / 1000)
            windows.skip(record.partition, record.offset)
            metrics.RECORDS.labels("dead_letter").inc()
            return
        admission = windows.add(parsed, record.partition, record.offset)
        metrics.RECORDS.labels(admission.value).inc()
        if admission is Admission.LATE:
            log.debug("late record", fish_id=parsed.fish_id, measured_at=parsed.measured_at)

    def _commit(self, consumer: KafkaConsumer, windows: TumblingWindows) -> None:
        closed_until = windows.closed_until.isoformat() if windows.closed_until else None
        seen = windows.seen_until()
        assigned = {tp.partition for tp in consumer.assignment()}
        offsets = {
            TopicPartition(self.settings.kafka.topics.scored, partition): OffsetAndMetadata(
                offset,
                orjson.dumps(
                    {"closed_until": closed_until, "seen_until": seen[partition]}
                ).decode(),
                -1,
            )
            for partition, offset in windows.commit_offsets().items()
            if partition in assigned
        }
        if offsets:
            consumer.commit(offsets)

    def judge(self, window: ClosedWindow) -> Verdict:
        """Judge one closed window and start a retrain for the incidents whose gates are open."""
        metrics.observe_window(window)
        production = self.follower.refresh()
        verdict, raised = self._assess(window, production)
        self._challenge(window, verdict.version)
        if raised:
            verdict = self._decide(verdict, raised)
        self._gathered(window, {a.incident for a in raised})
        self._recent.appendleft(
            WindowSpan(
                window.start,
                window.overall.count,
                {s: stats.count for s, stats in window.by_species.items()},
            )
        )
        self._record(verdict)
        self._log(verdict)
        if self._on_verdict is not None:
            self._on_verdict(verdict)
        return verdict

    def _challenge(self, window: ClosedWindow, version: str | None) -> None:
        if self.shadow is None:
            return
        try:
            self.shadow.observe(window.records, version)
        except Exception:  # the shadow evaluation must not stop the monitoring of production
            log.exception("judging the challenger on this window failed")

    def drain_queue(self, force: bool = False) -> str | None:
        """Start the retrain of the queued incidents once no run is in flight; its flow run id.

        Asks Prefect at most every ``monitor_queue_check_s`` unless ``force``.
        """
        now = time.monotonic()
        if not self.queue or (
            not force and now - self._queue_checked < self.settings.monitor.queue_check_s
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

    def _assess(
        self, window: ClosedWindow, production: Production | None
    ) -> tuple[Verdict, list[Alarm]]:
        version = production.version if production else None
        metrics.MODEL_VERSION.set(float(version) if version and version.isdigit() else 0)
        judged = judged_records(window, version)
        stats = ErrorStats.of(judged) if judged else None
        known = production.known_species if production and production.known_species else None
        evidence = self.evidence.add(window.start, judged, known, version)
        for item in evidence:
            metrics.EVIDENCE_PENDING.labels(item.species).set(0)
        for species, count in self.evidence.pending().items():
            metrics.EVIDENCE_PENDING.labels(species).set(count)
        drift = None
        detector = production.detector if production is not None else None
        # Only fish of species the version was trained on can drift from its training data.
        comparable = detector.comparable(features_frame(judged)) if detector and judged else None
        if (
            detector is not None
            and comparable is not None
            and len(comparable) >= self.thresholds.min_count
        ):
            drift = detector.check(comparable, timestamp=window.end)
            metrics.DRIFT_SHARE.set(drift.share)
            metrics.DRIFT_DETECTED.set(int(drift.detected))
        raised = alarms(
            evidence,
            drift.detected if drift else False,
            drift.share if drift else None,
            window.start,
            self.thresholds,
        )
        verdict = Verdict(
            window=window, version=version, judged=stats, drift=drift, evidence=tuple(evidence)
        )
        return verdict, raised

    def _decide(self, verdict: Verdict, raised: list[Alarm]) -> Verdict:
        window = verdict.window
        try:
            now = self.follower.refresh()
            if now is not None and now.version != verdict.version:
                # The alias moved while the window was judged: its alarms speak of a version
                # that is no longer production, and the next windows judge the new one.
                why = f"judged on v{verdict.version}, but production is now v{now.version}"
                gated = [Gated(a, Gate(GateState.HELD, why)) for a in raised]
            else:
                in_flight = self.trigger.in_flight()
                gated = [Gated(a, self._gate(a, in_flight, verdict.version)) for a in raised]
        except Exception as error:  # Prefect or the registry down: say so, judge the next one
            why = f"cannot reach the retrain deployment or the registry: {error}"[:300]
            gated = [Gated(a, Gate(GateState.HELD, why)) for a in raised]
        spans = training_start(
            WindowSpan(window.start, window.overall.count),
            list(self._recent),
            self.settings.monitor.retrain_windows,
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
        gated, pending = self._gather(window, gated, pending)
        for g, p in zip(gated, pending, strict=True):
            metrics.observe_alarm(g.alarm, g.gate)
            if g.gate.state is GateState.QUEUED:
                queued = self.queue.get(g.alarm.incident)
                self.queue[g.alarm.incident] = queued.merged(p) if queued else p
        metrics.QUEUED.set(len(self.queue))
        verdict = replace(verdict, alarms=tuple(gated))
        opened = {p.alarm.incident: p for g, p in zip(gated, pending, strict=True) if g.gate.open}
        if not opened:
            return verdict
        # No run is in flight (or these would be queued): the queued incidents go along, and
        # one that was queued before keeps the windows it waited through.
        for key, queued in self.queue.items():
            opened[key] = queued.merged(opened[key]) if key in opened else queued
        firing = list(opened.values())
        self.queue.clear()
        metrics.QUEUED.set(0)
        request, flow_run_id = self._start(firing, verdict.version)
        saved = None
        try:
            saved = self.reports.save_pages(
                label=f"v{verdict.version or 'none'} fired on {request.reason.value}",
                window_end=window.end,
                records=judged_records(window, verdict.version),
                drift=verdict.drift,
            )
        except Exception:  # a report that fails to render must not hide the retrain
            log.exception("saving the window's reports failed")
        return replace(verdict, request=request, flow_run_id=flow_run_id, reports=saved)

    def _gather(
        self, window: ClosedWindow, gated: list[Gated], pending: list[Pending]
    ) -> tuple[list[Gated], list[Pending]]:
        """Hold open per-species alarms whose species has too few labelled fish since their data
        begin (this window's included); release those that now have enough."""
        # An incident that stopped alarming for as long as evidence is pooled starts afresh.
        oldest = window.start - self.settings.monitor.evidence_windows * timedelta(
            seconds=self.settings.monitor.window_s
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

    def _gathered(self, window: ClosedWindow, raised: set[IncidentKey]) -> None:
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
            self.drain_queue(force=True)

    def _gate(self, alarm: Alarm, in_flight: IncidentRun | None, version: str | None) -> Gate:
        now = utc_now()
        last = self.trigger.last_run(alarm.incident)
        outcome = None
        if (
            last is not None
            and last.final
            and (now - last.created_at).total_seconds() >= self.settings.monitor.cooldown_s
        ):
            outcome = self.outcome_of(last.flow_run_id)
        return gate(
            alarm,
            last,
            outcome,
            in_flight,
            now=now,
            cooldown_s=self.settings.monitor.cooldown_s,
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

    def _record(self, verdict: Verdict) -> None:
        """Every judged window goes into the Evidently workspace, fired or not."""
        try:
            self.reports.record(outcome_of(verdict, self.thresholds))
        except Exception:  # the UI's record must not stop the judging
            log.exception("recording the window in the Evidently workspace failed")

    @staticmethod
    def _log(verdict: Verdict) -> None:
        window, judged = verdict.window, verdict.judged
        fields: dict[str, Any] = {
            "window_start": window.start.isoformat(),
            "window_end": window.end.isoformat(),
            "count": window.overall.count,
            "mean_relative_error": round(window.overall.mean_relative_error, 4),
            "by_species": {
                s: round(stats.mean_relative_error, 4) for s, stats in window.by_species.items()
            },
            "by_version": {v: stats.count for v, stats in window.by_version.items()},
            "production_version": verdict.version,
            "judged_count": judged.count if judged else 0,
            "judged_mean_relative_error": round(judged.mean_relative_error, 4) if judged else None,
            "judged_species": {
                e.species: round(e.stats.mean_relative_error, 4) for e in verdict.evidence
            },
            "drift_share": round(verdict.drift.share, 3) if verdict.drift else None,
        }
        log.info("window", **fields)
        for gated in verdict.alarms:
            alarm, held = gated.alarm, gated.gate
            line = {
                "incident": str(alarm.incident),
                "metric": alarm.metric,
                "value": round(alarm.value, 4),
                "threshold": alarm.threshold,
                "fish": alarm.count,
                "evidence_since": alarm.since.isoformat(),
                "window_end": window.end.isoformat(),
                "production_version": verdict.version,
                "why": held.why,
            }
            if held.open:
                log.warning(
                    "incident fired",
                    **line,
                    flow_run_id=verdict.flow_run_id,
                    reports=[str(p) for p in verdict.reports.pages] if verdict.reports else [],
                )
            else:
                log.info(f"incident {held.state.value}", **line)
        if verdict.triggered:
            assert verdict.request is not None
            log.warning(
                "retrain triggered",
                reason=verdict.request.reason.value,
                incidents=[str(g.alarm.incident) for g in verdict.alarms if g.gate.open],
                window_start=verdict.request.window_start.isoformat(),
                flow_run_id=verdict.flow_run_id,
            )


def outcome_of(verdict: Verdict, thresholds: Thresholds) -> WindowOutcome:
    """The verdict in the words of the workspace: fired, held-back or ok, and why."""
    judged = verdict.judged
    alarms = "; ".join(
        f"{g.alarm.incident} {g.alarm.metric} {g.alarm.value:.3f} "
        f"(threshold {g.alarm.threshold:.3f}): {g.gate.state.value}"
        for g in verdict.alarms
    )
    if verdict.triggered:
        word, why = "fired", alarms
    elif verdict.alarms:
        word, why = (
            "held-back",
            "; ".join(f"{g.alarm.incident}: {g.gate.why}" for g in verdict.alarms),
        )
    else:
        word = "ok"
        why = (
            f"mean relative error {judged.mean_relative_error:.3f} of {judged.count} fish "
            f"(threshold {thresholds.error:.2f}, at least {thresholds.min_count} fish)"
            if judged
            else "no fish scored by the production version"
        )
    return WindowOutcome(
        window=verdict.window,
        version=verdict.version,
        verdict=word,
        reason=why,
        drift=verdict.drift,
    )


def _resume_point(consumer: KafkaConsumer, topic: str) -> Resume | None:
    """Where the previous run stopped, from the metadata of the group's committed offsets."""
    closed: list[datetime] = []
    seen: dict[int, int] = {}
    for tp in consumer.assignment():
        if tp.topic != topic:
            continue
        committed = consumer.committed(tp, metadata=True)
        if committed is None or not committed.metadata:
            continue
        try:
            meta = orjson.loads(committed.metadata)
        except orjson.JSONDecodeError:
            continue
        if meta.get("closed_until"):
            closed.append(datetime.fromisoformat(meta["closed_until"]))
        seen[tp.partition] = int(meta.get("seen_until", 0))
    if not closed:
        return None
    return Resume(closed_until=max(closed), seen_until=seen)
