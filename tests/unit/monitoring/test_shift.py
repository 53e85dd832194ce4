"""Where a segment's change began inside its evidence (issue 26)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from monitoring.evidence import find_shift
from tests.unit.monitoring.scored import T0

THRESHOLD = 0.10


def _times(n: int) -> list[datetime]:
    return [T0 + timedelta(seconds=0.5 * i) for i in range(n)]


def test_a_change_in_the_middle_of_the_evidence_is_found_at_its_first_item() -> None:
    rng = np.random.default_rng(0)
    errors = [*np.abs(rng.normal(0, 0.06, 15)), *(0.26 + np.abs(rng.normal(0, 0.05, 15)))]
    shift = find_shift(_times(30), errors, THRESHOLD)
    assert shift is not None
    assert shift.at == T0 + timedelta(seconds=0.5 * 15)
    assert (shift.before, shift.after) == (15, 15)
    assert shift.p_value < 0.01
    assert "change-point" in shift.reason()


def test_the_order_of_the_items_is_their_event_time() -> None:
    times, errors = _times(30), [0.05] * 10 + [0.3] * 20
    shuffled = list(zip(times, errors, strict=True))[::-1]
    shift = find_shift([t for t, _ in shuffled], [e for _, e in shuffled], THRESHOLD)
    assert shift is not None
    assert shift.at == times[10]


def test_evidence_wholly_on_one_law_has_no_change() -> None:
    rng = np.random.default_rng(1)
    new_law = list(0.26 + np.abs(rng.normal(0, 0.05, 40)))
    old_law = list(np.abs(rng.normal(0, 0.06, 40)))
    assert find_shift(_times(40), new_law, THRESHOLD) is None
    assert find_shift(_times(40), old_law, THRESHOLD) is None


def test_too_few_items_on_either_side_is_no_change() -> None:
    assert find_shift(_times(5), [0.01, 0.01, 0.5, 0.5, 0.5], THRESHOLD) is None
