"""Commits of a loop that polls on while its batches are acknowledged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future
from kafka.structs import OffsetAndMetadata, TopicPartition

from tidemark.pipelined import AckedCommits, CommitOnRevoke

P0 = TopicPartition("fish.measurements", 0)
P1 = TopicPartition("fish.measurements", 1)


def at(offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, "", -1)


@dataclass
class Consumer:
    """What AckedCommits asks of a consumer; commits are recorded, in order."""

    owned: set[TopicPartition] = field(default_factory=lambda: {P0, P1})
    commits: list[tuple[str, dict[TopicPartition, OffsetAndMetadata]]] = field(default_factory=list)
    fail_sync: bool = False
    on_io_thread: bool = False

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    def commit_async(self, offsets: dict[TopicPartition, OffsetAndMetadata], callback: Any) -> None:
        self.commits.append(("async", offsets))

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms: int) -> None:
        if self.fail_sync:
            raise KafkaTimeoutError("coordinator gone")
        if self.on_io_thread:
            raise RuntimeError("Cannot block on net.run() from the IO thread itself.")
        self.commits.append(("sync", offsets))


@dataclass
class Producer:
    """A producer whose acknowledgements the test gives by hand; flushes are only counted."""

    waits: int = 0
    fail_flush: bool = False

    def flush(self, timeout: float | None = None) -> None:
        if timeout is not None:
            if self.fail_flush:
                raise KafkaTimeoutError("acknowledgements did not come in time")
            self.waits += 1


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
    commits.sent({P0: at(1)}, [Future()], "a")
    assert commits.poll_timeout_ms(500) < 500
    commits.make_room()
    assert producer.waits == 0
    commits.sent({P0: at(2)}, [Future().success(None)], "b")
    commits.make_room()
    assert producer.waits == 1


def test_revoked_partitions_are_committed_synchronously_first(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, _, commits, persisted = parts
    commits.sent({P0: at(10), P1: at(3)}, [Future().success(None)], "a")
    revoked: list[TopicPartition] = []
    CommitOnRevoke(commits, then_revoked=revoked.extend).on_partitions_revoked([P1])
    assert consumer.commits == [("sync", {P0: at(10), P1: at(3)})]
    assert persisted == ["a"]
    assert revoked == [P1]


def test_a_failed_send_at_revocation_forgets_the_revoked_partitions(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, _, commits, _ = parts
    commits.sent({P0: at(10), P1: at(3)}, [Future().failure(KafkaTimeoutError("lost"))], "a")
    commits.revoked([P1])
    assert consumer.commits == []
    # The failed send still stops the loop before it commits anything.
    with pytest.raises(KafkaTimeoutError):
        commits.commit_settled()


def test_a_commit_refused_on_the_network_thread_leaves_the_revoked_partitions_to_the_new_owner(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, _, commits, _ = parts
    consumer.on_io_thread = True
    commits.sent({P0: at(10), P1: at(3)}, [Future().success(None)], "a")
    revoked: list[TopicPartition] = []
    CommitOnRevoke(commits, then_revoked=revoked.extend).on_partitions_revoked([P1])
    assert revoked == [P1]
    consumer.on_io_thread = False
    commits.commit_settled()
    assert all(P1 not in offsets for _, offsets in consumer.commits)


def test_acks_late_at_revocation_never_commit_the_revoked_partitions_later(
    parts: tuple[Consumer, Producer, AckedCommits[str], list[str]],
) -> None:
    consumer, producer, commits, _ = parts
    producer.fail_flush = True
    late = Future()
    commits.sent({P0: at(10), P1: at(3)}, [late], "a")
    commits.revoked([P1])
    assert consumer.commits == []
    late.success(None)
    commits.commit_settled()
    assert consumer.commits == [("async", {P0: at(10)})]


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
