"""20,000 fish through the real scorer and joiner: nothing lost, nothing joined twice.

The scorer and the joiner run as real processes (``python -m tidemark score|join``) against the
session's stack, on topics and a database of each test's own. The same run survives SIGKILL of
both services and a restart of the broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from infra.local.stack import Stack
from tests.integration.streaming.streams import (
    FISH,
    MISSING,
    Hold,
    Service,
    SimulateInBackground,
    assert_nothing_lost_nothing_doubled,
    simulate,
    topic_size,
    training_count,
    wait_for,
)
from tidemark.config import Settings

HALF_WAY = FISH // 2


def test_every_measurement_is_scored_and_every_weighed_fish_joined_once(
    streams: Settings, start_service: Callable[[str], Service]
) -> None:
    stats = simulate(streams, rate=None)
    assert stats.inputs == FISH
    scorer, joiner = start_service("score"), start_service("join")
    assert_nothing_lost_nothing_doubled(streams)
    assert scorer.alive()
    assert joiner.alive()
    # Predictions whose weight never came wait one window of event time, then expire: what still
    # waits belongs to the last minute of the line (6,000 fish).
    assert joiner.metric('tidemark_joiner_expired_total{side="prediction"}') > 0
    assert joiner.metric('tidemark_joiner_expired_total{side="truth"}') == 0
    assert 0 < joiner.metric("tidemark_joiner_pending") <= MISSING * 2 * 6_000


def test_killing_scorer_and_joiner_mid_run_loses_and_doubles_nothing(
    streams: Settings,
    start_service: Callable[[str], Service],
    simulate_in_background: SimulateInBackground,
) -> None:
    # The line holds half-way until both services have been killed and started again, so that
    # the second half reaches the new processes however long the first ones took to start.
    hold = Hold(HALF_WAY)
    simulator = simulate_in_background(streams, 2_000, hold)
    scorer, joiner = start_service("score"), start_service("join")
    wait_for(lambda: topic_size(streams, streams.kafka.topics.predictions) > 3_000, 120, "scoring")
    scorer.kill()
    start_service("score")
    wait_for(lambda: training_count(streams) > 3_000, 120, "joining")
    joiner.kill()
    time.sleep(1)
    start_service("join")
    hold.release()
    simulator.join(120)
    assert_nothing_lost_nothing_doubled(streams)


def test_a_broker_restart_mid_run_loses_nothing(
    stack: Stack,
    streams: Settings,
    start_service: Callable[[str], Service],
    simulate_in_background: SimulateInBackground,
) -> None:
    # The line holds half-way until the services are up and joining, so that the broker stops
    # while the second half is coming, not after the last fish.
    hold = Hold(HALF_WAY)
    simulator = simulate_in_background(streams, 2_000, hold)
    start_service("score")
    start_service("join")
    wait_for(lambda: training_count(streams) > 2_000, 120, "joining")
    hold.release()
    measurements = streams.kafka.topics.input
    wait_for(lambda: topic_size(streams, measurements) > HALF_WAY, 120, "the second half")
    with stack.paused("kafka"):
        time.sleep(3)
    simulator.join(180)
    assert_nothing_lost_nothing_doubled(streams)
