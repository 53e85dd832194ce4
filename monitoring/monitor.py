"""The monitor: reads ``fish.scored``, judges every closed window, asks for a retrain when needed.

One loop in one process (one monitor per consumer group: a window needs every partition's
records). Each poll adds records to the tumbling windows (:mod:`monitoring.windows`); each
window that closes is judged on the fish that the production version scored: error metrics,
drift against that version's training data, then the alarm and the in-flight/cooldown gate
(:mod:`monitoring.policy`). A window that fires publishes a ``RetrainRequest``, starts the
``retrain`` deployment through Prefect and saves its Evidently reports.

Offsets are committed only up to the first record still in an open window, with the end of the
last closed window and the offsets read so far as commit metadata: a restarted monitor rebuilds
its open windows from Kafka and does not judge a closed window twice.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from monitoring import metrics
from monitoring.drift import DriftResult, features_frame
from monitoring.policy import (
    Alarm,
    Gate,
    Thresholds,
    WindowSpan,
    alarm,
    gate,
    judged_records,
    training_start,
)
from monitoring.production import Production, ProductionFollower
from monitoring.reports import ReportStore, SavedReport, WindowOutcome
from monitoring.trigger import RetrainTrigger
from monitoring.windows import Admission, ClosedWindow, ErrorStats, Resume, TumblingWindows
from streaming.records import parse
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.schemas import DeadLetter, RetrainRequest, Scored, utc_now

log = get_logger("monitor")


@dataclass(frozen=True)
class Verdict:
    """Everything the monitor concluded about one closed window."""

    window: ClosedWindow
    version: str | None
    judged: ErrorStats | None
    drift: DriftResult | None
    alarm: Alarm | None = None
    gate: Gate | None = None
    request: RetrainRequest | None = None
    flow_run_id: str | None = None
    reports: SavedReport | None = None

    @property
    def triggered(self) -> bool:
        """Whether this window started a retrain."""
        return self.flow_run_id is not None


def thresholds_of(settings: Settings) -> Thresholds:
    """The alarm thresholds that the settings define."""
    return Thresholds(
        error=settings.monitor_error_threshold,
        min_count=settings.monitor_min_window_count,
        drift_share=settings.monitor_drift_share,
        retrain_on_drift=settings.monitor_retrain_on_drift,
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
    ) -> None:
        self.settings = settings
        self.follower = follower
        self.trigger = trigger
        self.reports = reports
        self.thresholds = thresholds_of(settings)
        self._producer = producer
        self._on_verdict = on_verdict
        self.windows: TumblingWindows | None = None
        # The windows judged last, most recent first: where a retrain's data may begin.
        self._recent: deque[WindowSpan] = deque(maxlen=settings.monitor_retrain_windows)

    @classmethod
    def create(
        cls, settings: Settings, on_verdict: Callable[[Verdict], None] | None = None
    ) -> Monitor:
        """A monitor with its own producer, registry follower (started), trigger and reports."""
        producer = kafka_io.producer(settings)
        follower = ProductionFollower(settings)
        follower.start()
        return cls(
            settings,
            follower,
            RetrainTrigger(settings, producer),
            ReportStore(settings),
            producer,
            on_verdict,
        )

    def close(self) -> None:
        """Stop following the registry and close the producer."""
        self.follower.stop()
        self._producer.close()

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; Kafka errors propagate to the caller."""
        consumer = kafka_io.consumer(
            self.settings, self.settings.monitor_group_id, self.settings.topic_scored
        )
        last_record = time.monotonic()
        try:
            while not stop.is_set():
                batch = consumer.poll(
                    timeout_ms=self.settings.stream_poll_timeout_ms,
                    max_records=self.settings.stream_max_batch,
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
                    and time.monotonic() - last_record > self.settings.monitor_idle_flush_s
                ):
                    log.info("no record for a while; closing the open windows")
                    closed += windows.flush()
                for window in closed:
                    self.judge(window)
                if batch or closed:
                    self._commit(consumer, windows)
        finally:
            consumer.close()

    def _new_windows(self, consumer: KafkaConsumer) -> TumblingWindows:
        resume = _resume_point(consumer, self.settings.topic_scored)
        if resume is not None:
            log.info("resuming", closed_until=resume.closed_until.isoformat())
        return TumblingWindows(
            self.settings.monitor_window_s, self.settings.monitor_allowed_lateness_s, resume
        )

    def _admit(self, windows: TumblingWindows, record: Any) -> None:
        parsed = parse(record, Scored, self.settings.stream_max_record_bytes)
        if isinstance(parsed, DeadLetter):
            self._producer.send(
                self.settings.topic_dead_letter,
                key=parsed.source_topic.encode(),
                value=parsed.to_json(),
            ).get(timeout=self.settings.kafka_client_timeout_ms / 1000)
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
            TopicPartition(self.settings.topic_scored, partition): OffsetAndMetadata(
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
        """Judge one closed window and trigger a retrain if it fires and the gate is open."""
        metrics.observe_window(window)
        production = self.follower.refresh()
        verdict = self._assess(window, production)
        if verdict.alarm is not None:
            verdict = self._fire(verdict)
        self._recent.appendleft(WindowSpan(window.start, window.overall.count))
        self._record(verdict)
        self._log(verdict)
        if self._on_verdict is not None:
            self._on_verdict(verdict)
        return verdict

    def _assess(self, window: ClosedWindow, production: Production | None) -> Verdict:
        version = production.version if production else None
        metrics.MODEL_VERSION.set(float(version) if version and version.isdigit() else 0)
        judged = judged_records(window, version)
        stats = ErrorStats.of(judged) if judged else None
        drift = None
        if (
            production is not None
            and production.detector is not None
            and stats is not None
            and stats.count >= self.thresholds.min_count
        ):
            drift = production.detector.check(features_frame(judged), timestamp=window.end)
            metrics.DRIFT_SHARE.set(drift.share)
            metrics.DRIFT_DETECTED.set(int(drift.detected))
        fired = alarm(
            stats,
            drift.detected if drift else False,
            drift.share if drift else None,
            self.thresholds,
        )
        return Verdict(window=window, version=version, judged=stats, drift=drift, alarm=fired)

    def _fire(self, verdict: Verdict) -> Verdict:
        fired = verdict.alarm
        assert fired is not None
        try:
            opened = gate(self.trigger.last_run(), utc_now(), self.settings.monitor_cooldown_s)
        except Exception as error:  # Prefect down or no deployment: say so, judge the next one
            opened = Gate(False, f"cannot reach the retrain deployment: {error}"[:300])
        if not opened.open:
            metrics.SUPPRESSED.inc()
            return replace(verdict, gate=opened)
        request = RetrainRequest(
            reason=fired.reason,
            window_start=verdict.window.start,
            window_end=verdict.window.end,
            metric=fired.metric,
            metric_value=fired.value,
            threshold=fired.threshold,
            model_version=verdict.version,
            requested_at=utc_now(),
        )
        self.trigger.publish(request)
        window = verdict.window
        flow_run_id = self.trigger.start_run(
            request,
            training_start(
                WindowSpan(window.start, window.overall.count),
                list(self._recent),
                self.settings.monitor_retrain_windows,
            ),
        )
        metrics.RETRAINS.labels(fired.reason.value).inc()
        saved = None
        try:
            saved = self.reports.save_pages(
                label=f"v{verdict.version or 'none'} fired on {fired.reason.value}",
                window_end=verdict.window.end,
                records=judged_records(verdict.window, verdict.version),
                drift=verdict.drift,
            )
        except Exception:  # a report that fails to render must not hide the retrain
            log.exception("saving the window's reports failed")
        return replace(
            verdict, gate=opened, request=request, flow_run_id=flow_run_id, reports=saved
        )

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
            "drift_share": round(verdict.drift.share, 3) if verdict.drift else None,
        }
        if verdict.triggered:
            assert verdict.alarm is not None
            log.warning(
                "retrain triggered",
                **fields,
                reason=verdict.alarm.reason.value,
                metric=verdict.alarm.metric,
                value=round(verdict.alarm.value, 4),
                flow_run_id=verdict.flow_run_id,
                reports=[str(p) for p in verdict.reports.pages] if verdict.reports else [],
            )
        elif verdict.alarm is not None:
            log.info("alarm held back", **fields, why=verdict.gate.why if verdict.gate else None)
        else:
            log.info("window", **fields)


def outcome_of(verdict: Verdict, thresholds: Thresholds) -> WindowOutcome:
    """The verdict in the words of the workspace: fired, held-back or ok, and why."""
    fired, judged = verdict.alarm, verdict.judged
    if fired is not None and verdict.triggered:
        word = "fired"
        why = (
            f"{fired.reason.value}: {fired.metric} {fired.value:.3f} "
            f"(threshold {fired.threshold:.3f})"
        )
    elif fired is not None:
        word = "held-back"
        why = verdict.gate.why if verdict.gate else f"{fired.reason.value} alarm held back"
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
