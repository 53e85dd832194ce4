"""What the monitor knows of the truth feed: the coverage of each window, the silence
incidents and the early warning before the truth, in its metrics and its log.

The monitor hands every prediction and every scored item it reads to a :class:`TruthWatch`;
when it judges a window it takes that window's coverage (:meth:`TruthWatch.closed`) and sets the
window's estimate beside its measured error (:meth:`TruthWatch.judged`); after every round
:meth:`TruthWatch.tick` settles the windows no truth reached, opens or closes the "truth feed
silent" incidents (:mod:`monitoring.silence`) and estimates the windows whose predictions are
all in (:mod:`monitoring.early_warning`).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from datetime import datetime

from monitoring import metrics
from monitoring.coverage import ALL, CoverageBook, SegmentCoverage, WindowCoverage
from monitoring.early_warning import Comparison, EarlyWarning, Provisional, ProvisionalChange
from monitoring.judgement import WindowJudgement
from monitoring.production import Production
from monitoring.silence import SilenceChange, SilenceState, TruthSilence
from tidemark.config import Settings
from tidemark.judging.scored import WHOLE
from tidemark.logs import get_logger
from tidemark.project.contracts import Prediction, Scored
from tidemark.project.spec import Project

log = get_logger("monitor")

_COUNTS = ("predicted", "joined", "waiting", "expired")
PREDICTIONS = metrics.ProjectCounter(
    "tidemark_monitor_predictions_total",
    "Predictions read from the project's predictions topic (for the truth coverage)",
)
COVERAGE_ITEMS = metrics.ProjectGauge(
    "tidemark_monitor_truth_items",
    "Items of the last judged window by what became of their truth: predicted, joined, "
    "waiting (not joined yet) or expired (the join window passed)",
    ("segment", "state"),
)
COVERAGE_SHARE = metrics.ProjectGauge(
    "tidemark_monitor_truth_coverage",
    "Share of the last judged window's predictions whose truth was joined",
    ("segment",),
)
TRUTH_DELAY = metrics.ProjectGauge(
    "tidemark_monitor_truth_delay_seconds",
    "Wall-clock seconds from prediction to joined truth in the last judged window (quantile "
    "0.5 or 0.95)",
    ("segment", "quantile"),
)
NOT_JUDGED = metrics.ProjectCounter(
    "tidemark_monitor_windows_not_judged_total",
    "Windows whose truth coverage was below the floor (or that no truth reached at all)",
)
SILENT = metrics.ProjectGauge(
    "tidemark_monitor_truth_silent",
    "1 while a 'truth feed silent' incident is open for the segment (segment=all: every item)",
    ("segment",),
)
SILENCES = metrics.ProjectCounter(
    "tidemark_monitor_truth_silence_incidents_total",
    "'Truth feed silent' incidents, by what happened to them (opened, closed)",
    ("segment", "change"),
)

ESTIMATED = metrics.ProjectGauge(
    "tidemark_monitor_estimated_error",
    "The error estimated before the truth for the last window whose predictions are all in "
    "(segment=all: the whole window)",
    ("segment",),
)
ESTIMATE_BESIDE = metrics.ProjectGauge(
    "tidemark_monitor_estimate_beside_measured",
    "The last judged window's error: estimated before its truth, and measured on it",
    ("which",),
)
ESTIMATE_GAP = metrics.ProjectGauge(
    "tidemark_monitor_estimate_mean_gap",
    "Mean absolute gap between the estimated and the measured error of the windows compared",
)
ESTIMATES_COMPARED = metrics.ProjectCounter(
    "tidemark_monitor_estimates_compared_total",
    "Windows whose estimate was set beside their measured error",
)
PROVISIONAL = metrics.ProjectGauge(
    "tidemark_monitor_provisional_incident",
    "1 while a provisional incident (estimated above the threshold, truth not in yet) is open",
    ("segment",),
)
PROVISIONALS = metrics.ProjectCounter(
    "tidemark_monitor_provisional_incidents_total",
    "Provisional incidents by what became of them (opened, confirmed, cleared)",
    ("segment", "change"),
)


class TruthWatch:
    """Coverage and silence of one project's truth feed, as the monitor reads its topics."""

    def __init__(
        self, settings: Settings, project: Project, closed_until: datetime | None = None
    ) -> None:
        monitor = settings.monitor
        self.floor = monitor.coverage_floor
        self.early = EarlyWarning(
            project,
            size_s=monitor.window_s,
            lateness_s=monitor.allowed_lateness_s,
            threshold=monitor.error_threshold,
            min_count=monitor.min_window_count,
            unseen_error=monitor.early_warning_unseen_error,
        )
        self.book = CoverageBook(monitor.window_s, settings.stream.join_window_s, closed_until)
        self.silence = TruthSilence(monitor.truth_silence_s, monitor.truth_silence_min_items)
        self._shown: set[tuple[str, ...]] = set()

    def predicted(self, prediction: Prediction, partition: int, offset: int) -> None:
        """A prediction read at ``partition``/``offset`` of the predictions topic."""
        PREDICTIONS.inc()
        self.book.predicted(prediction, partition, offset)
        self.silence.predicted(prediction.segment or WHOLE, prediction.at)
        self.early.predicted(prediction)

    def joined(self, scored: Scored) -> None:
        """A scored item read (its truth was joined)."""
        self.book.joined(scored)
        self.silence.joined(scored.segment or WHOLE, scored.at)

    def closed(self, start: datetime) -> WindowCoverage:
        """The coverage of the window the monitor judges now, published."""
        coverage = self.book.close(start)
        self._publish(coverage)
        return coverage

    def tick(self, production: Production | None) -> list[SilenceChange]:
        """Settle the windows no truth reached, open or close the silence incidents, and
        estimate the windows whose predictions are all in (on ``production``)."""
        estimates, opened = self.early.due(production)
        for estimate in estimates:
            ESTIMATED.labels(ALL).set(estimate.error)
            for segment, seen in estimate.by_segment.items():
                ESTIMATED.labels(_label(segment)).set(seen.error)
            log.info(
                "window estimated before its truth",
                window_start=estimate.start.isoformat(),
                estimated_error=round(estimate.error, 4),
                by_segment={
                    s: (round(e.error, 4), e.basis.value) for s, e in estimate.by_segment.items()
                },
                unseen_share=round(estimate.unseen_share, 3),
                drift_share=estimate.drift_share,
                production_version=estimate.version,
            )
        self._provisional(opened)
        for coverage in self.book.settle():
            NOT_JUDGED.inc()
            self._publish(coverage)
            log.warning(
                "window not judged: no truth joined",
                window_start=coverage.start.isoformat(),
                predicted=coverage.overall.predicted,
                expired=coverage.overall.expired,
            )
        changes = self.silence.check()
        for change in changes:
            label = _label(change.segment)
            SILENT.labels(label).set(1 if change.change is SilenceState.OPENED else 0)
            SILENCES.labels(label, change.change.value).inc()
            (log.warning if change.change is SilenceState.OPENED else log.info)(
                f"truth feed silent incident {change.change.value}",
                segment=change.segment,
                clock=change.at.isoformat(),
                last_truth=change.last_truth.isoformat() if change.last_truth else None,
                overdue=change.overdue,
            )
        return changes

    def judged(self, judgement: WindowJudgement) -> Comparison | None:
        """A window was judged on its truth: set its estimate beside its measured error (None:
        it had none), and confirm or clear the provisional incidents of the segments it
        judged."""
        alarmed = frozenset(
            g.alarm.incident.segment for g in judgement.alarms if g.alarm.incident.segment
        )
        judged = frozenset(e.segment for e in judgement.evidence)
        compared, changes = self.early.judged(judgement.window, judgement.version, alarmed, judged)
        self._provisional(changes)
        if compared is None:
            return None
        ESTIMATE_BESIDE.labels("estimated").set(compared.estimated)
        ESTIMATE_BESIDE.labels("measured").set(compared.measured)
        ESTIMATES_COMPARED.inc()
        gap = self.early.tracking.mean_gap
        if gap is not None:
            ESTIMATE_GAP.set(gap)
        log.info(
            "estimate beside measured",
            window_start=compared.start.isoformat(),
            estimated_error=round(compared.estimated, 4),
            measured_error=round(compared.measured, 4),
            by_segment={s: (round(e, 4), round(m, 4)) for s, (e, m) in compared.by_segment.items()},
            mean_gap=round(gap, 4) if gap is not None else None,
        )
        return compared

    def _provisional(self, changes: list[ProvisionalChange]) -> None:
        for change in changes:
            label = _label(change.segment)
            PROVISIONAL.labels(label).set(1 if change.change is Provisional.OPENED else 0)
            PROVISIONALS.labels(label, change.change.value).inc()
            log.warning(
                f"provisional incident {change.change.value}",
                segment=change.segment,
                window_start=change.start.isoformat(),
                estimated_error=round(change.estimated, 4),
                measured_error=round(change.measured, 4) if change.measured is not None else None,
            )

    def note(self, coverage: WindowCoverage) -> str | None:
        """``not judged: coverage N %`` for a window below the floor (counted), else None."""
        note = coverage.note(self.floor)
        if note is not None:
            NOT_JUDGED.inc()
        return note

    def _publish(self, coverage: WindowCoverage) -> None:
        named: dict[str, SegmentCoverage] = {ALL: coverage.overall}
        for segment, counts in coverage.by_segment.items():
            # Bounded labels: segments beyond the bound are shown under theirs, the last wins.
            named[_label(segment)] = counts
        values: dict[tuple[str, ...], tuple[metrics.ProjectGauge, float]] = {}
        for label, counts in named.items():
            for state in _COUNTS:
                values[(label, state)] = (COVERAGE_ITEMS, float(getattr(counts, state)))
            values[(label,)] = (COVERAGE_SHARE, counts.share)
            for q, delay in (("0.5", counts.delay_p50_s), ("0.95", counts.delay_p95_s)):
                if delay is not None:
                    values[(label, q)] = (TRUTH_DELAY, delay)
        for gone in self._shown - set(values):
            for gauge in (COVERAGE_ITEMS, COVERAGE_SHARE, TRUTH_DELAY):
                with suppress(KeyError, ValueError):  # not this gauge's labels
                    gauge.remove(*gone)
        for labels, (gauge, value) in values.items():
            gauge.labels(*labels).set(value)
        self._shown = set(values)

    def marks(self) -> Mapping[int, int]:
        """Per partition of the predictions topic, the offset to commit."""
        return self.book.commit_offsets()


def _label(segment: str) -> str:
    return ALL if segment == ALL else metrics.segment_labels().label(segment)
