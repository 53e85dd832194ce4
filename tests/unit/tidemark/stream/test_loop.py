"""The consume→produce loop: a batch's offsets are committed only after its sends are acked."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka.future import Future
from kafka.structs import OffsetAndMetadata, TopicPartition

from tests.unit.tidemark.stream.raw import Record
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.stream.loop import Batch, PipelinedLoop

P0 = TopicPartition("fish.measurements", 0)


@dataclass
class Consumer:
    """Hands out scripted polls; records what the loop asks of it."""

    polls: list[Batch]
    stop: threading.Event
    events: list[str]
    subscribed: list[str] = field(default_factory=list)
    commits: list[dict[TopicPartition, OffsetAndMetadata]] = field(default_factory=list)
    closed_with_autocommit: list[bool] = field(default_factory=list)

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.subscribed = topics

    def poll(self, timeout_ms: int) -> Batch:
        self.events.append("poll")
        if len(self.polls) == 1:
            self.stop.set()
        return self.polls.pop(0)

    def assignment(self) -> set[TopicPartition]:
        return {P0}

    def commit_async(self, offsets: dict[TopicPartition, OffsetAndMetadata], callback: Any) -> Any:
        self.events.append(f"commit {offsets[P0].offset}")
        self.commits.append(offsets)
        request = Future()
        request.success(None)
        return request

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms: int) -> None:
        self.events.append(f"final commit {offsets[P0].offset}")
        self.commits.append(offsets)

    def close(self, autocommit: bool) -> None:
        self.closed_with_autocommit.append(autocommit)


@dataclass
class Producer:
    """Acknowledges nothing until the test says so; a timed flush (the drain) acks everything."""

    unacked: list[Future] = field(default_factory=list)
    closed: bool = False

    def flush(self, timeout: float | None = None) -> None:
        if timeout is not None:
            for ack in self.unacked:
                if not ack.is_done:
                    ack.success(None)

    def close(self, timeout: float) -> None:
        self.closed = True


def _batch(*offsets: int) -> Batch:
    return {P0: [Record(P0.topic, 0, o, b"k", b"v") for o in offsets]}


def _loop(
    monkeypatch: pytest.MonkeyPatch, consumer: Consumer, producer: Producer, events: list[str]
) -> PipelinedLoop[str]:
    monkeypatch.setattr(kafka_io, "consumer", lambda *a, **k: consumer)
    monkeypatch.setattr(kafka_io, "batch_producer", lambda *a, **k: producer)
    return PipelinedLoop(
        Settings(), "scorers", ["fish.measurements"], durable=lambda p: events.append(p)
    )


def test_a_batch_is_committed_after_its_acknowledgement_and_durable_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop, events = threading.Event(), list[str]()
    consumer = Consumer([_batch(0, 1), {}, {}], stop, events)
    producer = Producer()
    loop = _loop(monkeypatch, consumer, producer, events)
    ack = Future()

    def process(batch: Batch, _: Any) -> tuple[Sequence[Future], str]:
        events.append("process")
        producer.unacked.append(ack)
        return [ack], "durable 2"

    def after_commit() -> None:
        events.append("after commit")
        if len(consumer.polls) == 1:  # the round after the batch: the broker acknowledges now
            ack.success(None)

    loop.run(
        stop, process, after_poll=lambda: events.append("after poll"), after_commit=after_commit
    )

    assert consumer.subscribed == ["fish.measurements"]
    assert events == [
        "poll", "after poll", "process", "after commit",
        "poll", "after poll", "after commit",
        "poll", "after poll", "durable 2", "commit 2", "after commit",
        "final commit 2",  # on the way out, whether the request under way succeeded or not
    ]  # fmt: skip
    assert consumer.closed_with_autocommit == [False]
    assert producer.closed


def test_stopping_drains_what_is_in_flight_before_the_clients_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop, events = threading.Event(), list[str]()
    consumer = Consumer([_batch(5)], stop, events)
    producer = Producer()
    loop = _loop(monkeypatch, consumer, producer, events)

    def process(batch: Batch, _: Any) -> tuple[Sequence[Future], str]:
        ack = Future()
        producer.unacked.append(ack)
        return [ack], "durable 6"

    loop.run(stop, process)

    assert events == ["poll", "durable 6", "final commit 6"]
    assert consumer.closed_with_autocommit == [False]
    assert producer.closed
