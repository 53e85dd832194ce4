"""One process, one consumer group, every project: each record goes to its project's handler.

A stack runs one scorer and one joiner however many projects it has (processes do not multiply
with projects). :class:`Dispatch` is the handler the runtime sees for such a process: it holds
one handler per project (a :class:`Route`, with the project's Kafka settings), subscribes to
the topics of all of them, and splits each polled batch by topic: every project's handler
processes its own records, sends its output and its dead letters to its own topics, and makes
its own part of the batch durable; the batch is committed once, when all of it is (the runtime's
``Commits.AFTER_ACKS``).

A project whose handler is not :meth:`~tidemark.stream.handler.Handler.ready` (a scorer whose
project has no production model yet) is left out of the subscription: its records wait in
Kafka, the other projects go on, and it joins the subscription in the first round after it
becomes ready.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafka.structs import TopicPartition

from tidemark.config import KafkaSettings
from tidemark.logs import get_logger
from tidemark.schemas import DeadLetter
from tidemark.stream.handler import Commits, Handler, Output
from tidemark.stream.records import Batch, Decoder, Received

log = get_logger("dispatch")

# How often (seconds) a project not yet ready is asked again whether it is.
READY_CHECK_S = 0.5


@dataclass(frozen=True, eq=False)
class Route:
    """A project's handler, and the Kafka settings its output and dead letters leave by (a
    :class:`tidemark.stream.projects.ProjectLoop` has a loop of its own and all its settings;
    a route shares the dispatch's loop and group, and only its output is its own)."""

    project: str
    handler: Handler[Any, Any]
    kafka: KafkaSettings


class Dispatch(Handler[Any, list[tuple[Handler[Any, Any], Any]]]):
    """The handler of a process serving several projects' handlers of one kind in one group.

    Every route's handler is of the same class (every project's scorer, or every project's
    joiner), commits after its acknowledgements, and reads topics of its own.
    """

    def __init__(self, group_id: str, routes: Sequence[Route]) -> None:
        super().__init__(group_id, {})
        if not routes:
            raise ValueError("a dispatch needs at least one route")
        kinds = {type(route.handler) for route in routes}
        if len(kinds) != 1:
            raise ValueError(
                f"the routes' handlers are of several kinds: {sorted(map(str, kinds))}"
            )
        owner: dict[str, str] = {}
        for route in routes:
            if route.handler.commits is not Commits.AFTER_ACKS:
                raise ValueError(f"{route.project}: a dispatch commits after acknowledgements only")
            for topic in route.handler.decoders:
                if topic in owner:
                    raise ValueError(f"{owner[topic]} and {route.project} both read topic {topic}")
                owner[topic] = route.project
        self.routes = tuple(routes)
        self._by_topic: dict[str, Route] = {}
        self._waiting: list[Route] = list(routes)
        self._stop = threading.Event()
        self._next_check = 0.0

    @property
    def topics(self) -> list[str]:
        """Every topic of every route's contract, to create before the loop starts."""
        return list(dict.fromkeys(t for route in self.routes for t in route.kafka.topics.names))

    @property
    def active(self) -> tuple[str, ...]:
        """The projects whose topics the process reads now."""
        return tuple(dict.fromkeys(route.project for route in self._by_topic.values()))

    def start(self, stop: threading.Event) -> bool:
        """Start every route that is ready, once at least one is; False if ``stop`` came first."""
        self._stop = stop
        self._by_topic = {}
        self.decoders = {}
        self._waiting = list(self.routes)
        logged = False
        while not self._admit_ready():
            if not logged:
                log.info(
                    "waiting for a project to be ready", projects=[r.project for r in self.routes]
                )
                logged = True
            if stop.wait(READY_CHECK_S):
                return False
        return True

    def _admit_ready(self) -> bool:
        """Start the waiting routes that are ready and read their topics; whether any did."""
        admitted = False
        for route in list(self._waiting):
            if not route.handler.ready():
                continue
            if not route.handler.start(self._stop):
                return admitted
            self._waiting.remove(route)
            decoders: dict[str, Decoder[Any]] = dict(self.decoders)
            for topic, decoder in route.handler.decoders.items():
                decoders[topic] = decoder
                self._by_topic[topic] = route
            # A new mapping, so that the runtime sees the subscription change.
            self.decoders = decoders
            log.info("project admitted", project=route.project, topics=list(route.handler.decoders))
            admitted = True
        return admitted

    def event_time(self, message: Any) -> datetime | None:
        """The message's event time, as its handlers' kind reads it."""
        return self.routes[0].handler.event_time(message)

    def process(self, batch: Batch[Any], out: Output) -> list[tuple[Handler[Any, Any], Any]]:
        """Each project's records through its handler, its output and dead letters to its own
        topics; what each makes durable."""
        polled: dict[Route, dict[TopicPartition, Sequence[Any]]] = defaultdict(dict)
        for partition, records in batch.polled.items():
            polled[self._by_topic[partition.topic]][partition] = records
        received: dict[Route, list[Received[Any]]] = defaultdict(list)
        for item in batch.received:
            received[self._by_topic[item.raw.topic]].append(item)
        dead: dict[Route, list[DeadLetter]] = defaultdict(list)
        for letter in batch.dead:
            dead[self._by_topic[letter.source_topic]].append(letter)
        # Every dead letter leaves by its project's topic, below.
        batch.dead.clear()
        payloads = []
        for route, partitions in polled.items():
            part = Batch(partitions, received[route], dead[route], batch.max_bytes, batch.clock)
            own = out.routed(route.kafka)
            payloads.append((route.handler, route.handler.process(part, own)))
            own.dead_letters(part.dead)
        return payloads

    def durable(self, payload: list[tuple[Handler[Any, Any], Any]]) -> None:
        """Each project's part of an acknowledged batch made durable by its handler."""
        for handler, part in payload:
            handler.durable(part)

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Each project's handler is given its own partitions."""
        for route, own in self._split(partitions):
            route.handler.assigned(own)

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Each project's handler gives up its own partitions."""
        for route, own in self._split(partitions):
            route.handler.revoked(own)

    def tick(self) -> None:
        """Every started handler's tick; a project that became ready joins the subscription."""
        for route in self.routes:
            if route not in self._waiting:
                route.handler.tick()
        if self._waiting:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + READY_CHECK_S
                self._admit_ready()

    def _split(
        self, partitions: Sequence[TopicPartition]
    ) -> list[tuple[Route, list[TopicPartition]]]:
        by_route: dict[Route, list[TopicPartition]] = defaultdict(list)
        for partition in partitions:
            route = self._by_topic.get(partition.topic)
            if route is not None:
                by_route[route].append(partition)
        return list(by_route.items())
