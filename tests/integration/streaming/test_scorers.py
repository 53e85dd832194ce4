"""Several scorers in one consumer group: one added and one SIGKILLed mid-run lose nothing.

Real ``tidemark score`` processes share ``scorer_group_id`` on a 3-partition topic, as the
processes that ``TIDEMARK_STACK_SCORERS=3 make up`` runs; the joiner stores every weighed fish.
"""

from __future__ import annotations

from collections.abc import Callable

from kafka.errors import KafkaError

from tests.integration.streaming.streams import (
    FISH,
    Copies,
    Hold,
    Service,
    SimulateInBackground,
    assert_nothing_lost_nothing_doubled,
    wait_for,
)
from tests.integration.topics import topic_size
from tidemark import kafka_io
from tidemark.config import Settings

RATE = 700.0
# The line holds here until the added scorer joins, so fish still come to it and are still
# coming when the first scorer is killed (the rest of the run lasts about 19 s at RATE).
HOLD_AT = FISH // 3
SCORED = 'tidemark_scorer_events_total{outcome="scored"}'


def _members(settings: Settings) -> int:
    """How many consumers the scorers' stable group holds now (0 while it rebalances)."""
    client = kafka_io.admin(settings.kafka)
    try:
        group = client.describe_groups([settings.stream.scorer_group_id])[
            settings.stream.scorer_group_id
        ]
    except KafkaError:  # no coordinator yet: the group is still forming
        return 0
    finally:
        client.close()
    return len(group["members"]) if group["group_state"] == "Stable" else 0


def test_a_scorer_added_and_one_killed_mid_run_lose_and_double_nothing(
    streams: Settings,
    start_service: Callable[[str], Service],
    simulate_in_background: SimulateInBackground,
) -> None:
    hold = Hold(HOLD_AT)
    simulator = simulate_in_background(streams, RATE, hold)
    first, second = start_service("score"), start_service("score")
    start_service("join")
    wait_for(lambda: _members(streams) == 2, 120, "two scorers in the group")
    wait_for(lambda: topic_size(streams, streams.kafka.topics.predictions) > 2_000, 120, "scoring")

    added = start_service("score")
    # The line goes on as soon as the group changes, so that the rebalance may meet fish.
    wait_for(lambda: _members(streams) != 2, 120, "the added scorer joining")
    hold.release()
    wait_for(lambda: _members(streams) == 3, 120, "the added scorer in the group")
    wait_for(lambda: added.metric(SCORED, default=0.0) > 0, 120, "the added scorer scoring")

    assert simulator.is_alive(), "the line ended before the scorer was killed: raise FISH/RATE"
    first.kill()
    wait_for(lambda: _members(streams) == 2, 120, "the group without the killed scorer")
    simulator.join(120)
    # Two moves of partitions between scorers (the added one joining, the killed one's taken
    # over): a fish in flight at each is scored once more, so at most three predictions; the
    # joiner remembers what it joined, so every fish is joined once.
    print(assert_nothing_lost_nothing_doubled(streams, Copies(predictions=3, scored=1)))
    assert second.alive()
    assert added.alive()
