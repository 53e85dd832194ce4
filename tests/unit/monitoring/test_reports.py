"""Every judged window becomes a run of the workspace; the dashboard's panels plot them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from evidently.ui.workspace import Workspace

from monitoring import dashboard
from monitoring.coverage import CoverageBook
from monitoring.reports import ReportStore, WindowOutcome, WindowVerdict
from monitoring.windows import ClosedWindow
from tests.unit.monitoring.scored import FISH, T0, scored
from tidemark.config import Settings
from tidemark.project.spec import ErrorKind


def _window(*records_: tuple[float, str, str]) -> ClosedWindow:
    records = [scored(1.0, rel_error=e, version=v, species=s) for e, v, s in records_]
    return ClosedWindow.of(T0, T0 + timedelta(minutes=1), records, ErrorKind.RELATIVE)


def _outcome(window: ClosedWindow, verdict: WindowVerdict = WindowVerdict.OK) -> WindowOutcome:
    return WindowOutcome(window=window, version="2", verdict=verdict, reason="why", drift=None)


@pytest.fixture
def store(tmp_path: Path) -> ReportStore:
    return ReportStore(
        Settings(stack_state_dir=tmp_path, monitor_error_threshold=0.1), FISH.project
    )


def _metric_values(store: ReportStore, run_id: object) -> dict[str, float]:
    run = store.workspace.get_run(store.project.id, run_id)
    values = {}
    for result in run.metric_results.values():
        location = result.metric_value_location
        if location.metric.params["type"].endswith("MeanValue"):
            values[location.metric.params["column"]] = result.value
    return values


def test_a_window_is_recorded_with_its_errors_by_version_and_species(store: ReportStore) -> None:
    window = _window((0.1, "1", "salmon"), (0.3, "2", "walleye"), (0.2, "2", "salmon"))
    store.record(_outcome(window, WindowVerdict.FIRED))
    runs = store.workspace.list_runs(store.project.id)
    assert len(runs) == 1
    run = store.workspace.get_run(store.project.id, runs[0])
    assert run.name == "2026-11-25 12:00-12:01 UTC · v2 · fired: error"
    assert set(run.tags) == {dashboard.WINDOW_TAG, "v2", "fired"}
    assert run.metadata["window_end"] == (T0 + timedelta(minutes=1)).isoformat()
    values = _metric_values(store, runs[0])
    assert values[dashboard.version_column("1")] == pytest.approx(0.1)
    assert values[dashboard.version_column("2")] == pytest.approx(0.25)
    assert values[dashboard.segment_column("salmon")] == pytest.approx(0.15)
    assert values[dashboard.segment_column("walleye")] == pytest.approx(0.3)
    assert values[dashboard.THRESHOLD_COLUMN] == pytest.approx(0.1)


def test_the_panels_exist_from_the_start_and_gain_a_series_per_new_version(
    store: ReportStore, tmp_path: Path
) -> None:
    def panels() -> dict[str, list[str]]:
        model = store.workspace.get_dashboard(store.project.id)
        return {p.title: [v.legend for v in p.values] for p in model.panels}

    assert set(panels()) == {
        dashboard.BY_VERSION,
        dashboard.BY_SEGMENT,
        dashboard.DRIFT_SHARE,
        dashboard.ITEMS,
        dashboard.COVERAGE,
        dashboard.ESTIMATE,
    }
    store.record(_outcome(_window((0.1, "1", "salmon"), (0.3, "2", "walleye"))))
    store.record(_outcome(_window((0.1, "10", "salmon"))))
    assert panels()[dashboard.BY_VERSION] == ["v1", "v2", "v10", "threshold 0.10"]
    assert panels()[dashboard.BY_SEGMENT] == ["salmon", "walleye", "threshold 0.10"]
    # A restarted monitor finds the panels and adds nothing twice.
    again = ReportStore(
        Settings(stack_state_dir=tmp_path, monitor_error_threshold=0.1), FISH.project
    )
    assert again.dashboard.ensure(["2"], ["salmon"]) is False
    assert panels()[dashboard.BY_VERSION] == ["v1", "v2", "v10", "threshold 0.10"]
    assert len(Workspace.create(str(store.workspace_dir)).search_project("fish-weight")) == 1


def test_a_window_s_truth_coverage_is_recorded_and_plotted_per_segment(store: ReportStore) -> None:
    book = CoverageBook(60.0, join_window_s=60.0)
    fish = [scored(i, species="salmon") for i in range(8)]
    fish += [scored(i, species="walleye") for i in range(2)]
    for offset, item in enumerate(fish):
        book.predicted(item.prediction, 0, offset)
    for item in fish[:6]:
        book.joined(item)
    coverage = book.close(T0)
    window = _window((0.1, "2", "salmon"))
    store.record(
        WindowOutcome(
            window, "2", WindowVerdict.NOT_JUDGED, coverage.note(0.8) or "", None, coverage, 0.2
        )
    )
    runs = store.workspace.list_runs(store.project.id)
    [covered] = [
        r
        for r in runs
        if dashboard.COVERAGE_TAG in store.workspace.get_run(store.project.id, r).tags
    ]
    values = _metric_values(store, covered)
    assert values[dashboard.coverage_column(dashboard.COVERAGE_ALL)] == pytest.approx(0.6)
    assert values[dashboard.coverage_column("salmon")] == pytest.approx(0.75)
    assert values[dashboard.coverage_column("walleye")] == pytest.approx(0.0)
    assert values[dashboard.ESTIMATED_COLUMN] == pytest.approx(0.2)
    assert values[dashboard.MEASURED_COLUMN] == pytest.approx(0.1)
    model = store.workspace.get_dashboard(store.project.id)
    [panel] = [p for p in model.panels if p.title == dashboard.COVERAGE]
    assert [v.legend for v in panel.values] == [
        "coverage all",
        "coverage salmon",
        "coverage walleye",
    ]
