"""A challenge survives SIGKILL of the scorer and of the joiner: neither side's predictions is lost.

The scorer and the joiner run as real processes against the session's stack, with a model of
this module's own: v1 in production, v2 in shadow. Every fish is predicted by both, every
weighed fish joined once with both versions' errors, although each service is killed mid-run.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from tests.integration.registered import register_scenario_model
from tests.integration.streaming.streams import (
    Service,
    assert_nothing_lost_nothing_doubled,
    read_topic,
    topic_size,
    training_count,
    wait_for,
)
from tidemark.config import Settings
from tidemark.registry import writer as registry
from tidemark.schemas import Prediction, Scored

pytestmark = pytest.mark.integration


@pytest.fixture
def streams(streams: Settings) -> Settings:
    """The streaming tests' settings with a model of this test's own, v2 challenging v1."""
    settings = streams.override(registry_model_name=f"shadow-stream-{uuid.uuid4().hex[:6]}")
    phases = ["salmon", "walleye"]
    production, _ = register_scenario_model(
        settings, phases, experiment="streaming", production=True
    )
    challenger, _ = register_scenario_model(settings, phases, experiment="streaming")
    registry.promote(settings.registry, production)
    registry.set_challenger(settings.registry, challenger, reason="shadow pipeline test")
    return settings


def test_killing_scorer_and_joiner_during_a_challenge_loses_neither_side(
    streams: Settings,
    start_service: Callable[[str], Service],
    simulate_in_background: Callable[[Settings, float], threading.Thread],
) -> None:
    challenger = registry.challenger_version(streams.registry)
    production = registry.production_version(streams.registry)
    assert challenger is not None
    assert production is not None
    simulator = simulate_in_background(streams, 2_000)
    scorer, joiner = start_service("score"), start_service("join")
    wait_for(lambda: topic_size(streams, streams.kafka.topics.predictions) > 3_000, 120, "scoring")
    scorer.kill()
    start_service("score")
    wait_for(lambda: training_count(streams) > 3_000, 120, "joining")
    joiner.kill()
    time.sleep(1)
    start_service("join")
    simulator.join(120)
    assert_nothing_lost_nothing_doubled(streams)

    predictions = [
        Prediction.from_json(r.value) for r in read_topic(streams, streams.kafka.topics.predictions)
    ]
    assert {p.model_version for p in predictions} == {production}
    assert {p.challenger_version for p in predictions} == {challenger}
    assert all(p.challenger_predicted_weight_kg is not None for p in predictions)
    scored = [Scored.from_json(r.value) for r in read_topic(streams, streams.kafka.topics.scored)]
    assert {s.challenger_version for s in scored} == {challenger}
    assert all(
        s.challenger_abs_error_kg is not None
        and s.challenger_predicted_weight_kg is not None
        and s.challenger_abs_error_kg
        == pytest.approx(abs(s.challenger_predicted_weight_kg - s.weight_kg))
        for s in scored
    )
