"""One process for every project: each record reaches its project's handler, and only it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from kafka.structs import OffsetAndMetadata, TopicPartition

from tests.unit.tidemark.stream.raw import Record
from tests.unit.tidemark.stream.test_loop import P0, Keyed, Producer, Text
from tests.unit.tidemark.stream.test_loop import Consumer as OneTopicConsumer
from tidemark import kafka_io
from tidemark.config import KafkaSettings, Settings
from tidemark.schemas import DeadLetter
from tidemark.stream import dispatch as dispatching
from tidemark.stream.dispatch import Dispatch, Route
from tidemark.stream.handler import Handler, Output
from tidemark.stream.loop import run_loop
from tidemark.stream.records import Batch, Polled


class Consumer(OneTopicConsumer):
    """The loop tests' consumer, whose commits name every partition."""

    def commit_async(self, offsets: dict[TopicPartition, OffsetAndMetadata], callback: Any) -> Any:
        self.events.append(f"commit {_shown(offsets)}")
        return super().commit_async({P0: OffsetAndMetadata(0, "", -1)} | offsets, callback)

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms: int) -> None:
        self.events.append(f"wait for commit {_shown(offsets)}")
        self.stored |= offsets


def _shown(offsets: dict[TopicPartition, OffsetAndMetadata]) -> str:
    return ", ".join(f"{p.topic}:{o.offset}" for p, o in sorted(offsets.items()))


class Echo(Handler[str, str]):
    """A project's service: echoes its messages to its own output topic, records its hooks."""

    def __init__(self, project: str, events: list[str], ready: bool = True) -> None:
        super().__init__("unused", {f"{project}.in": Text()})
        self.project = project
        self.events = events
        self.is_ready = ready

    def ready(self) -> bool:
        return self.is_ready

    def start(self, stop: threading.Event) -> bool:
        self.events.append(f"{self.project} start")
        return True

    def process(self, batch: Batch[str], out: Output) -> str:
        messages = [item.message for item in batch.received]
        self.events.append(f"{self.project} process {messages}")
        out.send(f"{self.project}.out", [Keyed(m) for m in messages])
        return f"{self.project} {messages}"

    def durable(self, payload: str) -> None:
        self.events.append(f"durable {payload}")

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self.events.append(f"{self.project} assigned {sorted(p.topic for p in partitions)}")

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self.events.append(f"{self.project} revoked {sorted(p.topic for p in partitions)}")

    def tick(self) -> None:
        self.events.append(f"{self.project} tick")


def route(handler: Echo) -> Route:
    topics = {
        role: f"{handler.project}.{role}"
        for role in ("input", "truth", "predictions", "scored", "retrain_requests")
    } | {"model_decisions": f"{handler.project}.decisions", "dead_letter": f"{handler.project}.dlq"}
    return Route(handler.project, handler, KafkaSettings(topics=topics))


def records(project: str, *values: bytes, partition: int = 0) -> dict[TopicPartition, list[Any]]:
    topic = f"{project}.in"
    return {
        TopicPartition(topic, partition): [
            Record(topic, partition, offset, b"k", value) for offset, value in enumerate(values)
        ]
    }


def loop(
    monkeypatch: pytest.MonkeyPatch, dispatch: Dispatch, polls: list[Polled], consumer: Consumer
) -> Producer:
    producer = Producer(consumer.events)
    monkeypatch.setattr(kafka_io, "consumer", lambda *a, **k: consumer)
    monkeypatch.setattr(kafka_io, "batch_producer", lambda *a, **k: producer)
    run_loop(dispatch, Settings(), consumer.stop)
    return producer


