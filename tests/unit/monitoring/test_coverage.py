"""Truth coverage per window and segment, the "not judged" note, and the silence incidents."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from monitoring.coverage import ALL, CoverageBook, coverage_line, coverage_of, quantile
from monitoring.silence import SilenceState, TruthSilence
from tests.unit.monitoring.scored import T0, scored

WINDOW_S = 60.0


def book_with(salmon: int, joined: int, walleye: int, clock_s: float = 61.0) -> CoverageBook:
    """The first window with ``salmon`` and ``walleye`` predictions, ``joined`` salmon joined,
    and the predictions' clock at ``clock_s``."""
    book = CoverageBook(WINDOW_S, join_window_s=60.0)
    fish = [scored(i * 0.5, species="salmon") for i in range(salmon)]
    fish += [scored(30 + i * 0.5, species="walleye") for i in range(walleye)]
    for offset, item in enumerate(fish):
        book.predicted(item.prediction, 0, offset)
    for item in fish[:joined]:
        book.joined(item)
    book.predicted(scored(clock_s).prediction, 0, len(fish))
    return book


def test_a_window_counts_predicted_joined_and_waiting_items_per_segment() -> None:
    coverage = book_with(salmon=40, joined=30, walleye=20).close(T0)
    assert (coverage.overall.predicted, coverage.overall.joined) == (60, 30)
    assert coverage.overall.waiting == 30
    assert coverage.by_segment["salmon"].waiting == 10
    assert coverage.by_segment["walleye"].share == 0.0
    # scored(): joined two seconds after the prediction.
    assert coverage.by_segment["salmon"].delay_p50_s == pytest.approx(2.0)
    assert coverage.by_segment["walleye"].delay_p95_s is None
    assert coverage.note(0.8) == "not judged: coverage 50 % (salmon 75 %, walleye 0 %)"
    assert coverage.short(0.8) == {ALL: 0.5, "salmon": 0.75, "walleye": 0.0}


def test_a_window_whose_truth_came_is_covered_and_its_late_items_are_not_counted_again() -> None:
    book = book_with(salmon=40, joined=40, walleye=0)
    coverage = book.close(T0)
    assert coverage.note(0.8) is None
    assert coverage.overall.share == 1.0
    # A prediction of that window re-read (at-least-once) counts in no window.
    book.predicted(scored(1.0).prediction, 0, 99)
    assert list(book.windows) == [T0 + timedelta(seconds=60)]


def test_items_still_without_truth_once_the_join_window_passed_are_expired() -> None:
    coverage = book_with(salmon=10, joined=5, walleye=0, clock_s=125.0).close(T0)
    assert (coverage.overall.waiting, coverage.overall.expired) == (0, 5)


def test_a_window_no_truth_reached_is_settled_once_the_join_window_passed() -> None:
    book = book_with(salmon=10, joined=0, walleye=5, clock_s=100.0)
    assert book.settle() == []
    book.predicted(scored(121.0).prediction, 0, 50)
    [settled] = book.settle()
    assert settled.start == T0
    assert (settled.overall.predicted, settled.overall.expired) == (15, 15)
    assert settled.note(0.8) == "not judged: coverage 0 % (salmon 0 %, walleye 0 %)"


def test_predictions_are_committed_up_to_the_first_one_in_a_window_still_held() -> None:
    book = CoverageBook(WINDOW_S, join_window_s=60.0)
    book.predicted(scored(1.0).prediction, 0, 10)
    book.predicted(scored(70.0).prediction, 0, 11)
    book.predicted(scored(71.0).prediction, 1, 4)
    assert book.commit_offsets() == {0: 10, 1: 4}
    book.close(T0)
    assert book.commit_offsets() == {0: 11, 1: 4}


def test_the_quantiles_are_nearest_rank() -> None:
    assert quantile([], 0.5) is None
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([float(i) for i in range(1, 101)], 0.95) == 95.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_segment_whose_truth_stops_while_its_predictions_flow_is_silent_until_it_returns() -> (
    None
):
    silence = TruthSilence(silence_s=30.0, min_items=5)
    for s in range(0, 20):
        for segment in ("salmon", "walleye"):
            silence.predicted(segment, at(s))
            silence.joined(segment, at(s))
    # From 20 s on, walleye truths stop; both segments' predictions go on.
    for s in range(20, 60):
        silence.predicted("salmon", at(s))
        silence.predicted("walleye", at(s))
        silence.joined("salmon", at(s))
        changes = silence.check()
        if changes:
            break
    [opened] = changes
    assert (opened.segment, opened.change, opened.last_truth) == (
        "walleye",
        SilenceState.OPENED,
        at(19),
    )
    # Opened once the fifth walleye after the last truth was 30 s old.
    assert opened.at == at(54)
    assert silence.check() == []
    silence.joined("walleye", at(55))
    [closed] = silence.check()
    assert (closed.segment, closed.change) == ("walleye", SilenceState.CLOSED)
    assert silence.silent == set()


def test_predictions_that_stop_or_a_truth_lost_now_and_then_open_nothing() -> None:
    silence = TruthSilence(silence_s=30.0, min_items=5)
    for s in range(0, 100):
        silence.predicted("salmon", at(s))
        # One salmon truth in ten never comes; walleye stop at 20 s, their truths all joined.
        if s % 10 != 9:
            silence.joined("salmon", at(s))
        if s < 20:
            silence.predicted("walleye", at(s))
            silence.joined("walleye", at(s))
        assert silence.check() == []


def test_no_truth_at_all_makes_the_whole_stream_silent() -> None:
    silence = TruthSilence(silence_s=30.0, min_items=5)
    for s in range(0, 40):
        silence.predicted("salmon", at(s))
    assert {(c.segment, c.change) for c in silence.check()} == {
        ("salmon", SilenceState.OPENED),
        (ALL, SilenceState.OPENED),
    }


def test_the_report_replays_the_coverage_of_each_window_from_both_topics() -> None:
    fish = [scored(i, species="salmon") for i in range(0, 120, 2)]
    walleye = [scored(i + 1, species="walleye") for i in range(0, 60, 2)]
    first, second = coverage_of(
        [f.prediction for f in fish + walleye], fish, WINDOW_S, join_window_s=60.0
    )
    assert (first.overall.predicted, first.overall.joined) == (60, 30)
    assert second.overall.share == 1.0
    assert coverage_line(first, 0.8) == (
        "2026-11-25 12:00:00 predicted 60 joined 30 waiting 30 expired 0, "
        "delay p50 2.0 s p95 2.0 s; salmon 30/30 walleye 0/30; "
        "not judged: coverage 50 % (walleye 0 %)"
    )
