"""A project's dashboard in Evidently's UI: the loop window by window.

Every closed window adds a snapshot (monitoring.reports) whose metrics the panels read: the mean
error the project judges of the window's items by the model version that scored them and by segment,
the alarm threshold beside them, the drift share of the windows that were tested for drift, and the
number of items. Evidently draws a series per panel value, so the by-version and by-segment panels
gain a series when a new version or segment first appears; existing series are never removed and
nothing is rewritten when nothing is new, so creating the panels at each start is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from evidently.sdk.models import DashboardModel, DashboardPanelPlot, DashboardTabModel, PanelMetric
from evidently.sdk.panels import bar_plot_panel, line_plot_panel

# Snapshot tags the panels filter on: one error snapshot per window, one drift snapshot per
# window that was tested for drift.
WINDOW_TAG = "window"
DRIFT_TAG = "drift"
# One truth coverage snapshot per window judged while the monitor read the predictions.
COVERAGE_TAG = "coverage"
TAB = "Loop"
THRESHOLD_COLUMN = "threshold"
JUDGED_ERROR = "error"

_MEAN = "evidently:metric_v2:MeanValue"
_ROWS = "evidently:metric_v2:RowCount"
_DRIFTED = "evidently:metric_v2:DriftedColumnsCount"
BY_VERSION = "Mean error by model version"
BY_SEGMENT = "Mean error by segment"
DRIFT_SHARE = "Drift share"
ITEMS = "Items per window"
COVERAGE = "Truth coverage"
COVERAGE_ALL = "all"
ESTIMATE = "Error estimated before the truth"
ESTIMATED_COLUMN = "estimated error"
MEASURED_COLUMN = "measured error"


def version_column(version: str) -> str:
    """The error snapshot's column of the judged errors of the items ``version`` scored."""
    return f"{JUDGED_ERROR} · version {version}"


def segment_column(segment: str) -> str:
    """The error snapshot's column of the judged errors of the items of ``segment``."""
    return f"{JUDGED_ERROR} · {segment}"


def coverage_column(segment: str) -> str:
    """The coverage snapshot's column of ``segment``'s share of predictions with their truth
    (:data:`COVERAGE_ALL` for the whole window)."""
    return f"coverage · {segment}"


def _coverage_of(segment: str) -> PanelMetric:
    return PanelMetric(
        legend=f"coverage {segment}",
        tags=[COVERAGE_TAG],
        metric=_MEAN,
        metric_labels={"column": coverage_column(segment)},
    )


def _mean_of(column: str, legend: str) -> PanelMetric:
    return PanelMetric(
        legend=legend, tags=[WINDOW_TAG], metric=_MEAN, metric_labels={"column": column}
    )


def _threshold(threshold: float) -> PanelMetric:
    return _mean_of(THRESHOLD_COLUMN, f"threshold {threshold:.2f}")


