"""A closed window judged: production's error per segment, its drift, and the alarms it raises.

A window is judged on the items that the version the registry names production now scored
(asked once per window, :mod:`monitoring.production`): per segment once enough of its items are
in (:mod:`monitoring.evidence`), its error and its drift against that segment's rows of the
version's training data, on the same items (a segment the version was not trained on has no
such rows); the whole window is also tested for drift against a reference of its own segment
mix, for the reports and the drift gauges. The judge hands the alarms it raises
(:func:`monitoring.policy.alarms`) straight to whoever answers them (the monitor wires
:meth:`monitoring.incidents.Incidents.answer`), which says what becomes of each and starts the
retrain; the whole :class:`WindowJudgement` is what the monitor logs, records in the Evidently
workspace and hands to whoever watches it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitoring import metrics
from monitoring.coverage import WindowCoverage
from monitoring.drift import DriftDetector, DriftResult, features_frame
from monitoring.evidence import SegmentPool
from monitoring.policy import (
    Alarm,
    Gate,
    Gated,
    IncidentKey,
    JudgedSegment,
    Thresholds,
    alarms,
    judged_records,
)
from monitoring.production import Production, ProductionFollower
from monitoring.reports import SavedReport, WindowOutcome, WindowVerdict
from monitoring.windows import ClosedWindow
from tidemark.judging.scored import scored_metrics
from tidemark.logs import get_logger
from tidemark.modelling.metrics import Metrics
from tidemark.project.spec import Project
from tidemark.schemas import RetrainRequest

log = get_logger("monitor")


@dataclass(frozen=True)
class WindowJudgement:
    """Everything the monitor concluded about one closed window."""

    window: ClosedWindow
    version: str | None
    judged: Metrics | None
    drift: DriftResult | None
    evidence: tuple[JudgedSegment, ...] = ()
    # The drift of each judged segment the version was trained on, on its evidence's items.
    segment_drift: Mapping[str, DriftResult] = field(default_factory=dict)
    alarms: tuple[Gated, ...] = ()
    request: RetrainRequest | None = None
    flow_run_id: str | None = None
    reports: SavedReport | None = None
    # How many of the window's predictions got their truth (monitoring.coverage), and
    # "not judged: coverage N %" when too few did.
    coverage: WindowCoverage | None = None
    coverage_note: str | None = None
    # The window's error as the early warning estimated it before its truth
    # (monitoring.early_warning; None when its predictions were not read).
    estimated_error: float | None = None

    @property
    def triggered(self) -> bool:
        """Whether this window started a retrain."""
        return self.flow_run_id is not None

    def gate_of(self, incident: IncidentKey) -> Gate | None:
        """What became of ``incident``'s alarm in this window (None: it raised none)."""
        return next((g.gate for g in self.alarms if g.alarm.incident == incident), None)

    @property
    def verdict(self) -> WindowVerdict:
        """Fired (a retrain started), held back (alarms, none started), not judged (no alarm,
        but too few truths to call it ok) or ok."""
        if self.triggered:
            return WindowVerdict.FIRED
        if self.alarms:
            return WindowVerdict.HELD_BACK
        return WindowVerdict.NOT_JUDGED if self.coverage_note else WindowVerdict.OK


# What becomes of a judged window's alarms: the judgement with their gates (and its retrain).
Answer = Callable[[WindowJudgement, Sequence[Alarm]], WindowJudgement]


class WindowJudge:
    """Judges closed windows of ``project`` against the production version, pooling short
    segments, and hands their alarms to ``answer``."""

    def __init__(
        self,
        thresholds: Thresholds,
        evidence_windows: int,
        project: Project,
        follower: ProductionFollower,
        answer: Answer,
    ) -> None:
        self.thresholds = thresholds
        self.project = project
        self.follower = follower
        self.answer = answer
        self.pool = SegmentPool(
            thresholds.min_count,
            evidence_windows,
            thresholds.error,
            judged_by=project.target.judged_by,
        )

    def judge(self, window: ClosedWindow) -> WindowJudgement:
        """Judge ``window`` on the version the registry names production now, and answer the
        alarms it raises: the judgement as the answer left it (with the retrain it started)."""
        judgement, raised = self.assess(window, self.follower.refresh())
        return self.answer(judgement, raised)

    def assess(
        self, window: ClosedWindow, production: Production | None
    ) -> tuple[WindowJudgement, list[Alarm]]:
        """The window's judgement on ``production``, and the alarms it raises (not gated yet)."""
        version = production.version if production else None
        metrics.MODEL_VERSION.set(float(version) if version and version.isdigit() else 0)
        judged = judged_records(window, version)
        known = production.known_segments if production and production.known_segments else None
        evidence = self.pool.add(window.start, judged, known, version)
        metrics.observe_pending(self.pool.pending())
        drift = None
        detector = production.detector if production is not None else None
        # Only items of segments the version was trained on can drift from its training data.
        features = features_frame(judged, self.project) if detector and judged else None
        comparable = detector.comparable(features) if detector and features is not None else None
        if (
            detector is not None
            and features is not None
            and comparable is not None
            and len(comparable) >= self.thresholds.min_count
        ):
            drift = detector.check(features, timestamp=window.end)
            metrics.DRIFT_SHARE.set(drift.share)
            metrics.DRIFT_DETECTED.set(int(drift.detected))
        by_segment = (
            self._segment_drift(detector, evidence, drift, len(comparable), window)
            if detector is not None and comparable is not None
            else {}
        )
        raised = alarms(
            evidence,
            {s: d.share for s, d in by_segment.items() if d.detected},
            self.thresholds,
        )
        judgement = WindowJudgement(
            window=window,
            version=version,
            judged=scored_metrics(judged, window.judged_by) if judged else None,
            drift=drift,
            evidence=tuple(evidence),
            segment_drift=by_segment,
        )
        return judgement, raised

    def _segment_drift(
        self,
        detector: DriftDetector,
        evidence: list[JudgedSegment],
        drift: DriftResult | None,
        comparable: int,
        window: ClosedWindow,
    ) -> dict[str, DriftResult]:
        """Each judged segment's drift from its own rows of the reference, on its evidence's
        items; the window's test stands for a segment whose items are all the window tested."""
        found = {}
        for item in evidence:
            if item.unseen or item.segment not in detector.segments:
                continue
            if drift is not None and len(item.items) == comparable and window.start <= item.since:
                found[item.segment] = drift
                continue
            found[item.segment] = detector.check(
                features_frame(item.items, self.project), report=False
            )
        return found


