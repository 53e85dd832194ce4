"""The simulator's schedule: what it sends, in which order, with which timestamps."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from streaming.simulator import SimulationOptions, Simulator, scenario_fish
from tidemark.scenario import FishRecord, load_scenario
from tidemark.schemas import Measurement, Weight

START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def _fish(count: int) -> list[FishRecord]:
    return [
        FishRecord("p", f"fish-{i}", "salmon", 70.0 + i % 5, 17.0, 4.0 + i % 3)
        for i in range(count)
    ]


def _run(count: int, **options: object) -> tuple[list[Measurement | Weight], Simulator]:
    sent: list[Measurement | Weight] = []
    simulator = Simulator(
        _fish(count),
        SimulationOptions.model_validate(options),
        sent.append,
        sent.append,
        sleep=lambda _: None,
    )
    simulator.run()
    return sent, simulator


def test_event_time_weights_follow_their_measurement_after_the_delay() -> None:
    sent, simulator = _run(10, event_time_start=START, event_interval_s=1.0, label_delay_s=2.5)
    measurements = [m for m in sent if isinstance(m, Measurement)]
    weights = [w for w in sent if isinstance(w, Weight)]
    assert [m.measured_at for m in measurements] == [
        START + timedelta(seconds=i) for i in range(10)
    ]
    assert len(weights) == 10
    by_id = {m.fish_id: m for m in measurements}
    for weight in weights:
        assert weight.weighed_at == by_id[weight.fish_id].measured_at + timedelta(seconds=2.5)
    # Every record is sent once its event time has come: the stream is ordered by event time.
    times = [m.measured_at if isinstance(m, Measurement) else m.weighed_at for m in sent]
    assert times == sorted(times)
    assert simulator.stats.measurements == 10
    assert simulator.stats.weights == 10


def test_weights_carry_the_true_weight_and_species() -> None:
    sent, _ = _run(3, event_time_start=START)
    weights = {w.fish_id: w for w in sent if isinstance(w, Weight)}
    for record in _fish(3):
        assert weights[record.fish_id].weight_kg == record.weight_kg
        assert weights[record.fish_id].species == record.species


def test_lost_weights_are_a_seeded_fraction() -> None:
    first, simulator = _run(2_000, event_time_start=START, missing_weight_fraction=0.25, seed=3)
    again, _ = _run(2_000, event_time_start=START, missing_weight_fraction=0.25, seed=3)
    weights = [w.fish_id for w in first if isinstance(w, Weight)]
    assert weights == [w.fish_id for w in again if isinstance(w, Weight)]
    assert 0.2 < simulator.stats.weights_dropped / 2_000 < 0.3
    assert simulator.stats.weights + simulator.stats.weights_dropped == 2_000


def test_limit_stops_early() -> None:
    sent, simulator = _run(100, event_time_start=START, limit=7)
    assert simulator.stats.measurements == 7
    assert len([m for m in sent if isinstance(m, Measurement)]) == 7


def test_real_time_stamps_come_from_the_clock_and_weights_wait_for_it() -> None:
    now = [START]

    def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    sent: list[Measurement | Weight] = []
    options = SimulationOptions(label_delay_s=3.0)
    Simulator(_fish(2), options, sent.append, sent.append, clock=lambda: now[0], sleep=sleep).run()
    measurements = [m for m in sent if isinstance(m, Measurement)]
    weights = [w for w in sent if isinstance(w, Weight)]
    assert {m.measured_at for m in measurements} == {START}
    assert {w.weighed_at for w in weights} == {START + timedelta(seconds=3)}
    assert now[0] >= START + timedelta(seconds=3)


def test_looping_a_scenario_never_repeats_a_fish_id() -> None:
    scenario = load_scenario()
    fish = itertools.islice(scenario_fish(scenario, 0, True), scenario.count + 10)
    ids = [f.fish_id for f in fish]
    assert len(set(ids)) == len(ids)
