"""The one consume loop: hooks in order, commits after acks or at the service's mark."""

from __future__ import annotations

import threading
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from kafka.future import Future
from kafka.structs import OffsetAndMetadata, TopicPartition
from pydantic import TypeAdapter

from tests.unit.tidemark.stream.raw import Record
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.schemas import DeadLetter
from tidemark.stream.handler import Commits, Handler, Output
from tidemark.stream.loop import Suspects, handle, run_loop
from tidemark.stream.records import Batch, Polled

TOPIC = "fish.measurements"
P0 = TopicPartition(TOPIC, 0)
P1 = TopicPartition(TOPIC, 1)


class Text:
    """Decodes any value as text; ``bad`` is refused as a contract would refuse it."""

    def from_json(self, raw: bytes) -> str:
        if raw == b"bad":
            TypeAdapter(int).validate_json(raw)  # raises ValidationError, as a contract does
        return raw.decode()


def at(offset: int, metadata: str = "") -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, metadata, -1)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Drive a listener coroutine as kafka-python's network loop would (it never suspends)."""
    with pytest.raises(StopIteration):
        coroutine.send(None)


@dataclass
class Consumer:
    """Hands out scripted polls, calls the listener as a rebalance inside a poll would, and
    records what the loop asks of it."""

    polls: list[Polled]
    stop: threading.Event
    events: list[str]
    # Poll number -> the partitions assigned ("+") or revoked ("-") inside that poll.
    rebalances: dict[int, list[tuple[str, list[TopicPartition]]]] = field(default_factory=dict)
    owned: set[TopicPartition] = field(default_factory=lambda: {P0})
    stored: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)
    subscribed: list[str] = field(default_factory=list)
    listener: Any = None
    polled: int = 0
    closed_with_autocommit: list[bool] = field(default_factory=list)

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.subscribed, self.listener = topics, listener

    def poll(self, timeout_ms: int) -> Polled:
        self.events.append("poll")
        for change, partitions in self.rebalances.get(self.polled, []):
            if change == "+":
                self.owned |= set(partitions)
                run(self.listener.on_partitions_assigned(partitions))
            else:
                run(self.listener.on_partitions_revoked(partitions))
                self.owned -= set(partitions)
        self.polled += 1
        if len(self.polls) == 1:
            self.stop.set()
        return self.polls.pop(0)

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    def committed(self, tp: TopicPartition, metadata: bool) -> OffsetAndMetadata | None:
        assert metadata
        return self.stored.get(tp)

    def commit_async(self, offsets: dict[TopicPartition, OffsetAndMetadata], callback: Any) -> Any:
        self.events.append(f"commit {offsets[P0].offset}")
        self.stored |= offsets
        request = Future()
        request.success(None)
        return request

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms: int) -> None:
        shown = ", ".join(f"{o.offset} {o.metadata}".strip() for o in offsets.values())
        self.events.append(f"wait for commit {shown}")
        self.stored |= offsets

    def close(self, autocommit: bool) -> None:
        self.closed_with_autocommit.append(autocommit)


@dataclass
class Producer:
    """Acknowledges a send when the test says so, or at any timed flush (a drain, a round of
    a service that commits at its mark)."""

    events: list[str]
    unacked: list[Future] = field(default_factory=list)
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    closed: bool = False

    def send(self, topic: str, key: bytes, value: bytes) -> Future:
        self.sent.append((topic, value))
        ack = Future()
        self.unacked.append(ack)
        return ack

    def flush(self, timeout: float | None = None) -> None:
        if timeout is not None:
            self.ack()

    def ack(self) -> None:
        waiting = [ack for ack in self.unacked if not ack.is_done]
        if waiting:
            self.events.append("acked")
        for ack in waiting:
            ack.success(None)

    def close(self, timeout: float) -> None:
        self.closed = True


class Keyed:
    def __init__(self, text: str) -> None:
        self.key, self.text = text, text

    def to_json(self) -> bytes:
        return self.text.encode()


class Service(Handler[str, str]):
    """Records its hooks; echoes each message to ``out``, and acks in ``tick`` when asked."""

    def __init__(self, events: list[str], producer: Producer) -> None:
        super().__init__("scorers", {TOPIC: Text()})
        self.events = events
        self.producer = producer
        self.ack_at_tick: set[int] = set()
        self.ticks = 0
        self.marked: dict[TopicPartition, OffsetAndMetadata] = {}

    def process(self, batch: Batch[str], out: Output) -> str:
        self.events.append(f"process {[item.message for item in batch.received]}")
        out.send("out", [Keyed(item.message) for item in batch.received])
        return f"durable {max(item.raw.offset for item in batch.received) + 1}"

    def durable(self, payload: str) -> None:
        self.events.append(payload)

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self.events.append(f"assigned {[p.partition for p in partitions]}")

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self.events.append(f"revoked {[p.partition for p in partitions]}")

    def tick(self) -> None:
        self.events.append("tick")
        if self.ticks in self.ack_at_tick:
            self.producer.ack()
        self.ticks += 1