def window_outcome(judgement: WindowJudgement, thresholds: Thresholds) -> WindowOutcome:
    """The judgement in the words of the Evidently workspace: its verdict, and why."""
    judged = judgement.judged
    if judgement.verdict is WindowVerdict.FIRED:
        why = "; ".join(
            f"{g.alarm.incident} {g.alarm.metric} {g.alarm.value:.3f} "
            f"(threshold {g.alarm.threshold:.3f}): {g.gate.state.value}"
            for g in judgement.alarms
        )
    elif judgement.verdict is WindowVerdict.HELD_BACK:
        why = "; ".join(f"{g.alarm.incident}: {g.gate.why}" for g in judgement.alarms)
    elif judgement.verdict is WindowVerdict.NOT_JUDGED:
        assert judgement.coverage_note is not None
        why = judgement.coverage_note
    else:
        why = (
            f"{thresholds.metric.replace('_', ' ')} {judged.judged:.3f} of {judged.n} items "
            f"(threshold {thresholds.error:.2f}, at least {thresholds.min_count} items)"
            if judged
            else "no item scored by the production version"
        )
    return WindowOutcome(
        window=judgement.window,
        version=judgement.version,
        verdict=judgement.verdict,
        reason=why,
        drift=judgement.drift,
        coverage=judgement.coverage,
        estimated_error=judgement.estimated_error,
    )


def log_judgement(judgement: WindowJudgement) -> None:
    """One line for the window, one per alarm, and one when a retrain started."""
    window, judged = judgement.window, judgement.judged
    fields: dict[str, Any] = {
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "count": window.overall.n,
        "mean_error": round(window.overall.judged, 4),
        "by_segment": {s: round(stats.judged, 4) for s, stats in window.by_segment.items()},
        "by_version": {v: stats.n for v, stats in window.by_version.items()},
        "production_version": judgement.version,
        "judged_count": judged.n if judged else 0,
        "judged_mean_error": round(judged.judged, 4) if judged else None,
        "judged_segments": {e.segment: round(e.stats.judged, 4) for e in judgement.evidence},
        "drift_share": round(judgement.drift.share, 3) if judgement.drift else None,
        "segment_drift": {s: round(d.share, 3) for s, d in judgement.segment_drift.items()},
        "truth_coverage": round(judgement.coverage.overall.share, 3)
        if judgement.coverage
        else None,
        "verdict": judgement.verdict.value,
    }
    log.info("window", **fields)
    for gated in judgement.alarms:
        alarm, held = gated.alarm, gated.gate
        line = {
            "incident": str(alarm.incident),
            "metric": alarm.metric,
            "value": round(alarm.value, 4),
            "threshold": alarm.threshold,
            "items": alarm.count,
            "evidence_since": alarm.since.isoformat(),
            "window_end": window.end.isoformat(),
            "production_version": judgement.version,
            "why": held.why,
        }
        if held.open:
            log.warning(
                "incident fired",
                **line,
                flow_run_id=judgement.flow_run_id,
                reports=[str(p) for p in judgement.reports.pages] if judgement.reports else [],
            )
        else:
            log.info(f"incident {held.state.value}", **line)
    if judgement.triggered:
        assert judgement.request is not None
        log.warning(
            "retrain triggered",
            reason=judgement.request.reason.value,
            incidents=[str(g.alarm.incident) for g in judgement.alarms if g.gate.open],
            window_start=judgement.request.window_start.isoformat(),
            flow_run_id=judgement.flow_run_id,
        )
