"""Evidently reports of windows: runs in an Evidently workspace and HTML pages on disk.

Every closed window adds a run to the workspace's project of the same name as the Tidemark project
(``evidently ui --workspace DIR`` shows it), stamped with the window's end (event time), named and
tagged with the window, the production version and the verdict: the window's error (item count, mean
judged error by model version and by segment, and the threshold) and, when the window was tested for
drift, the drift report. The project's dashboard (monitoring.dashboard) plots them. These runs are
kept small, since the monitor closes a window every minute.

A window that fires also gets self-contained pages in ``state_dir/reports``: Evidently's full
regression preset (error plots) and the drift report.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Regression, Report
from evidently.metrics import MeanValue, RowCount
from evidently.presets import RegressionPreset
from evidently.ui.workspace import Workspace

from monitoring import dashboard
from monitoring.coverage import ALL, WindowCoverage
from monitoring.drift import DriftResult
from monitoring.segments import SegmentLabels
from monitoring.windows import ClosedWindow
from tidemark.config import Settings
from tidemark.judging.scored import error_of, segment_of
from tidemark.modelling.metrics import JUDGED_METRIC
from tidemark.project.contracts import FieldNames, Scored
from tidemark.project.spec import Project


def workspace_dir(settings: Settings) -> Path:
    """Where the Evidently workspace lives (``evidently ui --workspace`` this)."""
    return settings.monitor.evidently_workspace or settings.stack.state_dir / "evidently"


def html_dir(settings: Settings) -> Path:
    """Where the HTML pages of the reports are written."""
    return settings.stack.state_dir / "reports"


def error_snapshot(project: Project, records: Sequence[Scored], timestamp: datetime) -> Any:
    """Evidently's regression report on scored records of ``project`` (at least one): its
    features, target and production's prediction, named as in its messages."""
    target, predicted = project.target.name, FieldNames.of(project).predicted
    frame = pd.DataFrame(
        {
            **{
                f.name: [r.prediction.item.fields.get(f.name) for r in records]
                for f in project.features
            },
            target: [r.truth for r in records],
            predicted: [r.prediction.value for r in records],
        }
    )
    definition = DataDefinition(
        numerical_columns=[f.name for f in project.numbers],
        categorical_columns=[f.name for f in project.categories],
        regression=[Regression(target=target, prediction=predicted)],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return Report([RegressionPreset()]).run(
            current_data=Dataset.from_pandas(frame, definition), timestamp=timestamp
        )


class WindowVerdict(StrEnum):
    """What a judged window came to, as the workspace names and tags its runs."""

    # A retrain started.
    FIRED = "fired"
    # Alarms, and none of them started a retrain.
    HELD_BACK = "held-back"
    # No alarm, but too few of its predictions got their truth to call it ok.
    NOT_JUDGED = "not-judged"
    OK = "ok"


@dataclass(frozen=True)
class WindowOutcome:
    """One judged window as the workspace records it."""

    window: ClosedWindow
    version: str | None
    verdict: WindowVerdict
    reason: str
    drift: DriftResult | None
    coverage: WindowCoverage | None = None
    # The error estimated before the truth (monitoring.early_warning), beside the measured one.
    estimated_error: float | None = None

    @property
    def label(self) -> str:
        """``12:03-12:04 UTC · v3 · ok``: the window, the production version, the verdict."""
        span = f"{self.window.start:%Y-%m-%d %H:%M}-{self.window.end:%H:%M} UTC"
        return f"{span} · v{self.version or ' none'} · {self.verdict}"

    def tags(self, kind: str) -> list[str]:
        """The run's tags: its kind, the version, the verdict (dashboard panels filter on kind)."""
        return [kind, f"v{self.version or 'none'}", self.verdict.value]

    def metadata(self) -> dict[str, str]:
        """The run's metadata: the window's bounds, the version, the verdict and why."""
        return {
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "model_version": self.version or "none",
            "verdict": self.verdict.value,
            "reason": self.reason,
            "items": str(self.window.overall.n),
        }


def window_snapshot(
    outcome: WindowOutcome, threshold: float, labels: SegmentLabels | None = None
) -> Any:
    """The small error report of a window: its items and mean judged errors by group.

    Each group is a column of judged errors that is empty (NaN) for the items outside it, so
    Evidently's mean of the column is the group's mean error. Evidently draws a
    distribution for every metric, which is most of the cost, so the report holds only what
    the dashboard plots (MAE and RMSE of each window are Prometheus gauges of the monitor).
    """
    window = outcome.window
    records = window.records
    errors = pd.Series([error_of(r, window.judged_by) for r in records], dtype="float64")
    columns: dict[str, Any] = {dashboard.THRESHOLD_COLUMN: [threshold] * len(records)}
    versions = pd.Series([r.prediction.model_version for r in records])
    named = labels or SegmentLabels(len(window.by_segment) or 1)
    segments = pd.Series([named.label(segment_of(r)) for r in records])
    for version in window.by_version:
        columns[dashboard.version_column(version)] = errors.where(versions == version)
    for name in sorted(set(segments)):
        columns[dashboard.segment_column(name)] = errors.where(segments == name)
    frame = pd.DataFrame(columns)
    means = list(frame.columns)
    definition = DataDefinition(numerical_columns=means)
    with warnings.catch_warnings():
        # A window of one or two items is legitimate; scipy and scikit-learn warn about it.
        warnings.simplefilter("ignore")
        return Report([RowCount(), *[MeanValue(column=c) for c in means]]).run(
            current_data=Dataset.from_pandas(frame, definition),
            timestamp=outcome.window.end,
            tags=outcome.tags(dashboard.WINDOW_TAG),
            metadata=outcome.metadata(),
            name=f"{outcome.label}: error",
        )


def coverage_snapshot(
    coverage: WindowCoverage, outcome: WindowOutcome, labels: SegmentLabels
) -> Any:
    """The coverage report of a window: one row, the share of its predictions whose truth was
    joined, overall and per segment label (the segments a label groups are added up), and the
    error estimated before the truth beside the measured one."""
    counts: dict[str, tuple[int, int]] = {
        ALL: (coverage.overall.joined, coverage.overall.predicted)
    }
    for segment, seen in coverage.by_segment.items():
        label = labels.label(segment)
        joined, predicted = counts.get(label, (0, 0))
        counts[label] = (joined + seen.joined, predicted + seen.predicted)
    columns = {
        dashboard.coverage_column(label): [joined / predicted if predicted else 1.0]
        for label, (joined, predicted) in counts.items()
    }
    if outcome.estimated_error is not None:
        columns[dashboard.ESTIMATED_COLUMN] = [outcome.estimated_error]
        columns[dashboard.MEASURED_COLUMN] = [outcome.window.overall.judged]
    frame = pd.DataFrame(columns)
    definition = DataDefinition(numerical_columns=list(frame.columns))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Report([MeanValue(column=c) for c in frame.columns]).run(
            current_data=Dataset.from_pandas(frame, definition),
            timestamp=outcome.window.end,
            tags=outcome.tags(dashboard.COVERAGE_TAG),
            metadata=outcome.metadata(),
            name=f"{outcome.label}: truth coverage",
        )


def _stamp(snapshot: Any, outcome: WindowOutcome) -> None:
    # The drift snapshot exists before the verdict does, and Evidently 0.7 has a setter for the
    # name only: the tags and metadata are set on its fields.
    snapshot.set_name(f"{outcome.label}: drift")
    snapshot._tags = outcome.tags(dashboard.DRIFT_TAG)
    snapshot._metadata = outcome.metadata()


@dataclass(frozen=True)
class SavedReport:
    """Where one window's reports went."""

    pages: tuple[Path, ...]
    workspace: Path


class ReportStore:
    """Records a project's windows as runs of its workspace project (of the same name) and
    saves HTML pages."""

    def __init__(self, settings: Settings, project: Project) -> None:
        self.threshold = settings.monitor.error_threshold
        self.source = project
        self.html_dir = html_dir(settings)
        self.workspace_dir = workspace_dir(settings)
        self.workspace_dir.mkdir(parents=True, exist_ok=True)
        self.workspace = Workspace.create(str(self.workspace_dir))
        found = self.workspace.search_project(project.name)
        self.project = (
            found[0]
            if found
            else self.workspace.create_project(
                project.name,
                f"Windows of {settings.kafka.topics.scored}: prediction error and feature drift",
            )
        )
        self.dashboard = dashboard.LoopDashboard(
            self.workspace,
            self.project.id,
            self.threshold,
            JUDGED_METRIC[project.target.judged_by].replace("_", " "),
        )
        # Bounded segments: the same labels as the metrics' (both see the windows in order).
        self.labels = SegmentLabels(settings.monitor.max_segments)
        self.dashboard.ensure()

    def record(self, outcome: WindowOutcome) -> None:
        """Add a judged window's runs to the workspace and keep the dashboard's series up."""
        self.workspace.add_run(
            self.project.id, window_snapshot(outcome, self.threshold, self.labels)
        )
        if outcome.drift is not None:
            _stamp(outcome.drift.snapshot, outcome)
            self.workspace.add_run(self.project.id, outcome.drift.snapshot)
        if outcome.coverage is not None:
            self.workspace.add_run(
                self.project.id, coverage_snapshot(outcome.coverage, outcome, self.labels)
            )
        covered = outcome.coverage.by_segment if outcome.coverage else {}
        self.dashboard.ensure(
            outcome.window.by_version,
            {self.labels.label(s) for s in [*outcome.window.by_segment, *covered]},
        )

    def save_pages(
        self,
        *,
        label: str,
        window_end: datetime,
        records: Sequence[Scored],
        drift: DriftResult | None,
    ) -> SavedReport:
        """Write the full error report of ``records`` and the drift report (if any) as pages."""
        return self._pages(
            label, window_end, _full_reports(self.source, window_end, records, drift)
        )

    def _pages(
        self, label: str, window_end: datetime, snapshots: list[tuple[str, Any]]
    ) -> SavedReport:
        stamp = window_end.strftime("%Y%m%dT%H%M%SZ")
        pages = []
        for kind, snapshot in snapshots:
            page = self.html_dir / f"{stamp}-{label.replace(' ', '-')}-{kind}.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            snapshot.save_html(str(page))
            pages.append(page)
        return SavedReport(pages=tuple(pages), workspace=self.workspace_dir)

    def save(
        self,
        *,
        label: str,
        window_end: datetime,
        records: Sequence[Scored],
        drift: DriftResult | None,
    ) -> SavedReport:
        """Save the full reports as pages and as runs of the workspace (``tidemark report``)."""
        snapshots = _full_reports(self.source, window_end, records, drift)
        for kind, snapshot in snapshots:
            self.workspace.add_run(self.project.id, snapshot, name=f"{label}: {kind}")
        return self._pages(label, window_end, snapshots)


def _full_reports(
    project: Project, window_end: datetime, records: Sequence[Scored], drift: DriftResult | None
) -> list[tuple[str, Any]]:
    snapshots = [("error", error_snapshot(project, records, window_end))]
    if drift is not None:
        snapshots.append(("drift", drift.snapshot))
    return snapshots
