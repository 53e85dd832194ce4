"""20,000 fish through the real scorer and joiner: nothing lost, nothing joined twice.

The scorer and the joiner run as real processes (``python -m tidemark score|join``) against the
session's stack, on topics and a database of each test's own. The same run survives SIGKILL of
both services during a challenge (a version in shadow: neither side's predictions is lost) and
a restart of the broker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from infra.local.stack import Stack
from tests.integration.projects import fish_on
from tests.integration.registered import register_scenario_model
from tests.integration.streaming.streams import (
    FISH,
    Copies,
    Hold,
    Service,
    SimulateInBackground,
    assert_nothing_lost_nothing_doubled,
    simulate,
    training_count,
    wait_for,
)
from tests.integration.topics import read_topic, topic_size
from tidemark.config import Settings
from tidemark.project.contracts import Contracts
from tidemark.registry import writer as registry

HALF_WAY = FISH // 2


def test_every_measurement_is_scored_and_every_weighed_fish_joined_once(
    streams: Settings, start_service: Callable[[str], Service]
) -> None:
    stats = simulate(streams, rate=None)
    assert stats.inputs == FISH
    scorer, joiner = start_service("score"), start_service("join")
    # Nothing kills or moves a service: every fish exactly once on each topic.
    assert_nothing_lost_nothing_doubled(streams, Copies(predictions=1, scored=1))
    assert scorer.alive()
    assert joiner.alive()

    # A prediction whose weight never came waits until the weights of its partition have gone
    # one join window (of event time) past it, then expires; those of the line's last window
    # still wait. Every unweighed fish is in exactly one of the two.
    window = streams.stream.join_window_s
    contracts = Contracts(fish_on(streams))
    measured = {
        m.key: (r.partition, m.at)
        for r in read_topic(streams, streams.kafka.topics.input)
        for m in [contracts.decode_input(r.value)]
    }
    weights = [
        (r.partition, contracts.decode_truth(r.value))
        for r in read_topic(streams, streams.kafka.topics.truth)
    ]
    unweighed = set(measured) - {w.key for _, w in weights}
    last_weight = {
        partition: max(w.at for p, w in weights if p == partition)
        for partition in {p for p, _ in weights}
    }
    must_wait = {
        fish
        for fish in unweighed
        if (measured[fish][1] - last_weight[measured[fish][0]]).total_seconds() >= -window
    }
    metrics = joiner.metrics()
    expired = metrics['tidemark_joiner_expired_total{side="prediction"}']
    pending = metrics["tidemark_joiner_pending"]
    assert metrics['tidemark_joiner_expired_total{side="truth"}'] == 0
    assert expired > 0
    assert expired + pending == len(unweighed)
    assert len(must_wait) <= pending, (len(must_wait), pending, len(unweighed))


@pytest.fixture
def challenged(streams: Settings) -> Settings:
    """The streaming tests' settings with a model of this test's own, v2 challenging v1."""
    settings = streams.override(registry_model_name=f"shadow-stream-{uuid.uuid4().hex[:6]}")
    phases = ["salmon", "walleye"]
    production, _ = register_scenario_model(
        settings, phases, experiment="streaming", production=True
    )
    challenger, _ = register_scenario_model(settings, phases, experiment="streaming")
    registry.promote(settings.registry, production)
    registry.set_challenger(settings.registry, challenger, reason="pipeline kill test")
    return settings


def test_killing_scorer_and_joiner_during_a_challenge_loses_neither_side_and_doubles_nothing(
    challenged: Settings,
    start_service_on: Callable[[Settings, str], Service],
    simulate_in_background: SimulateInBackground,
) -> None:
    streams = challenged

    def start_service(command: str) -> Service:
        return start_service_on(streams, command)

    challenger = registry.challenger_version(streams.registry)
    production = registry.production_version(streams.registry)
    assert challenger is not None
    assert production is not None
    # The line holds half-way until both services have been killed and started again, so that
    # the second half reaches the new processes however long the first ones took to start.
    hold = Hold(HALF_WAY)
    simulator = simulate_in_background(streams, 2_000, hold)
    scorer, joiner = start_service("score"), start_service("join")
    wait_for(lambda: topic_size(streams, streams.kafka.topics.predictions) > 3_000, 120, "scoring")
    # Each kill while half the line has not been sent yet.
    assert simulator.is_alive()
    assert not hold.released.is_set()
    scorer.kill()
    start_service("score")
    wait_for(lambda: training_count(streams) > 3_000, 120, "joining")
    assert simulator.is_alive()
    assert not hold.released.is_set()
    joiner.kill()
    time.sleep(1)
    start_service("join")
    hold.release()
    simulator.join(120)
    # One SIGKILL each: a fish the killed process had not committed is processed once more.
    outcome = assert_nothing_lost_nothing_doubled(streams, Copies(predictions=2, scored=2))
    print(outcome)

    # Both versions predicted every fish, and every joined fish carries both errors.
    contracts = Contracts(fish_on(streams))
    predictions = [
        contracts.decode_prediction(r.value)
        for r in read_topic(streams, streams.kafka.topics.predictions)
    ]
    assert {p.model_version for p in predictions} == {production}
    assert {p.challenger_version for p in predictions} == {challenger}
    assert all(p.challenger_value is not None for p in predictions)
    scored = [
        contracts.decode_scored(r.value) for r in read_topic(streams, streams.kafka.topics.scored)
    ]
    assert {s.prediction.challenger_version for s in scored} == {challenger}
    assert all(
        s.challenger_abs_error is not None
        and s.prediction.challenger_value is not None
        and s.challenger_abs_error == pytest.approx(abs(s.prediction.challenger_value - s.truth))
        for s in scored
    )


# The broker test's line: slow enough that its second half lasts about 10 s.
BROKER_TEST_RATE = 1_000.0


def test_a_broker_restart_mid_run_loses_nothing(
    stack: Stack,
    streams: Settings,
    start_service: Callable[[str], Service],
    simulate_in_background: SimulateInBackground,
) -> None:
    # The line holds half-way until the services are up and joining, so that the broker stops
    # while the second half is coming, not after the last fish.
    hold = Hold(HALF_WAY)
    simulator = simulate_in_background(streams, BROKER_TEST_RATE, hold)
    start_service("score")
    start_service("join")
    wait_for(lambda: training_count(streams) > 2_000, 120, "joining")
    hold.release()
    measurements = streams.kafka.topics.input
    wait_for(lambda: topic_size(streams, measurements) > HALF_WAY + 1_000, 120, "the second half")
    sent = topic_size(streams, measurements)
    assert sent < FISH, "the line ended before the broker stopped"
    with stack.paused("kafka"):
        # The producer cannot deliver now: a line still running has fish to send after this.
        assert simulator.is_alive(), f"the line ended before the broker stopped ({sent} sent)"
        time.sleep(3)
    simulator.join(180)
    # The broker's restart moves every partition of both groups once: one more copy at most.
    outcome = assert_nothing_lost_nothing_doubled(streams, Copies(predictions=2, scored=2))
    print(outcome)
