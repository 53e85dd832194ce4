"""Tumbling event-time windows: assignment, watermark, lateness, gaps, offsets, resume."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from monitoring.windows import Admission, Resume, TumblingWindows
from tests.unit.monitoring.scored import T0, WHOLE_FISH, scored
from tidemark.judging.scored import WHOLE, scored_by, scored_metrics
from tidemark.project.contracts import Contracts
from tidemark.project.spec import ErrorKind


def test_error_stats_follow_the_tutorial_definitions() -> None:
    records = [scored(0, rel_error=0.1, weight_kg=2.0), scored(1, rel_error=0.3, weight_kg=4.0)]
    stats = scored_metrics(records, ErrorKind.RELATIVE)
    assert stats.n == 2
    assert stats.mae == pytest.approx((0.2 + 1.2) / 2)
    assert stats.rmse == pytest.approx(math.sqrt((0.2**2 + 1.2**2) / 2))
    assert stats.judged == pytest.approx(0.2)


def test_an_absolute_error_is_judged_in_the_targets_unit() -> None:
    records = [scored(0, rel_error=0.1, weight_kg=2.0), scored(1, rel_error=0.3, weight_kg=4.0)]
    assert scored_metrics(records, ErrorKind.ABSOLUTE).judged == pytest.approx((0.2 + 1.2) / 2)


def test_a_project_without_a_segment_has_one_segment_per_window() -> None:
    whole = Contracts(WHOLE_FISH)
    windows = TumblingWindows(60, 0, judged_by=ErrorKind.RELATIVE)
    windows.add(scored(1, species="salmon", rel_error=0.05, contracts=whole))
    windows.add(scored(2, species="walleye", rel_error=0.25, contracts=whole))
    [closed] = windows.flush()
    assert list(closed.by_segment) == [WHOLE]
    assert closed.by_segment[WHOLE].judged == pytest.approx(0.15)


def test_windows_are_aligned_on_the_epoch() -> None:
    windows = TumblingWindows(60, 0, judged_by=ErrorKind.RELATIVE)
    assert windows.window_start(T0 + timedelta(seconds=59.9)) == T0
    assert windows.window_start(T0 + timedelta(seconds=60)) == T0 + timedelta(seconds=60)


def test_a_window_closes_only_when_the_watermark_passes_its_end() -> None:
    windows = TumblingWindows(60, allowed_lateness_s=10, judged_by=ErrorKind.RELATIVE)
    for second in range(0, 60, 5):
        assert windows.add(scored(second)) is Admission.ADDED
    windows.add(scored(65))
    assert windows.close_due() == []  # watermark 55 s
    windows.add(scored(70))
    [closed] = windows.close_due()  # watermark 60 s
    assert (closed.start, closed.end) == (T0, T0 + timedelta(seconds=60))
    assert closed.overall.n == 12
    assert windows.open_windows == 1


def test_stats_are_split_by_species_and_by_model_version() -> None:
    windows = TumblingWindows(60, 0, judged_by=ErrorKind.RELATIVE)
    windows.add(scored(1, species="salmon", rel_error=0.05, version="1"))
    windows.add(scored(2, species="walleye", rel_error=0.25, version="1"))
    windows.add(scored(3, species="walleye", rel_error=0.15, version="2"))
    windows.add(scored(61))
    [closed] = windows.close_due()
    assert closed.overall.judged == pytest.approx(0.15)
    assert closed.by_segment["salmon"].n == 1
    assert closed.by_segment["walleye"].judged == pytest.approx(0.20)
    assert closed.by_version["1"].judged == pytest.approx(0.15)
    assert closed.by_version["2"].n == 1
    assert [r.prediction.model_version for r in scored_by(closed.records, "2")] == ["2"]


def test_out_of_order_records_within_the_lateness_still_count() -> None:
    windows = TumblingWindows(60, allowed_lateness_s=10, judged_by=ErrorKind.RELATIVE)
    windows.add(scored(50))
    windows.add(scored(68))  # watermark 58 s: the first window stays open
    assert windows.add(scored(55)) is Admission.ADDED
    windows.add(scored(75))
    [closed] = windows.close_due()
    assert closed.overall.n == 2


def test_a_record_for_a_closed_window_is_late_and_not_added() -> None:
    windows = TumblingWindows(60, allowed_lateness_s=0, judged_by=ErrorKind.RELATIVE)
    windows.add(scored(10), offset=0)
    windows.add(scored(61), offset=1)
    [closed] = windows.close_due()
    assert windows.add(scored(30), offset=2) is Admission.LATE
    assert closed.overall.n == 1
    assert windows.close_due() == []


def test_a_gap_in_the_stream_yields_no_empty_windows() -> None:
    windows = TumblingWindows(60, 0, judged_by=ErrorKind.RELATIVE)
    windows.add(scored(10))
    windows.add(scored(250))  # three empty windows in between
    closed = windows.close_due()
    assert [w.start for w in closed] == [T0]
    windows.add(scored(300))
    assert [w.start for w in windows.close_due()] == [T0 + timedelta(seconds=240)]


def test_several_windows_close_at_once_in_time_order() -> None:
    windows = TumblingWindows(10, 0, judged_by=ErrorKind.RELATIVE)
    for second in (25, 5, 15):
        windows.add(scored(second))
    windows.add(scored(40))
    assert [w.start - T0 for w in windows.close_due()] == [
        timedelta(seconds=s) for s in (0, 10, 20)
    ]


def test_nothing_closes_before_any_record_and_flush_closes_everything() -> None:
    windows = TumblingWindows(60, 30, judged_by=ErrorKind.RELATIVE)
    assert windows.watermark is None
    assert windows.close_due() == []
    windows.add(scored(10))
    windows.add(scored(70))
    assert windows.close_due() == []
    assert [w.start for w in windows.flush()] == [T0, T0 + timedelta(seconds=60)]
    assert windows.open_windows == 0
    assert windows.add(scored(100)) is Admission.LATE


def test_commit_offsets_stop_at_the_first_record_of_an_open_window() -> None:
    windows = TumblingWindows(60, 0, judged_by=ErrorKind.RELATIVE)
    windows.add(scored(10), partition=0, offset=100)
    windows.add(scored(20), partition=1, offset=7)
    windows.add(scored(61), partition=0, offset=101)
    assert windows.commit_offsets() == {0: 100, 1: 7}
    windows.close_due()
    assert windows.commit_offsets() == {0: 101, 1: 8}
    windows.add(scored(125), partition=0, offset=102)
    windows.close_due()
    assert windows.commit_offsets() == {0: 102, 1: 8}
    windows.skip(partition=1, offset=8)  # an invalid record, dead-lettered
    assert windows.commit_offsets() == {0: 102, 1: 9}


def test_after_a_restart_records_of_judged_windows_are_replays_not_late() -> None:
    resume = Resume(closed_until=T0 + timedelta(seconds=60), seen_until={0: 50})
    windows = TumblingWindows(60, 0, resume=resume, judged_by=ErrorKind.RELATIVE)
    assert windows.watermark == T0 + timedelta(seconds=60)
    assert windows.add(scored(30), offset=40) is Admission.REPLAYED
    assert windows.add(scored(70), offset=45) is Admission.ADDED
    assert windows.add(scored(31), offset=60) is Admission.LATE
    assert windows.seen_until() == {0: 61}


def test_the_marks_committed_bring_a_new_run_back_where_this_one_stopped() -> None:
    windows = TumblingWindows(60, 0, judged_by=ErrorKind.RELATIVE)
    windows.add(scored(10), partition=0, offset=100)
    windows.add(scored(20), partition=1, offset=7)
    windows.add(scored(61), partition=0, offset=101)
    windows.close_due()
    marks = windows.marks()
    assert {p: offset for p, (offset, _) in marks.items()} == {0: 101, 1: 8}
    resume = Resume.of_metadata({p: metadata for p, (_, metadata) in marks.items()})
    assert resume == Resume(closed_until=T0 + timedelta(seconds=60), seen_until={0: 102, 1: 8})
    again = TumblingWindows(60, 0, resume=resume, judged_by=ErrorKind.RELATIVE)
    assert again.add(scored(30), partition=1, offset=7) is Admission.REPLAYED
    assert again.add(scored(62), partition=0, offset=101) is Admission.ADDED


def test_metadata_that_is_not_the_windows_own_resumes_nothing() -> None:
    assert Resume.of_metadata({}) is None
    assert Resume.of_metadata({0: "", 1: "not json"}) is None


@pytest.mark.parametrize(("size", "lateness"), [(0, 0), (-1, 0), (60, -1)])
def test_invalid_window_settings_are_refused(size: float, lateness: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        TumblingWindows(size, lateness, judged_by=ErrorKind.RELATIVE)
