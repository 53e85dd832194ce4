"""Commits after acknowledgements (polling on meanwhile), or at the service's own mark."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future
from kafka.structs import OffsetAndMetadata, TopicPartition

from tidemark.stream.commits import AckedCommits, CommitOnRevoke, MarkedCommits

P0 = TopicPartition("fish.measurements", 0)
P1 = TopicPartition("fish.measurements", 1)


def at(offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, "", -1)


@dataclass
class Consumer:
    """What AckedCommits asks of a consumer; commits are recorded, in order.

    An asynchronous commit's request stays under way until the test completes its future
    (``requests``), unless ``answer_at_once``.
    """

    owned: set[TopicPartition] = field(default_factory=lambda: {P0, P1})
    commits: list[tuple[str, dict[TopicPartition, OffsetAndMetadata]]] = field(default_factory=list)
    requests: list[Future] = field(default_factory=list)
    answer_at_once: bool = True
    fail_sync: bool = False
    fail_async: bool = False
    stored: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    def committed(self, tp: TopicPartition, metadata: bool) -> OffsetAndMetadata | None:
        return self.stored.get(tp)

    def commit_async(
        self, offsets: dict[TopicPartition, OffsetAndMetadata], callback: Any = None
    ) -> Future:
        self.commits.append(("async", offsets))
        request = Future()
        if self.fail_async:
            request.failure(KafkaTimeoutError("coordinator gone"))
        elif self.answer_at_once:
            request.success(None)
        self.requests.append(request)
        return request

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms: int) -> None:
        if self.fail_sync:
            raise KafkaTimeoutError("coordinator gone")
        self.commits.append(("sync", offsets))


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Drive a listener coroutine as kafka-python's network loop would; it never suspends here
    because every future the fakes return is already complete."""
    with pytest.raises(StopIteration):
        coroutine.send(None)


@dataclass
class Producer:
    """A producer whose acknowledgements the test gives by hand; flushes are only counted."""

    waits: int = 0
    fail_flush: bool = False
    # Sends that a successful timed flush acknowledges, as a real flush waits for every send.
    unacked: list[Future] = field(default_factory=list)
    # Called when a timed flush fails: acknowledgements may come while the caller waits on.
    on_flush_failure: Callable[[], object] = lambda: None

    def flush(self, timeout: float | None = None) -> None:
        if timeout is not None:
            if self.fail_flush:
                self.on_flush_failure()
                raise KafkaTimeoutError("acknowledgements did not come in time")
            self.waits += 1
            for ack in self.unacked:
                if not ack.is_done:
                    ack.success(None)


@pytest.fixture
def parts() -> Iterator[tuple[Consumer, Producer, AckedCommits[str], list[str]]]:
    consumer, producer = Consumer(), Producer()
    persisted: list[str] = []
    commits: AckedCommits[str] = AckedCommits(
        consumer, producer, max_in_flight=2, timeout_ms=1_000, durable=persisted.append
    )
    yield consumer, producer, commits, persisted
    commits.close()


