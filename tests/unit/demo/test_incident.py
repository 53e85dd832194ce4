"""The story of a shift, from scored fish, retrain requests and promotions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from demo.incident import summarize
from demo.observer import Promotion
from tests.unit.monitoring.scored import T0, retrain_request, scored

SHIFT = T0 + timedelta(seconds=120)
END = T0 + timedelta(seconds=480)


def test_the_story_of_a_shift_and_the_recovery() -> None:
    fish = (
        [scored(s, rel_error=0.05) for s in range(0, 120)]
        + [scored(s, rel_error=0.2, species="walleye") for s in range(120, 250)]
        + [scored(s, rel_error=0.06, species="walleye", version="2") for s in range(250, 480)]
        + [scored(s, rel_error=0.3, version="2") for s in range(480, 540)]  # next shift
    )
    promotion = Promotion("2", T0 + timedelta(seconds=240))
    incident = summarize(
        scored=fish,
        requests=[retrain_request(120), retrain_request(600)],
        promotions=[Promotion("9", T0), promotion],
        first_prediction={"2": T0 + timedelta(seconds=245)},
        old_version="1",
        shift_wall=SHIFT,
        shift_event=SHIFT,
        end_event=END,
        threshold=0.1,
        window_s=60,
    )
    assert incident.crossed is not None
    assert incident.crossed.start == SHIFT
    assert [r.window_start for r in incident.requests] == [SHIFT]
    assert incident.promoted == promotion
    assert incident.since_shift(incident.first_prediction) == 125
    assert incident.before is not None
    assert incident.before.judged == pytest.approx(0.05)
    assert incident.during is not None
    assert incident.during.n == 130
    assert incident.after is not None
    assert incident.after.judged == pytest.approx(0.06)
    assert [w.start - T0 for w in incident.recovered] == [
        timedelta(seconds=s) for s in (300, 360, 420)
    ]
    text = "\n".join(incident.lines())
    assert "promoted: v2" in text
    assert "(1 requests for this incident)" in text


def test_no_reaction_is_told_as_such() -> None:
    incident = summarize(
        scored=[scored(s, rel_error=0.05) for s in range(0, 300)],
        requests=[],
        promotions=[],
        first_prediction={},
        old_version="1",
        shift_wall=SHIFT,
        shift_event=SHIFT,
        end_event=None,
        threshold=0.1,
        window_s=60,
    )
    assert incident.crossed is None
    assert incident.requests == ()
    assert incident.promoted is None
    assert incident.after is None
    assert incident.recovered == ()
    assert "retrain triggered: never" in incident.lines()


def test_the_story_tells_what_the_windows_show_whichever_version_scored_them() -> None:
    # On a used stack v3 (not the demo's v1) scored the shift until v4 was promoted.
    fish = (
        [scored(s, rel_error=0.05) for s in range(0, 120)]
        + [scored(s, rel_error=0.22, species="walleye", version="3") for s in range(120, 300)]
        + [scored(s, rel_error=0.06, species="walleye", version="4") for s in range(300, 480)]
    )
    incident = summarize(
        scored=fish,
        requests=[retrain_request(180)],
        promotions=[Promotion("4", T0 + timedelta(seconds=290))],
        first_prediction={"4": T0 + timedelta(seconds=300)},
        old_version="1",
        shift_wall=SHIFT,
        shift_event=SHIFT,
        end_event=END,
        threshold=0.1,
        window_s=60,
    )
    assert incident.crossed is not None
    assert incident.crossed.start == SHIFT
    assert incident.during is not None
    assert incident.during.n == 180
    assert incident.during.judged == pytest.approx(0.22)
    assert incident.after is not None
    assert incident.after.judged == pytest.approx(0.06)
    text = "\n".join(incident.lines())
    assert "error crossed 0.10" in text
    assert "promoted: v4" in text