class MarkingService(Service):
    """Commits at its mark: one past the last offset processed, with that offset as metadata."""

    commits = Commits.AT_MARK

    def process(self, batch: Batch[str], out: Output) -> str:
        payload = super().process(batch, out)
        last = max(item.raw.offset for item in batch.received)
        self.marked = {P0: at(last + 1, f"seen {last}")}
        return payload

    def mark(self) -> dict[TopicPartition, OffsetAndMetadata]:
        return self.marked

    def resume(self, committed: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        self.events.append(f"resume {sorted(o.metadata for o in committed.values())}")


def _batch(*offsets: int, partition: TopicPartition = P0) -> Polled:
    return {
        partition: [Record(TOPIC, partition.partition, o, b"k", f"m{o}".encode()) for o in offsets]
    }


def _run(
    monkeypatch: pytest.MonkeyPatch,
    service_type: type[Service],
    polls: list[Polled],
    prepare: Any = lambda service, consumer: None,
    suspects: Suspects | None = None,
) -> tuple[list[str], Consumer, Producer]:
    stop, events = threading.Event(), list[str]()
    consumer = Consumer(polls, stop, events)
    producer = Producer(events)
    service = service_type(events, producer)
    prepare(service, consumer)
    monkeypatch.setattr(kafka_io, "consumer", lambda *a, **k: consumer)
    monkeypatch.setattr(kafka_io, "batch_producer", lambda *a, **k: producer)
    monkeypatch.setattr(kafka_io, "producer", lambda *a, **k: producer)
    run_loop(service, Settings(), stop, suspects)
    return events, consumer, producer


def test_a_batch_is_committed_after_its_acknowledgement_and_durable_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def ack_at_third_tick(service: Service, _: Consumer) -> None:
        service.ack_at_tick = {2}

    events, consumer, producer = _run(
        monkeypatch, Service, [_batch(0, 1), {}, {}], ack_at_third_tick
    )

    assert consumer.subscribed == [TOPIC]
    assert events == [
        "poll", "process ['m0', 'm1']", "tick",
        "poll", "tick",
        "poll", "tick", "acked", "durable 2", "commit 2",
        "wait for commit 2",  # on the way out, whether the request under way succeeded or not
    ]  # fmt: skip
    assert consumer.closed_with_autocommit == [False]
    assert producer.closed


def test_stopping_drains_what_is_in_flight_before_the_clients_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events, consumer, producer = _run(monkeypatch, Service, [_batch(5)])

    assert events == ["poll", "process ['m5']", "tick", "acked", "durable 6", "wait for commit 6"]
    assert consumer.closed_with_autocommit == [False]
    assert producer.closed


def test_partitions_gained_and_lost_reach_the_service_after_their_poll_before_its_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def rebalance(_: Service, consumer: Consumer) -> None:
        consumer.owned = set()
        consumer.rebalances = {0: [("+", [P0, P1])], 1: [("-", [P0, P1]), ("+", [P1])]}

    events, _, _ = _run(monkeypatch, Service, [{}, _batch(3, partition=P1)], rebalance)

    assert events[:7] == [
        "poll", "assigned [0, 1]", "tick",
        "poll", "revoked [0, 1]", "assigned [1]", "process ['m3']",
    ]  # fmt: skip


def test_a_service_at_its_mark_commits_it_each_round_after_the_acks_and_resumes_from_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def assign(_: Service, consumer: Consumer) -> None:
        consumer.owned = set()
        consumer.stored = {P0: at(7, "seen 6")}
        consumer.rebalances = {0: [("+", [P0])]}

    events, consumer, _ = _run(monkeypatch, MarkingService, [_batch(7, 8), {}, _batch(9)], assign)

    assert events == [
        "poll", "resume ['seen 6']", "assigned [0]", "process ['m7', 'm8']", "tick",
        "acked", "durable 9", "wait for commit 9 seen 8",
        "poll", "tick",  # the mark did not move: nothing to commit
        "poll", "process ['m9']", "tick", "acked", "durable 10", "wait for commit 10 seen 9",
    ]  # fmt: skip
    assert consumer.stored == {P0: at(10, "seen 9")}


def test_a_record_that_does_not_decode_leaves_as_a_dead_letter_after_the_output() -> None:
    events: list[str] = []
    producer = Producer(events)
    service = Service(events, producer)
    settings = Settings()
    polled = {P0: [Record(TOPIC, 0, 0, b"k", b"bad"), Record(TOPIC, 0, 1, b"k", b"m1")]}

    acks, payload = handle(service, polled, Output(cast(Any, producer), settings.kafka), 1024)

    assert events == ["process ['m1']"]
    assert payload == "durable 2"
    assert len(acks) == 2
    (topic, value), (dead_topic, letter) = producer.sent
    assert (topic, value) == ("out", b"m1")
    assert dead_topic == settings.kafka.topics.dead_letter
    dead = DeadLetter.model_validate_json(letter)
    assert (dead.offset, dead.raw_value()) == (0, b"bad")


class Failing(Service):
    """Raises on message ``m1``, as a service's bug that no check foresaw would."""

    def process(self, batch: Batch[str], out: Output) -> str:
        if any(item.message == "m1" for item in batch.received):
            raise ZeroDivisionError("m1 divides by zero")
        return super().process(batch, out)


def test_a_batch_that_keeps_failing_is_handled_alone_and_the_record_at_fault_dead_lettered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    suspects = Suspects(settings.stream.max_record_failures)
    for _ in range(settings.stream.max_record_failures):
        with pytest.raises(ZeroDivisionError):
            _run(monkeypatch, Failing, [_batch(0, 1, 2)], suspects=suspects)

    events, consumer, producer = _run(monkeypatch, Failing, [_batch(0, 1, 2)], suspects=suspects)

    assert [e for e in events if e.startswith("process")] == ["process ['m0']", "process ['m2']"]
    letters = [
        DeadLetter.from_json(v) for t, v in producer.sent if t == settings.kafka.topics.dead_letter
    ]
    assert [(letter.offset, letter.raw_value()) for letter in letters] == [(1, b"m1")]
    assert "failed 3 times" in letters[0].error
    assert "ZeroDivisionError: m1 divides by zero" in letters[0].error
    assert consumer.stored[P0].offset == 3
    # Handled: the same offsets are no longer suspect.
    assert not suspects.suspect(_batch(0, 1, 2))
