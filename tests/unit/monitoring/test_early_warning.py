"""The early warning: each window's error estimated from its predictions, before its truth."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring.early_warning import Basis, EarlyWarning, Provisional
from monitoring.production import Production, held_out_errors
from monitoring.windows import ClosedWindow
from tests.unit.monitoring.scored import FISH, T0, scored
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind

V1 = Production("1", "run", None, frozenset({"salmon"}), {"salmon": 0.04})


def warning() -> EarlyWarning:
    return EarlyWarning(
        FISH.project, size_s=60.0, lateness_s=5.0, threshold=0.1, min_count=30, unseen_error=0.2
    )


def fish(window: int, species: str, count: int, rel_error: float = 0.05) -> list[Scored]:
    return [
        scored(
            60 * window + i * 0.5, species=species, rel_error=rel_error, known=species == "salmon"
        )
        for i in range(count)
    ]


def closed(window: int, records: list[Scored]) -> ClosedWindow:
    start = T0 + timedelta(seconds=60 * window)
    return ClosedWindow.of(start, start + timedelta(seconds=60), records, ErrorKind.RELATIVE)


def test_a_never_seen_segment_opens_a_provisional_incident_that_its_truth_confirms() -> None:
    early = warning()
    salmon, plaice = fish(0, "salmon", 40), fish(0, "plaice", 40, rel_error=0.3)
    for item in salmon + plaice:
        early.predicted(item.prediction)
    # The window's predictions are in once the clock is past its end by the lateness.
    assert early.due(V1) == ([], [])
    early.predicted(fish(1, "salmon", 11)[-1].prediction)
    [estimate], [opened] = early.due(V1)
    assert estimate.by_segment["plaice"].basis is Basis.UNSEEN
    assert estimate.by_segment["plaice"].error == pytest.approx(0.2)
    # Salmon: the held-out error its tags state, nothing measured yet.
    assert estimate.by_segment["salmon"].basis is Basis.HELD_OUT
    assert estimate.error == pytest.approx((0.2 * 40 + 0.04 * 40) / 80)
    assert estimate.unseen_share == pytest.approx(0.5)
    assert (opened.segment, opened.change) == ("plaice", Provisional.OPENED)

    compared, [confirmed] = early.judged(
        closed(0, salmon + plaice), "1", frozenset({"plaice"}), frozenset({"salmon", "plaice"})
    )
    assert (confirmed.segment, confirmed.change) == ("plaice", Provisional.CONFIRMED)
    assert confirmed.measured == pytest.approx(0.3)
    assert compared is not None
    assert compared.measured == pytest.approx((0.3 + 0.05) / 2)
    assert early.tracking.mean_gap == pytest.approx(abs(compared.estimated - compared.measured))
    assert early.provisional == {}
    # While the truth keeps the incident, the next plaice window warns of nothing new.
    for item in fish(1, "plaice", 40) + fish(2, "salmon", 11)[-1:]:
        early.predicted(item.prediction)
    [later], reopened = early.due(V1)
    assert later.by_segment["plaice"].error == pytest.approx(0.3)
    assert reopened == []


def test_later_windows_are_estimated_on_what_the_truth_measured() -> None:
    early = warning()
    salmon, plaice = fish(0, "salmon", 40, rel_error=0.06), fish(0, "plaice", 40, rel_error=0.3)
    early.judged(closed(0, salmon + plaice), "1", frozenset(), frozenset())
    for item in fish(1, "salmon", 40) + fish(1, "plaice", 40) + fish(2, "salmon", 11)[-1:]:
        early.predicted(item.prediction)
    [estimate], [opened] = early.due(V1)
    assert estimate.by_segment["salmon"].basis is Basis.MEASURED
    assert estimate.by_segment["salmon"].error == pytest.approx(0.06)
    # Unseen segments: what they measured on this version so far.
    assert estimate.by_segment["plaice"].error == pytest.approx(0.3)
    # A provisional incident that the truth judges without alarm is cleared.
    _, [cleared] = early.judged(
        closed(1, fish(1, "plaice", 40, 0.05)), "1", frozenset(), frozenset({"plaice"})
    )
    assert (opened.segment, cleared.change) == ("plaice", Provisional.CLEARED)


def test_a_segment_below_the_threshold_or_on_too_few_items_opens_nothing() -> None:
    early = warning()
    for item in fish(0, "salmon", 40) + fish(0, "plaice", 10) + fish(1, "salmon", 11)[-1:]:
        early.predicted(item.prediction)
    [estimate], opened = early.due(V1)
    assert estimate.by_segment["plaice"].error == pytest.approx(0.2)
    assert opened == []


def test_the_held_out_errors_come_from_the_version_s_tags() -> None:
    tags = {
        "candidate_mean_relative_error.salmon": "0.041",
        "candidate_mean_relative_error.walleye": "none",
        "candidate_mean_relative_error": "0.05",
        "heldout_n.salmon": "40",
        # A project judged by its absolute error names them after it.
        "candidate_mean_absolute_error.pike": "0.3",
    }
    assert held_out_errors(tags) == {"salmon": 0.041, "pike": 0.3}