def test_offsets_are_committed_after_the_acks_and_the_durable_step(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, _, commits, persisted = parts
    first, second = Future(), Future()
    commits.sent({P0: at(10)}, [first], "first")
    commits.sent({P0: at(20)}, [second], "second")
    commits.commit_settled()
    assert consumer.commits == []
    second.success(None)
    commits.commit_settled()
    assert (consumer.commits, persisted) == ([], [])
    first.success(None)
    commits.commit_settled()
    assert persisted == ["first", "second"]
    assert consumer.commits == [("async", {P0: at(20)})]


def test_the_loop_waits_for_acks_only_at_the_bound(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    _, producer, commits, _ = parts
    assert commits.poll_timeout_ms(500) == 500
    unacked = Future()
    producer.unacked.append(unacked)
    commits.sent({P0: at(1)}, [unacked], "a")
    assert commits.poll_timeout_ms(500) < 500
    commits.make_room()
    assert producer.waits == 0
    commits.sent({P0: at(2)}, [Future().success(None)], "b")
    commits.make_room()
    assert producer.waits == 1


def test_revoked_partitions_are_committed_before_they_leave(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, _, commits, persisted = parts
    commits.sent({P0: at(10), P1: at(3)}, [Future().success(None)], "a")
    revoked: list[TopicPartition] = []
    run(CommitOnRevoke(commits, then_revoked=revoked.extend).on_partitions_revoked([P1]))
    assert consumer.commits == [("async", {P0: at(10), P1: at(3)})]
    assert persisted == ["a"]
    assert revoked == [P1]


def test_a_failed_send_at_revocation_forgets_the_revoked_partitions(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, _, commits, _ = parts
    commits.sent({P0: at(10), P1: at(3)}, [Future().failure(KafkaTimeoutError("lost"))], "a")
    revoked: list[TopicPartition] = []
    run(CommitOnRevoke(commits, then_revoked=revoked.extend).on_partitions_revoked([P1]))
    assert consumer.commits == []
    assert revoked == [P1]
    # The failed send still stops the loop before it commits anything.
    with pytest.raises(KafkaTimeoutError):
        commits.commit_settled()


def test_a_failed_commit_at_revocation_lets_the_rebalance_go_on(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, _, commits, _ = parts
    consumer.fail_async = True
    commits.sent({P0: at(10), P1: at(3)}, [Future().success(None)], "a")
    revoked: list[TopicPartition] = []
    run(CommitOnRevoke(commits, then_revoked=revoked.extend).on_partitions_revoked([P0, P1]))
    assert revoked == [P0, P1]
    consumer.fail_async = False
    commits.commit_settled()
    assert consumer.commits == [("async", {P0: at(10), P1: at(3)})]


def test_acks_late_at_revocation_never_commit_the_revoked_partitions_later(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, producer, commits, _ = parts
    producer.fail_flush = True
    late = Future()
    commits.sent({P0: at(10), P1: at(3)}, [late], "a")
    run(CommitOnRevoke(commits).on_partitions_revoked([P1]))
    assert consumer.commits == []
    late.success(None)
    commits.commit_settled()
    assert consumer.commits == [("async", {P0: at(10)})]


def test_lost_partitions_are_never_committed(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, _, commits, _ = parts
    consumer.answer_at_once = False
    commits.sent({P0: at(10)}, [Future().success(None)], "a")
    commits.commit_settled()
    commits.sent({P0: at(20), P1: at(3)}, [Future().success(None)], "b")
    commits.commit_settled()
    lost: list[TopicPartition] = []
    run(CommitOnRevoke(commits, then_revoked=lost.extend).on_partitions_lost([P1]))
    assert lost == [P1]
    consumer.requests[0].success(None)
    commits.commit_settled()
    assert consumer.commits == [("async", {P0: at(10)}), ("async", {P0: at(20)})]


def test_one_commit_request_at_a_time_and_a_failed_one_is_retried(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, _, commits, _ = parts
    consumer.answer_at_once = False
    commits.sent({P0: at(10), P1: at(3)}, [Future().success(None)], "a")
    commits.commit_settled()
    commits.sent({P0: at(20)}, [Future().success(None)], "b")
    commits.commit_settled()
    assert consumer.commits == [("async", {P0: at(10), P1: at(3)})]
    consumer.requests[0].failure(KafkaTimeoutError("coordinator moved"))
    commits.commit_settled()
    assert consumer.commits[1:] == [("async", {P0: at(20), P1: at(3)})]


def test_only_owned_partitions_are_committed_when_draining(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, _, commits, _ = parts
    consumer.owned = {P0}
    commits.sent({P0: at(10), P1: at(3)}, [Future().success(None)], "a")
    commits.drain()
    assert consumer.commits == [("sync", {P0: at(10)})]


def test_closing_without_a_broker_gives_up_the_final_commit_quietly(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, _, commits, persisted = parts
    consumer.fail_sync = True
    commits.sent({P0: at(10)}, [Future().success(None)], "a")
    commits.close()
    assert persisted == ["a"]
    assert consumer.commits == []


def test_at_the_bound_the_loop_waits_for_late_acks_rather_than_fail(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, producer, commits, _ = parts
    late = Future()
    commits.sent({P0: at(1)}, [late], "a")
    commits.sent({P0: at(2)}, [Future().success(None)], "b")
    producer.fail_flush = True
    producer.on_flush_failure = lambda: late.success(None)
    commits.make_room()
    assert consumer.commits == [("async", {P0: at(2)})]


@dataclass
class Marking:
    """A service's mark and what it was given to resume from."""

    mark: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)
    resumed: list[dict[TopicPartition, OffsetAndMetadata]] = field(default_factory=list)
    durable: list[str] = field(default_factory=list)


def marked(consumer: Consumer, producer: Producer, marking: Marking) -> MarkedCommits[str]:
    return MarkedCommits(
        consumer,
        producer,
        timeout_ms=1_000,
        mark=lambda: marking.mark,
        resume=marking.resumed.append,
        durable=marking.durable.append,
    )


def test_the_mark_is_committed_once_the_rounds_sends_are_acked_and_only_when_it_moves() -> None:
    consumer, producer, marking = Consumer(), Producer(), Marking()
    commits = marked(consumer, producer, marking)
    sent = Future()
    producer.unacked.append(sent)
    commits.sent({P0: at(5)}, [sent], "a")
    marking.mark = {P0: OffsetAndMetadata(3, "closed at 3", -1)}
    commits.commit_settled()
    assert (sent.is_done, marking.durable) == (True, ["a"])
    assert consumer.commits == [("sync", {P0: OffsetAndMetadata(3, "closed at 3", -1)})]
    commits.commit_settled()
    assert len(consumer.commits) == 1


def test_a_failed_send_stops_the_round_before_its_mark_is_committed() -> None:
    consumer, producer, marking = Consumer(), Producer(), Marking(mark={P0: at(3)})
    commits = marked(consumer, producer, marking)
    commits.sent({P0: at(5)}, [Future().failure(KafkaTimeoutError("dead letter lost"))], "a")
    with pytest.raises(KafkaTimeoutError):
        commits.commit_settled()
    assert (consumer.commits, marking.durable) == ([], [])


def test_only_owned_partitions_of_the_mark_are_committed() -> None:
    consumer, producer = Consumer(owned={P1}), Producer()
    marking = Marking(mark={P0: at(3), P1: at(4)})
    marked(consumer, producer, marking).commit_settled()
    assert consumer.commits == [("sync", {P1: at(4)})]


def test_assigned_partitions_give_the_service_what_was_committed_for_them() -> None:
    consumer, producer, marking = Consumer(), Producer(), Marking()
    consumer.stored = {P0: OffsetAndMetadata(3, "closed at 3", -1)}
    marked(consumer, producer, marking).assigned([P0, P1])
    assert marking.resumed == [{P0: OffsetAndMetadata(3, "closed at 3", -1)}]
