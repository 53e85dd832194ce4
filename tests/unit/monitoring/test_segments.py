"""Segments are bounded in the monitor's metrics and reports (issue 21)."""

from __future__ import annotations

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


def _series(gauge_name: str) -> dict[str, float]:
    return {
        sample.labels["segment"]: sample.value
        for family in metrics.REGISTRY.collect()
        if family.name == gauge_name
        for sample in family.samples
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
