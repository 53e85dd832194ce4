"""A species is judged on enough fish, pooled over its short windows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring.evidence import SegmentPool
from tests.unit.monitoring.scored import T0, WHOLE_FISH, scored
from tidemark.judging.scored import WHOLE
from tidemark.project.contracts import Contracts, Scored
from tidemark.project.spec import ErrorKind


def fish(window: int, count: int, species: str = "walleye", rel_error: float = 0.2) -> list[Scored]:
    return [
        scored(60 * window + i * 0.1, species=species, rel_error=rel_error) for i in range(count)
    ]


def test_a_species_with_enough_fish_is_judged_on_its_window_alone() -> None:
    pooled = SegmentPool(min_count=30, max_windows=10, judged_by=ErrorKind.RELATIVE)
    [salmon, walleye] = pooled.add(
        T0, fish(0, 40, "salmon", 0.05) + fish(0, 30, "walleye", 0.2), frozenset({"salmon"})
    )
    assert (salmon.segment, salmon.stats.n, salmon.unseen) == ("salmon", 40, False)
    assert salmon.stats.judged == pytest.approx(0.05)
    assert (walleye.segment, walleye.since, walleye.unseen) == ("walleye", T0, True)
    assert pooled.pending() == {}


def test_a_short_species_accumulates_windows_until_it_has_enough() -> None:
    pooled = SegmentPool(min_count=30, max_windows=10, judged_by=ErrorKind.RELATIVE)
    assert pooled.add(T0, fish(0, 12), None) == []
    assert pooled.add(T0 + timedelta(seconds=60), fish(1, 12), None) == []
    assert pooled.pending() == {"walleye": 24}
    [walleye] = pooled.add(T0 + timedelta(seconds=120), fish(2, 12), None)
    assert (walleye.since, walleye.stats.n) == (T0, 36)
    # Judged: the next window starts afresh.
    assert pooled.add(T0 + timedelta(seconds=180), fish(3, 12), None) == []
    assert pooled.pending() == {"walleye": 12}


def test_only_the_last_windows_are_pooled() -> None:
    pooled = SegmentPool(min_count=30, max_windows=3, judged_by=ErrorKind.RELATIVE)
    for window in range(5):
        assert pooled.add(T0 + timedelta(seconds=60 * window), fish(window, 5), None) == []
    assert pooled.pending() == {"walleye": 15}


def test_a_new_production_version_starts_every_species_afresh() -> None:
    pooled = SegmentPool(min_count=30, max_windows=10, judged_by=ErrorKind.RELATIVE)
    assert pooled.add(T0, fish(0, 20), None, version="1") == []
    assert pooled.add(T0 + timedelta(seconds=60), fish(1, 20), None, version="2") == []
    assert pooled.pending() == {"walleye": 20}
    [walleye] = pooled.add(T0 + timedelta(seconds=120), fish(2, 20), None, version="2")
    assert walleye.since == T0 + timedelta(seconds=60)


def test_a_fish_flagged_unknown_makes_its_species_unseen() -> None:
    unknown = [scored(i * 0.1, species="pike", rel_error=0.2, known=False) for i in range(30)]
    [pike] = SegmentPool(min_count=30, max_windows=3, judged_by=ErrorKind.RELATIVE).add(
        T0, unknown, None
    )
    assert pike.unseen


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SegmentPool(min_count=0, max_windows=3, judged_by=ErrorKind.RELATIVE)


def test_a_project_without_a_segment_is_judged_as_one_segment() -> None:
    whole = Contracts(WHOLE_FISH)
    pooled = SegmentPool(min_count=30, max_windows=10, judged_by=ErrorKind.RELATIVE)
    records = [
        scored(i * 0.1, species=s, rel_error=0.2, contracts=whole)
        for i, s in enumerate(["salmon", "walleye"] * 10)
    ]
    assert pooled.add(T0, records, None) == []
    assert pooled.pending() == {WHOLE: 20}
    [judged] = pooled.add(T0 + timedelta(seconds=60), records, frozenset())
    assert (judged.segment, judged.stats.n, judged.unseen) == (WHOLE, 40, False)
    assert judged.stats.judged == pytest.approx(0.2)
