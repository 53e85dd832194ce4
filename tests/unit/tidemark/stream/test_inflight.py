"""Which offsets a loop may commit while later batches are in flight."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future
from kafka.structs import OffsetAndMetadata, TopicPartition

from tidemark.stream.inflight import InFlight

P0 = TopicPartition("fish.measurements", 0)
P1 = TopicPartition("fish.measurements", 1)


def at(offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, "", -1)


def acks(count: int) -> list[Future]:
    return [Future() for _ in range(count)]


def acknowledge(futures: list[Future]) -> None:
    for future in futures:
        future.success(None)


def test_a_batch_is_committable_only_once_all_of_its_sends_are_acknowledged() -> None:
    in_flight: InFlight[str] = InFlight(limit=4)
    sends = acks(3)
    in_flight.add({P0: at(10)}, sends, "first")
    acknowledge(sends[:2])
    assert in_flight.settled().offsets == {}
    acknowledge(sends[2:])
    settled = in_flight.settled()
    assert settled.offsets == {P0: at(10)}
    assert settled.payloads == ["first"]
    assert len(in_flight) == 0


def test_a_later_batch_acknowledged_first_waits_for_the_earlier_one() -> None:
    in_flight: InFlight[int] = InFlight(limit=4)
    first, second = acks(2), acks(2)
    in_flight.add({P0: at(10), P1: at(5)}, first, 1)
    in_flight.add({P0: at(20)}, second, 2)
    acknowledge(second)
    assert in_flight.settled().offsets == {}
    acknowledge(first)
    settled = in_flight.settled()
    # The later batch's offset of a partition supersedes the earlier one's; others are kept.
    assert settled.offsets == {P0: at(20), P1: at(5)}
    assert settled.payloads == [1, 2]


def test_settling_stops_at_the_first_batch_still_waiting() -> None:
    in_flight: InFlight[int] = InFlight(limit=4)
    batches = [acks(1) for _ in range(3)]
    for number, sends in enumerate(batches):
        in_flight.add({P0: at(10 * (number + 1))}, sends, number)
    acknowledge(batches[0])
    acknowledge(batches[2])
    assert in_flight.settled().offsets == {P0: at(10)}
    assert len(in_flight) == 2
    acknowledge(batches[1])
    assert in_flight.settled().payloads == [1, 2]


def test_a_batch_without_sends_settles_behind_the_earlier_ones() -> None:
    in_flight: InFlight[None] = InFlight(limit=2)
    sends = acks(1)
    in_flight.add({P0: at(3)}, sends, None)
    in_flight.add({P0: at(7)}, [], None)
    assert in_flight.settled().offsets == {}
    acknowledge(sends)
    assert in_flight.settled().offsets == {P0: at(7)}


def test_a_failed_send_raises_and_nothing_from_its_batch_on_is_committed() -> None:
    in_flight: InFlight[None] = InFlight(limit=4)
    first, second = acks(2), acks(1)
    in_flight.add({P0: at(10)}, first, None)
    in_flight.add({P0: at(20)}, second, None)
    acknowledge(second)
    first[0].success(None)
    first[1].failure(KafkaTimeoutError("no broker"))
    with pytest.raises(KafkaTimeoutError):
        in_flight.settled()
    with pytest.raises(KafkaTimeoutError):
        in_flight.settled()


def test_the_number_of_batches_in_flight_is_bounded() -> None:
    in_flight: InFlight[None] = InFlight(limit=2)
    in_flight.add({P0: at(1)}, acks(1), None)
    assert not in_flight.full
    in_flight.add({P0: at(2)}, acks(1), None)
    assert in_flight.full
    with pytest.raises(OverflowError):
        in_flight.add({P0: at(3)}, acks(1), None)
    with pytest.raises(ValueError, match="at least one"):
        InFlight[None](limit=0)


def test_revoked_partitions_are_never_committed_but_their_sends_still_count() -> None:
    in_flight: InFlight[None] = InFlight(limit=4)
    first, second = acks(1), acks(1)
    in_flight.add({P0: at(10), P1: at(4)}, first, None)
    in_flight.add({P1: at(8)}, second, None)
    in_flight.forget([P1])
    acknowledge(first)
    assert in_flight.settled().offsets == {P0: at(10)}
    second[0].failure(KafkaTimeoutError("no broker"))
    with pytest.raises(KafkaTimeoutError):
        in_flight.settled()
