"""The demo's pace: each phase lasts a number of windows, the shift at least the retrain's time."""

from __future__ import annotations

import pytest

from demo.run import demo_project, phase_rates
from tidemark.simulation.library import load_scenario


def test_each_phase_lasts_its_windows() -> None:
    rates = phase_rates(load_scenario(demo_project()), [3, 6, 2], window_s=60, min_shift_s=0)
    assert rates == pytest.approx([1500 / 180, 1500 / 360, 1000 / 120])


def test_the_shift_lasts_at_least_the_minimum() -> None:
    rates = phase_rates(load_scenario(demo_project()), [3, 6, 3], window_s=15, min_shift_s=240)
    assert rates[1] == pytest.approx(1500 / 240)
    assert rates[0] == pytest.approx(1500 / 45)


def test_one_count_per_phase() -> None:
    with pytest.raises(ValueError, match="need 3 window counts"):
        phase_rates(load_scenario(demo_project()), [3, 6], window_s=60, min_shift_s=0)
