"""The join: match within the window, whichever half comes first; expire by event time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from streaming.join_state import Half, JoinError, JoinResult, JoinState, Side
from streaming.joiner import PendingDocuments
from tests.integration.projects import example
from tidemark.project.contracts import Contracts, Prediction

FISH = Contracts(example("fish-weight"))
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def prediction(fish_id: str, at: datetime, partition: int = 0, **changes: object) -> Half:
    record = {
        "fish_id": fish_id,
        "species": "salmon",
        "length_cm": 70.0,
        "height_cm": 17.0,
        "measured_at": at.isoformat(),
        "predicted_weight_kg": 4.0,
        "species_known": True,
        "model_name": "fish-weight",
        "model_version": "1",
        "predicted_at": at.isoformat(),
    }
    return Half(record=FISH.decode_prediction(json.dumps(record | changes)), partition=partition)


def weight(fish_id: str, at: datetime, partition: int = 0, kg: float = 5.0) -> Half:
    record = {
        "fish_id": fish_id,
        "species": "salmon",
        "weight_kg": kg,
        "weighed_at": at.isoformat(),
    }
    return Half(record=FISH.decode_truth(json.dumps(record)), partition=partition)


def test_joins_whichever_half_comes_first() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    assert state.offer(weight("a", T0), T0)[0] is JoinResult.PENDING
    result, scored = state.offer(prediction("a", T0 - timedelta(seconds=5)), T0)
    assert result is JoinResult.JOINED
    assert scored is not None
    assert scored.truth == 5.0
    assert scored.abs_error == 1.0
    assert scored.rel_error == 0.2
    assert state.pending_count == 0

    assert state.offer(prediction("b", T0), T0)[0] is JoinResult.PENDING
    assert state.offer(weight("b", T0 + timedelta(seconds=60)), T0)[0] is JoinResult.JOINED


def test_halves_too_far_apart_do_not_join() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.offer(prediction("a", T0), T0)
    assert state.offer(weight("a", T0 + timedelta(seconds=61)), T0)[0] is JoinResult.LATE
    assert state.pending("a") is not None


def test_a_fish_is_joined_once_even_when_a_half_comes_again() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.offer(prediction("a", T0), T0)
    assert state.offer(prediction("a", T0), T0)[0] is JoinResult.DUPLICATE
    assert state.offer(weight("a", T0), T0)[0] is JoinResult.JOINED
    assert state.offer(weight("a", T0), T0)[0] is JoinResult.DUPLICATE
    assert state.offer(prediction("a", T0), T0)[0] is JoinResult.DUPLICATE
    assert state.pending_count == 0


def test_fish_found_in_the_store_are_not_joined_again() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.offer(prediction("a", T0), T0)
    state.already_joined(["a"])
    assert state.pending_count == 0
    assert state.offer(weight("a", T0), T0)[0] is JoinResult.DUPLICATE


def test_a_half_expires_when_the_other_stream_of_its_partition_passes_the_window() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.offer(prediction("lonely", T0, partition=1), T0)
    # Weights on another partition say nothing about this fish's partner.
    state.offer(weight("x", T0 + timedelta(seconds=120), partition=2), T0)
    # Predictions moving on do not expire a prediction either.
    state.offer(prediction("y", T0 + timedelta(seconds=120), partition=1), T0)
    assert state.expire() == []
    state.offer(weight("z", T0 + timedelta(seconds=60), partition=1), T0)
    assert state.expire() == []
    state.offer(weight("w", T0 + timedelta(seconds=61), partition=1), T0)
    expired = state.expire()
    assert [h.key for h in expired] == ["lonely"]
    assert expired[0].side is Side.PREDICTION


def test_changes_list_new_halves_and_joined_fish() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.offer(prediction("a", T0), T0)
    state.offer(prediction("b", T0), T0)
    state.offer(weight("b", T0), T0)
    changes = state.take_changes()
    assert set(changes.save) == {"a", "b"}
    assert set(changes.joined) == {"b"}
    assert state.take_changes().save == {}


def test_watermark_is_known_once_both_streams_of_every_partition_moved() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.offer(prediction("a", T0, partition=0), T0)
    assert state.watermark([0]) is None
    state.offer(weight("b", T0 + timedelta(seconds=5), partition=0), T0)
    assert state.watermark([0]) == T0
    assert state.watermark([0, 1]) is None


def test_restored_halves_join_and_dropped_partitions_are_forgotten() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.restore([prediction("a", T0, partition=0), prediction("b", T0, partition=1)])
    state.drop_partitions([1])
    assert state.pending("b") is None
    assert state.offer(weight("a", T0), T0)[0] is JoinResult.JOINED


def test_recent_ids_are_bounded() -> None:
    state = JoinState(window_s=60, recent_ids=1, join=FISH.join)
    for fish_id in ("a", "b"):
        state.offer(prediction(fish_id, T0), T0)
        state.offer(weight(fish_id, T0), T0)
    # "a" was forgotten: a late duplicate waits (and will expire) instead of joining again.
    assert state.offer(prediction("a", T0), T0)[0] is JoinResult.PENDING
    assert state.offer(prediction("b", T0), T0)[0] is JoinResult.DUPLICATE


def test_a_shadowed_prediction_joins_with_both_versions_errors_even_after_a_restore() -> None:
    shadowed = prediction("a", T0, challenger_version="2", challenger_predicted_weight_kg=4.5)
    assert isinstance(shadowed.record, Prediction)
    # Pending halves wait in the store across a restart: the challenger's answer must survive.
    documents = PendingDocuments(FISH)
    restored = documents.read(documents.half(shadowed))
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.offer(restored, T0)
    result, scored = state.offer(weight("a", T0), T0)
    assert result is JoinResult.JOINED
    assert scored is not None
    assert (scored.prediction.model_version, scored.rel_error) == ("1", 0.2)
    assert (scored.prediction.challenger_version, scored.prediction.challenger_value) == ("2", 4.5)
    assert scored.challenger_abs_error == 0.5
    assert scored.challenger_rel_error == 0.1


def test_no_record_moves_a_watermark_past_the_ceiling() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.offer(prediction("waiting", T0), T0)
    # A weight dated decades ahead, on the same partition: without the ceiling it would expire
    # every pending prediction at once.
    state.offer(weight("future", T0 + timedelta(days=365 * 30)), T0, ceiling=T0)
    assert state.expire() == []
    assert state.pending("waiting") is not None
    assert state.offer(weight("waiting", T0 + timedelta(seconds=5)), T0)[0] is JoinResult.JOINED


def test_a_second_half_with_other_content_is_refused_and_a_replay_is_not() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.offer(prediction("a", T0), T0)
    other = prediction("a", T0 + timedelta(seconds=1))
    with pytest.raises(JoinError, match="other content"):
        state.offer(other, T0)
    assert state.offer(prediction("a", T0), T0)[0] is JoinResult.DUPLICATE
    assert state.offer(weight("a", T0), T0)[0] is JoinResult.JOINED
    with pytest.raises(JoinError, match="joined already"):
        state.offer(weight("a", T0, kg=6.0), T0)
    assert state.offer(weight("a", T0), T0)[0] is JoinResult.DUPLICATE


def test_a_pair_whose_error_is_not_finite_is_refused_and_leaves_the_state_as_it_was() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.offer(prediction("a", T0), T0)
    with pytest.raises(JoinError, match="cannot be judged"):
        state.offer(weight("a", T0, kg=5e-324), T0)
    assert state.pending("a") is not None
    assert state.take_changes().joined == {}


def test_halves_at_the_end_of_time_expire_without_overflow() -> None:
    end = datetime.max.replace(tzinfo=UTC)
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join)
    state.offer(prediction("late", end), T0)
    state.offer(weight("x", end), T0)
    assert state.expire() == []


def test_pending_halves_beyond_the_bound_are_shed_oldest_first() -> None:
    state = JoinState(window_s=60, recent_ids=10, join=FISH.join, max_pending=2)
    for name in ("a", "b", "c"):
        state.offer(prediction(name, T0), T0)
    assert state.pending_count == 2
    assert [h.key for h in state.take_shed()] == ["a"]
    assert state.take_shed() == []
    assert set(state.take_changes().save) == {"b", "c"}
