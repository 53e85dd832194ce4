"""Segments are bounded in the monitor's metrics and reports (issue 21)."""

from __future__ import annotations

import threading
from datetime import timedelta

from monitoring import metrics
from monitoring.segments import OTHER, SegmentLabels
from monitoring.windows import ClosedWindow
from tests.unit.monitoring.scored import T0, scored
from tidemark.project.spec import ErrorKind


def test_segments_beyond_the_bound_share_one_label() -> None:
    labels = SegmentLabels(2)
    assert [labels.label(s) for s in ("salmon", "pike", "x1", "salmon", "x2")] == [
        "salmon",
        "pike",
        OTHER,
        "salmon",
        OTHER,
    ]
    grouped = labels.group(["salmon", "a", "b"], lambda s: s)
    assert grouped == {"salmon": ["salmon"], OTHER: ["a", "b"]}


def _series(gauge_name: str, project: str = "") -> dict[str, float]:
    """The gauge's values by segment, of ``project`` (the unnamed one of a test's thread)."""
    return {
        sample.labels["segment"]: sample.value
        for family in metrics.REGISTRY.collect()
        if family.name == gauge_name
        for sample in family.samples
        if sample.labels["project"] == project
    }


def test_window_gauges_name_a_bounded_set_and_drop_segments_no_longer_seen() -> None:
    metrics.bound_segments(2)
    try:
        strays = [scored(i, species=f"stray{i}") for i in range(20)]
        first = ClosedWindow.of(
            T0,
            T0 + timedelta(seconds=60),
            [scored(0), scored(1, species="pike"), *strays],
            ErrorKind.RELATIVE,
        )
        metrics.observe_window(first)
        counts = _series("tidemark_monitor_window_count")
        assert counts == {"all": 22.0, "salmon": 1.0, "pike": 1.0, OTHER: 20.0}
        later = ClosedWindow.of(
            T0 + timedelta(seconds=60),
            T0 + timedelta(seconds=120),
            [scored(61)],
            ErrorKind.RELATIVE,
        )
        metrics.observe_window(later)
        assert _series("tidemark_monitor_window_count") == {"all": 1.0, "salmon": 1.0}
    finally:
        metrics.bound_segments(50)


def test_each_projects_monitor_sets_its_own_series_from_its_own_thread() -> None:
    # One process judges every project, each on its loop's thread: a window of one project
    # neither overwrites nor removes the other's series, and each bounds its own segments.
    end = T0 + timedelta(seconds=60)
    windows = {
        "fish-a": ClosedWindow.of(
            T0, end, [scored(0), scored(1, species="pike")], ErrorKind.RELATIVE
        ),
        "fish-b": ClosedWindow.of(
            T0, end, [scored(2, species="perch"), scored(3, species="bream")], ErrorKind.RELATIVE
        ),
    }
    bounds = {"fish-a": 50, "fish-b": 1}
    later = ClosedWindow.of(
        T0 + timedelta(seconds=60), T0 + timedelta(seconds=120), [scored(61)], ErrorKind.RELATIVE
    )

    def judge(project: str) -> None:
        metrics.watch(project, bounds[project])
        metrics.observe_window(windows[project])
        metrics.QUEUED.set(len(project))

    threads = [threading.Thread(target=judge, args=(p,)) for p in windows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = {p: _series("tidemark_monitor_window_count", p) for p in windows}
    assert counts == {
        "fish-a": {"all": 2.0, "salmon": 1.0, "pike": 1.0},
        "fish-b": {"all": 2.0, "perch": 1.0, OTHER: 1.0},
    }
    queued = metrics.REGISTRY.get_sample_value
    assert queued("tidemark_monitor_incidents_queued", {"project": "fish-a"}) == 6.0
    # A later window of fish-a drops its absent segments; fish-b's series stay.
    later_judged = threading.Thread(
        target=lambda: (metrics.watch("fish-a", 50), metrics.observe_window(later))
    )
    later_judged.start()
    later_judged.join()
    assert _series("tidemark_monitor_window_count", "fish-a") == {"all": 1.0, "salmon": 1.0}
    assert _series("tidemark_monitor_window_count", "fish-b") == counts["fish-b"]
