"""The ``tidemark`` project's dashboard in Evidently's UI: the loop window by window.

Every closed window adds a snapshot (monitoring.reports) whose metrics the panels read: the mean
relative error of the window's fish by the model version that scored them and by species, the
alarm threshold beside them, the drift share of the windows that were tested for drift, and the
number of fish. Evidently draws a series per panel value, so the by-version and by-species panels
gain a series when a new version or species first appears; existing series are never removed
and nothing is rewritten when nothing is new, so creating the panels at each start is idempotent.
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
TAB = "Loop"
THRESHOLD_COLUMN = "threshold"
RELATIVE_ERROR = "relative_error"

_MEAN = "evidently:metric_v2:MeanValue"
_ROWS = "evidently:metric_v2:RowCount"
_DRIFTED = "evidently:metric_v2:DriftedColumnsCount"
BY_VERSION = "Mean relative error by model version"
BY_SPECIES = "Mean relative error by species"
DRIFT_SHARE = "Drift share"
FISH = "Fish per window"


def version_column(version: str) -> str:
    """The error snapshot's column of the relative errors of the fish ``version`` scored."""
    return f"{RELATIVE_ERROR} · version {version}"


def species_column(species: str) -> str:
    """The error snapshot's column of the relative errors of the fish of ``species``."""
    return f"{RELATIVE_ERROR} · {species}"


def _mean_of(column: str, legend: str) -> PanelMetric:
    return PanelMetric(
        legend=legend, tags=[WINDOW_TAG], metric=_MEAN, metric_labels={"column": column}
    )


def _threshold(threshold: float) -> PanelMetric:
    return _mean_of(THRESHOLD_COLUMN, f"threshold {threshold:.2f}")


def wanted_panels(
    threshold: float, versions: Iterable[str], species: Iterable[str]
) -> list[DashboardPanelPlot]:
    """The panels, with a series for each of ``versions`` and ``species``."""
    by_version = [_mean_of(version_column(v), f"v{v}") for v in sorted(versions, key=_numeric)]
    by_species = [_mean_of(species_column(s), s) for s in sorted(species)]
    return [
        line_plot_panel(
            BY_VERSION,
            [*by_version, _threshold(threshold)],
            description="Each closed window's fish by the version that scored them; a retrain "
            f"is asked for when the production version's error passes {threshold:.2f}",
            size="half",
        ),
        line_plot_panel(
            BY_SPECIES,
            [*by_species, _threshold(threshold)],
            description="Each closed window's fish by species, whichever version scored them",
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
            "(windows with enough fish only)",
            size="half",
        ),
        bar_plot_panel(
            FISH,
            [PanelMetric(legend="fish", tags=[WINDOW_TAG], metric=_ROWS)],
            description="Scored fish in each closed window",
            size="half",
        ),
    ]


class LoopDashboard:
    """Keeps the project's dashboard in step with the versions and species seen so far."""

    def __init__(self, workspace: Any, project_id: Any, threshold: float) -> None:
        self._workspace = workspace
        self._project_id = project_id
        self._threshold = threshold
        self._versions: set[str] = set()
        self._species: set[str] = set()
        self._checked = False

    def ensure(self, versions: Iterable[str] = (), species: Iterable[str] = ()) -> bool:
        """Create missing panels and series; True when the dashboard was written."""
        new_versions, new_species = set(versions) - self._versions, set(species) - self._species
        if self._checked and not new_versions and not new_species:
            return False
        self._versions |= new_versions
        self._species |= new_species
        dashboard: DashboardModel = self._workspace.get_dashboard(self._project_id)
        changed = _merge(dashboard, wanted_panels(self._threshold, self._versions, self._species))
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
