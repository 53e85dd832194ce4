"""20,000 fish through the real scorer and joiner: nothing lost, nothing joined twice.

The scorer and the joiner run as real processes (``python -m tidemark score|join``) against the
session's stack, on topics and a database of each test's own. The same run survives SIGKILL of
both services and a restart of the broker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from pymongo import MongoClient

from infra.local.stack import Stack
from streaming.simulator import SimulationOptions, SimulationStats, publish, scenario_fish
from tests.integration.streaming.streams import (
    Service,
    fish_ids,
    read_topic,
    topic_size,
    wait_for,
)
from tidemark.config import Settings
from tidemark.scenario import load_scenario
from tidemark.schemas import Prediction, Scored, utc_now

FISH = 20_000
LABEL_DELAY_S = 2.0
MISSING = 0.05


def _options(rate: float | None) -> SimulationOptions:
    # Simulated event time: 100 fish per second of line time, so the run spans 200 s of it and
    # unmatched predictions expire within the run (the window is 60 s).
    return SimulationOptions(
        rate=rate,
        seed=11,
        label_delay_s=LABEL_DELAY_S,
        missing_weight_fraction=MISSING,
        limit=FISH,
        event_time_start=utc_now() - timedelta(hours=1),
        event_interval_s=0.01,
    )


def _simulate(settings: Settings, rate: float | None) -> SimulationStats:
    fish = scenario_fish(load_scenario(), seed=11, loop=True)
    return publish(settings, fish, _options(rate))


@pytest.fixture
def simulate_in_background(streams: Settings) -> Iterator[Callable[[float], threading.Thread]]:
    threads: list[threading.Thread] = []
    failures: list[BaseException] = []

    def start(rate: float) -> threading.Thread:
        def run() -> None:
            try:
                _simulate(streams, rate)
            except BaseException as error:
                failures.append(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.join(120)
    assert not failures, failures


def _training_ids(settings: Settings) -> list[str]:
    with MongoClient(settings.mongo_uri) as client:
        collection = client[settings.mongo_database][settings.mongo_collection]
        return [str(d["_id"]) for d in collection.find({}, {"_id": 1})]


def _training_count(settings: Settings) -> int:
    with MongoClient(settings.mongo_uri) as client:
        return client[settings.mongo_database][settings.mongo_collection].count_documents({})


def _wait_until_done(settings: Settings, fish: int, weighed: int, timeout_s: float) -> None:
    wait_for(
        lambda: topic_size(settings, settings.topic_predictions) >= fish,
        timeout_s,
        f"{fish} predictions",
    )
    wait_for(lambda: _training_count(settings) >= weighed, timeout_s, f"{weighed} joined fish")


def _assert_nothing_lost_nothing_doubled(settings: Settings) -> None:
    measured = fish_ids(read_topic(settings, settings.topic_measurements))
    weighed = set(fish_ids(read_topic(settings, settings.topic_weights)))
    assert len(measured) == FISH
    assert len(set(measured)) == FISH
    _wait_until_done(settings, FISH, len(weighed), timeout_s=300)

    predictions = [
        Prediction.from_json(r.value) for r in read_topic(settings, settings.topic_predictions)
    ]
    assert {p.fish_id for p in predictions} == set(measured)
    assert {p.model_name for p in predictions} == {settings.model_name}

    training = _training_ids(settings)
    assert len(training) == len(set(training)) == len(weighed)
    assert set(training) == weighed

    scored = [Scored.from_json(r.value) for r in read_topic(settings, settings.topic_scored)]
    assert {s.fish_id for s in scored} == weighed
    assert all(
        s.abs_error_kg == pytest.approx(abs(s.predicted_weight_kg - s.weight_kg)) for s in scored
    )
    assert read_topic(settings, settings.topic_dead_letter) == []


def test_every_measurement_is_scored_and_every_weighed_fish_joined_once(
    streams: Settings, start_service: Callable[[str], Service]
) -> None:
    stats = _simulate(streams, rate=None)
    assert stats.measurements == FISH
    scorer, joiner = start_service("score"), start_service("join")
    _assert_nothing_lost_nothing_doubled(streams)
    assert scorer.alive()
    assert joiner.alive()
    # Predictions whose weight never came wait one window of event time, then expire: what still
    # waits belongs to the last minute of the line (6,000 fish).
    assert joiner.metric('tidemark_joiner_expired_total{side="prediction"}') > 0
    assert joiner.metric('tidemark_joiner_expired_total{side="weight"}') == 0
    assert 0 < joiner.metric("tidemark_joiner_pending") <= MISSING * 2 * 6_000


def test_killing_scorer_and_joiner_mid_run_loses_and_doubles_nothing(
    streams: Settings,
    start_service: Callable[[str], Service],
    simulate_in_background: Callable[[float], threading.Thread],
) -> None:
    simulator = simulate_in_background(2_000)
    scorer, joiner = start_service("score"), start_service("join")
    wait_for(lambda: topic_size(streams, streams.topic_predictions) > 3_000, 120, "scoring")
    scorer.kill()
    start_service("score")
    wait_for(lambda: _training_count(streams) > 3_000, 120, "joining")
    joiner.kill()
    time.sleep(1)
    start_service("join")
    simulator.join(120)
    _assert_nothing_lost_nothing_doubled(streams)


def test_a_broker_restart_mid_run_loses_nothing(
    stack: Stack,
    streams: Settings,
    start_service: Callable[[str], Service],
    simulate_in_background: Callable[[float], threading.Thread],
) -> None:
    simulator = simulate_in_background(2_000)
    start_service("score")
    start_service("join")
    wait_for(lambda: _training_count(streams) > 2_000, 120, "joining")
    with stack.paused("kafka"):
        time.sleep(3)
    simulator.join(180)
    _assert_nothing_lost_nothing_doubled(streams)