def test_each_record_goes_to_its_project_and_its_dead_letters_to_that_projects_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    fish, penguins = Echo("fish", events), Echo("penguins", events)
    dispatch = Dispatch("one-group", [route(fish), route(penguins)])
    polled = records("fish", b"f0", b"bad", b"f2") | records("penguins", b"p0", b"bad")
    consumer = Consumer([polled], threading.Event(), events)
    consumer.owned = {TopicPartition("fish.in", 0), TopicPartition("penguins.in", 0)}

    producer = loop(monkeypatch, dispatch, [polled], consumer)

    assert consumer.subscribed == ["fish.in", "penguins.in"]
    assert "fish process ['f0', 'f2']" in events
    assert "penguins process ['p0']" in events
    by_topic: dict[str, list[bytes]] = {}
    for topic, value in producer.sent:
        by_topic.setdefault(topic, []).append(value)
    assert by_topic["fish.out"] == [b"f0", b"f2"]
    assert by_topic["penguins.out"] == [b"p0"]
    fish_dead = [DeadLetter.from_json(v) for v in by_topic["fish.dlq"]]
    penguin_dead = [DeadLetter.from_json(v) for v in by_topic["penguins.dlq"]]
    assert [(d.source_topic, d.offset) for d in fish_dead] == [("fish.in", 1)]
    assert [(d.source_topic, d.offset) for d in penguin_dead] == [("penguins.in", 1)]
    # One batch, one commit, after both projects' parts are durable.
    durable = [e for e in events if e.startswith(("durable", "commit", "wait for commit"))]
    assert durable == [
        "durable fish ['f0', 'f2']",
        "durable penguins ['p0']",
        "wait for commit fish.in:3, penguins.in:2",
    ]


def test_a_project_not_ready_waits_in_kafka_and_joins_the_subscription_when_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatching, "READY_CHECK_S", 0.0)
    events: list[str] = []
    fish, penguins = Echo("fish", events), Echo("penguins", events, ready=False)
    dispatch = Dispatch("one-group", [route(fish), route(penguins)])
    subscriptions: list[list[str]] = []
    consumer = Consumer([{}, {}, records("fish", b"f0")], threading.Event(), events)
    original = consumer.subscribe

    def subscribe(topics: list[str], listener: Any) -> None:
        subscriptions.append(list(topics))
        original(topics, listener)

    consumer.subscribe = subscribe  # type: ignore[method-assign]

    def poll(timeout_ms: int, inner: Any = consumer.poll) -> Polled:
        if consumer.polled == 1:
            penguins.is_ready = True
        return inner(timeout_ms)  # type: ignore[no-any-return]

    consumer.poll = poll  # type: ignore[method-assign]
    loop(monkeypatch, dispatch, [], consumer)

    assert subscriptions == [["fish.in"], ["fish.in", "penguins.in"]]
    assert dispatch.active == ("fish", "penguins")
    assert events.index("penguins start") > events.index("fish start")
    # A handler not started is not ticked.
    assert events.index("penguins tick") > events.index("penguins start")


def test_partitions_reach_the_handler_of_their_topic_only() -> None:
    events: list[str] = []
    fish, penguins = Echo("fish", events), Echo("penguins", events)
    dispatch = Dispatch("one-group", [route(fish), route(penguins)])
    assert dispatch.start(threading.Event())

    dispatch.assigned([TopicPartition("penguins.in", 0), TopicPartition("fish.in", 2)])
    dispatch.revoked([TopicPartition("fish.in", 2)])

    assert events[-3:] == [
        "penguins assigned ['penguins.in']",
        "fish assigned ['fish.in']",
        "fish revoked ['fish.in']",
    ]


def test_two_projects_on_one_topic_or_of_two_kinds_are_refused() -> None:
    events: list[str] = []
    with pytest.raises(ValueError, match=r"fish and fish-again both read topic fish\.in"):
        Dispatch(
            "g",
            [
                route(Echo("fish", events)),
                Route("fish-again", Echo("fish", events), KafkaSettings()),
            ],
        )

    class Other(Echo):
        pass

    with pytest.raises(ValueError, match="several kinds"):
        Dispatch("g", [route(Echo("fish", events)), route(Other("penguins", events))])