def wanted_panels(
    threshold: float,
    versions: Iterable[str],
    segments: Iterable[str],
    error: str = "mean relative error",
) -> list[DashboardPanelPlot]:
    """The panels, with a series for each of ``versions`` and ``segments``; ``error`` names the
    error the project judges."""
    by_version = [_mean_of(version_column(v), f"v{v}") for v in sorted(versions, key=_numeric)]
    named = sorted(segments)
    by_segment = [_mean_of(segment_column(s), s) for s in named]
    return [
        line_plot_panel(
            BY_VERSION,
            [*by_version, _threshold(threshold)],
            description=f"The {error} of each closed window's items by the version that scored "
            f"them; a retrain is asked for when the production version's error passes "
            f"{threshold:.2f}",
            size="half",
        ),
        line_plot_panel(
            BY_SEGMENT,
            [*by_segment, _threshold(threshold)],
            description=f"The {error} of each closed window's items by segment, whichever "
            "version scored them",
            size="half",
        ),
        line_plot_panel(
            DRIFT_SHARE,
            [
                PanelMetric(
                    legend="share of drifted columns",
                    tags=[DRIFT_TAG],
                    metric=_DRIFTED,
                    metric_labels={"value_type": "share"},
                )
            ],
            description="Features of the window against the production version's training data "
            "(windows with enough items only)",
            size="half",
        ),
        bar_plot_panel(
            ITEMS,
            [PanelMetric(legend="items", tags=[WINDOW_TAG], metric=_ROWS)],
            description="Scored items in each closed window",
            size="half",
        ),
        line_plot_panel(
            COVERAGE,
            [_coverage_of(COVERAGE_ALL), *(_coverage_of(s) for s in named)],
            description="Share of each judged window's predictions whose truth was joined, "
            "overall and by segment: below the monitor's floor a window is not judged",
            size="half",
        ),
        line_plot_panel(
            ESTIMATE,
            [
                PanelMetric(
                    legend=column,
                    tags=[COVERAGE_TAG],
                    metric=_MEAN,
                    metric_labels={"column": column},
                )
                for column in (ESTIMATED_COLUMN, MEASURED_COLUMN)
            ]
            + [_threshold(threshold)],
            description=f"The {error} of each window as estimated from its predictions before "
            "its truth, beside the one measured on its truth",
            size="half",
        ),
    ]


class LoopDashboard:
    """Keeps the project's dashboard in step with the versions and segments seen so far."""

    def __init__(
        self,
        workspace: Any,
        project_id: Any,
        threshold: float,
        error: str = "mean relative error",
    ) -> None:
        self._workspace = workspace
        self._project_id = project_id
        self._threshold = threshold
        self._error = error
        self._versions: set[str] = set()
        self._segments: set[str] = set()
        self._checked = False

    def ensure(self, versions: Iterable[str] = (), segments: Iterable[str] = ()) -> bool:
        """Create missing panels and series; True when the dashboard was written."""
        new_versions = set(versions) - self._versions
        new_segments = set(segments) - self._segments
        if self._checked and not new_versions and not new_segments:
            return False
        self._versions |= new_versions
        self._segments |= new_segments
        dashboard: DashboardModel = self._workspace.get_dashboard(self._project_id)
        changed = _merge(
            dashboard,
            wanted_panels(self._threshold, self._versions, self._segments, self._error),
        )
        if changed:
            self._workspace.save_dashboard(self._project_id, dashboard)
        self._checked = True
        return changed


def _merge(dashboard: DashboardModel, wanted: list[DashboardPanelPlot]) -> bool:
    """Add missing panels and missing series to ``dashboard``; True when anything changed."""
    tab = next((t for t in dashboard.tabs if t.title == TAB), None)
    if tab is None:
        tab = DashboardTabModel(title=TAB, panels=[])
        dashboard.tabs.insert(0, tab)
    existing = {panel.title: panel for panel in dashboard.panels}
    changed = False
    for panel in wanted:
        found = existing.get(panel.title)
        if found is None:
            dashboard.panels.append(panel)
            tab.panels.append(panel.id)
            changed = True
            continue
        have = {_series_key(v) for v in found.values}
        missing = [v for v in panel.values if _series_key(v) not in have]
        if missing:
            # Keep every series shown so far (a version that left production keeps its line).
            found.values = sorted([*found.values, *missing], key=_order)
            changed = True
    return changed


def _series_key(value: PanelMetric) -> tuple[str, tuple[tuple[str, str], ...]]:
    return value.metric, tuple(sorted(value.metric_labels.items()))


def _order(value: PanelMetric) -> tuple[int, float, str]:
    column = value.metric_labels.get("column", "")
    if column == THRESHOLD_COLUMN:
        return 2, 0.0, ""
    legend = value.legend or ""
    return (0, _numeric(legend[1:]), "") if legend[1:].isdigit() else (1, 0.0, legend)


def _numeric(version: str) -> float:
    return float(version) if version.isdigit() else float("inf")
