"""The monitor: reads a project's scored topic, judges every closed window, asks for retrains
per incident.

Every field comes from the project: its contracts decode the scored records, its segment (or its one
implicit segment) names the incidents, its features are tested for drift, its target's error is the
one judged. A handler of the stream runtime (:mod:`tidemark.stream`), one per consumer group: a
window needs every partition's records. Each batch adds records to the tumbling windows
(:mod:`monitoring.windows`); after each round, every window that closed (or, when no record came for
``monitor_idle_flush_s``, every open one) is judged on the items the production version scored
(:mod:`monitoring.judgement`), which hands the alarms it raises to the incidents
(:mod:`monitoring.incidents`), which start the retrains: one call from the monitor to the
retrain request. A challenger in shadow is judged on the
same window's paired errors (:mod:`monitoring.shadow`), and every judged window is logged and
recorded in the Evidently workspace (:mod:`monitoring.reports`). The monitor reads the
predictions topic too, for the coverage of each window by the truth and the "truth feed silent"
incidents (:mod:`monitoring.truth`).

Offsets are committed at the windows' mark (``Commits.AT_MARK``): up to the first record still in
an open window, with the end of the last closed window and the offsets read so far as commit
metadata, from which the windows start again whenever partitions are assigned: a restarted
monitor rebuilds its open windows from Kafka and does not judge a closed window twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from kafka import KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from monitoring import metrics
from monitoring.incidents import Incidents
from monitoring.judgement import WindowJudge, WindowJudgement, log_judgement, window_outcome
from monitoring.outcome import find_outcome
from monitoring.policy import RunOutcome, Thresholds, judged_records
from monitoring.production import ProductionFollower
from monitoring.reports import ReportStore, SavedReport
from monitoring.shadow import RestShadowRegistry, ShadowJudge, publisher, run_verdict
from monitoring.trigger import RetrainTrigger
from monitoring.truth import TruthWatch
from monitoring.windows import Admission, ClosedWindow, Resume, TumblingWindows
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.project.contracts import Contracts, Prediction, Scored
from tidemark.schemas import utc_now
from tidemark.stream.handler import Commits, Handler, Output
from tidemark.stream.records import Batch, Decoding

log = get_logger("monitor")


class Monitor(Handler[Scored | Prediction, None]):
    """Judges the windows of a project's scored topic and triggers retrains."""

    commits = Commits.AT_MARK

    def __init__(
        self,
        settings: Settings,
        contracts: Contracts,
        follower: ProductionFollower,
        trigger: RetrainTrigger,
        reports: ReportStore,
        producer: KafkaProducer,
        on_judgement: Callable[[WindowJudgement], None] | None = None,
        run_outcome: Callable[[str], RunOutcome | None] | None = None,
        shadow: ShadowJudge | None = None,
    ) -> None:
        topics = settings.kafka.topics
        decoders: dict[str, Decoding[Scored | Prediction]] = {
            topics.scored: Decoding(contracts.decode_scored),
            topics.predictions: Decoding(contracts.decode_prediction),
        }
        super().__init__(settings.monitor.group_id, decoders)
        self.settings = settings
        self.contracts = contracts
        project = contracts.project
        self.judged_by = project.target.judged_by
        self.follower = follower
        self.reports = reports
        # The running challenge of a version in shadow (None: no shadow evaluation).
        self.shadow = shadow
        self.thresholds = Thresholds.of(settings, self.judged_by)
        self.incidents = Incidents(
            settings,
            trigger,
            follower,
            # What an ended retrain run decided (the registry's tags by default).
            run_outcome or partial(find_outcome, settings),
            self.thresholds,
        )
        self.window_judge = WindowJudge(
            self.thresholds,
            settings.monitor.evidence_windows,
            project,
            follower,
            self.incidents.answer,
        )
        self._producer = producer
        self._on_judgement = on_judgement
        self.windows: TumblingWindows | None = None
        self.truth = TruthWatch(settings, project)
        self._last_record = time.monotonic()

    @classmethod
    def create(
        cls,
        settings: Settings,
        contracts: Contracts,
        on_judgement: Callable[[WindowJudgement], None] | None = None,
    ) -> Monitor:
        """A monitor of the project of ``contracts`` (``settings`` are that project's) with its
        own producer, registry follower (started), trigger and reports."""
        project = contracts.project
        producer = kafka_io.producer(settings.kafka)
        follower = ProductionFollower(settings, project)
        follower.start()
        shadow = ShadowJudge(
            settings,
            RestShadowRegistry(settings),
            publisher(settings, producer),
            lambda decision: run_verdict(settings, decision),
            project.target.judged_by,
        )
        trigger = RetrainTrigger(
            settings, producer, project=project.name, segmented=project.segment is not None
        )
        return cls(
            settings,
            contracts,
            follower,
            trigger,
            ReportStore(settings, project),
            producer,
            on_judgement,
            shadow=shadow,
        )

    def close(self) -> None:
        """Stop following the registry, close the producer and the Prefect client."""
        self.follower.stop()
        self.incidents.trigger.close()
        self._producer.close()

    def start(self, stop: threading.Event) -> bool:
        """Before the loop joins the group: no window is open until partitions are assigned;
        the metrics set on this loop's thread are the project's."""
        metrics.watch(self.contracts.project.name, self.settings.monitor.max_segments)
        self.windows = None
        return True

    def resume(self, committed: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """Open the windows afresh where the last commit left them: its partitions are read
        again from there."""
        topic = self.settings.kafka.topics.scored
        resume = Resume.of_metadata(
            {tp.partition: o.metadata for tp, o in committed.items() if tp.topic == topic}
        )
        resume = self._checked(resume)
        self.truth = TruthWatch(
            self.settings, self.contracts.project, resume.closed_until if resume else None
        )
        self.windows = TumblingWindows(
            self.settings.monitor.window_s,
            self.settings.monitor.allowed_lateness_s,
            resume,
            judged_by=self.judged_by,
        )
        self._last_record = time.monotonic()

    def _checked(self, resume: Resume | None) -> Resume | None:
        limit = utc_now() + timedelta(seconds=self.settings.stream.max_clock_skew_s)
        if resume is not None and resume.closed_until > limit:
            # Committed by a monitor that let a record from the future move its clock.
            log.warning(
                "the committed window clock is in the future; starting the windows afresh",
                closed_until=resume.closed_until.isoformat(),
            )
            return None
        if resume is not None:
            log.info("resuming", closed_until=resume.closed_until.isoformat())
        return resume

    def event_time(self, message: Scored | Prediction) -> datetime:
        """When the item was seen (its input time): the runtime dead-letters a record dated
        beyond the stream's clock skew (or horizon), so that none moves the windows' clock into
        the future (every real window would then be late)."""
        return message.at

    def process(self, batch: Batch[Scored | Prediction], out: Output) -> None:
        """Add a batch's scored records to their windows and count its predictions; its dead
        letters hold no window back, and those of the predictions are the joiner's to send."""
        windows = self.windows
        if windows is None:
            raise RuntimeError("records came before the monitor's partitions were assigned")
        predictions = self.settings.kafka.topics.predictions
        for letter in batch.dead:
            if letter.source_topic == predictions:
                self.truth.book.skip(letter.partition, letter.offset)
            else:
                windows.skip(letter.partition, letter.offset)
        # The joiner reads the predictions too and sends their dead letters: a bad prediction
        # leaves one letter, not two.
        batch.dead[:] = [letter for letter in batch.dead if letter.source_topic != predictions]
        if batch.dead:
            metrics.RECORDS.labels("dead_letter").inc(len(batch.dead))
        for item in batch.received:
            if isinstance(item.message, Prediction):
                self.truth.predicted(item.message, item.raw.partition, item.raw.offset)
                continue
            self.truth.joined(item.message)
            admission = windows.add(item.message, item.raw.partition, item.raw.offset)
            metrics.RECORDS.labels(admission.value).inc()
            if admission is Admission.LATE:
                log.debug("late record", key=item.message.key, at=item.message.at.isoformat())
        self._last_record = time.monotonic()

    def tick(self) -> None:
        """Judge the windows that closed, then start the queued retrain if its time came."""
        windows = self.windows
        if windows is not None:
            closed = windows.close_due()
            idle = time.monotonic() - self._last_record > self.settings.monitor.idle_flush_s
            if idle and windows.open_windows:
                log.info("no record for a while; closing the open windows")
                closed += windows.flush()
            for window in closed:
                self._closed(window)
        self.truth.tick(self.follower.current)
        self.incidents.drain()

    def mark(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Up to the first record still in an open window, with where to resume from."""
        if self.windows is None:
            return {}
        topics = self.settings.kafka.topics
        return {
            TopicPartition(topics.scored, partition): OffsetAndMetadata(offset, metadata, -1)
            for partition, (offset, metadata) in self.windows.marks().items()
        } | {
            TopicPartition(topics.predictions, partition): OffsetAndMetadata(offset, "", -1)
            for partition, offset in self.truth.marks().items()
        }

    def judge(self, window: ClosedWindow) -> WindowJudgement:
        """Judge one closed window and answer its alarms: a retrain starts for the incidents
        whose gates are open."""
        return self.window_judge.judge(window)

    def _closed(self, window: ClosedWindow) -> None:
        metrics.observe_window(window)
        judgement = self.judge(window)
        # The truth's coverage only annotates the judgement (no alarm reads it): it is taken
        # once the retrain, if any, has been asked for.
        coverage = self.truth.closed(window.start)
        judgement = replace(judgement, coverage=coverage, coverage_note=self.truth.note(coverage))
        compared = self.truth.judged(judgement)
        if compared is not None:
            judgement = replace(judgement, estimated_error=compared.estimated)
        self._challenge(window, judgement.version)
        if judgement.triggered:
            judgement = replace(judgement, reports=self._pages(judgement))
        try:
            self.reports.record(window_outcome(judgement, self.thresholds))
        except Exception:  # the UI's record must not stop the judging
            log.exception("recording the window in the Evidently workspace failed")
        log_judgement(judgement)
        if self._on_judgement is not None:
            self._on_judgement(judgement)

    def _challenge(self, window: ClosedWindow, version: str | None) -> None:
        if self.shadow is None:
            return
        try:
            self.shadow.observe(window.records, version)
        except Exception:  # the shadow evaluation must not stop the monitoring of production
            log.exception("judging the challenger on this window failed")

    def _pages(self, judgement: WindowJudgement) -> SavedReport | None:
        """The error and drift pages of a window that started a retrain."""
        assert judgement.request is not None
        try:
            return self.reports.save_pages(
                label=f"v{judgement.version or 'none'} fired on {judgement.request.reason.value}",
                window_end=judgement.window.end,
                records=judged_records(judgement.window, judgement.version),
                drift=judgement.drift,
            )
        except Exception:  # a report that fails to render must not hide the retrain
            log.exception("saving the window's reports failed")
            return None
