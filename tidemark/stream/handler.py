"""A stream service as the runtime sees it: a handler with named hooks.

The runtime (:func:`tidemark.stream.loop.run_loop`) owns the consumer, the producer, the poll
loop, the dead letters and the commits, as quix-streams' ``Application`` owns its poll loop and
LitServe's loops call a server's ``predict``. A service says which topics it reads, with the
decoder of each, and fills in the hooks it needs:

- ``ready``: whether it can handle its topics now (a scorer without a model cannot); a
  process serving several projects reads a project's topics once its handler is ready
  (:class:`tidemark.stream.dispatch.Dispatch`);
- ``start``: before each loop joins the group, at the start and again after Kafka or MongoDB
  failed; False stops before joining (the stop came first);
- ``process``: one polled batch whose records met their contract; sends its output through
  ``out`` and returns what ``durable`` must do once that output is acknowledged;
- ``assigned`` and ``revoked``: partitions given to this process or taken from it, on the
  loop's own thread, after the poll in which the group changed and before its batch;
- ``tick``: after every round, batch or none: work driven by time rather than records;
- ``event_time``: a message's event time, which the runtime checks against the clock before
  ``process`` sees the message (:class:`tidemark.stream.records.Clock`);
- ``commits``: when its input offsets are committed (:class:`Commits`); a service that commits
  at its own mark says where (``mark``) and reads it back on assignment (``resume``).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import ClassVar, Generic, TypeVar

from kafka import KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from tidemark import kafka_io
from tidemark.config import KafkaSettings
from tidemark.schemas import DeadLetter
from tidemark.stream.inflight import Ack, Offsets
from tidemark.stream.records import Batch, Decoder

M = TypeVar("M")
T = TypeVar("T")


class Commits(Enum):
    """When the runtime commits a service's input offsets."""

    # Each batch once its output, and that of every batch sent before it, is acknowledged and
    # made durable; the loop polls on meanwhile (the scorer, the joiner).
    AFTER_ACKS = "after-acks"
    # After every round, waiting for the commit: the offsets the service marks, with metadata it
    # reads back when partitions are assigned (the monitor: up to its first open window).
    AT_MARK = "at-mark"


class Output:
    """Where a batch's output leaves: the service's records and the batch's dead letters.

    Nothing waits here: the commit policy waits for the acknowledgements it collects.
    """

    def __init__(self, producer: KafkaProducer, kafka: KafkaSettings) -> None:
        self._producer = producer
        self._kafka = kafka
        self.acks: list[Ack] = []

    def send(self, topic: str, records: Iterable[kafka_io.Keyed]) -> None:
        """Send ``records`` to ``topic``, each keyed by its item."""
        self.acks += kafka_io.send(self._producer, self._kafka, topic, records)

    def routed(self, kafka: KafkaSettings) -> Output:
        """An output by the same producer whose dead letters go to ``kafka``'s dead-letter
        topic (another project's); what it sends is acknowledged with this one's."""
        other = Output(self._producer, kafka)
        other.acks = self.acks
        return other

    def send_encoded(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> None:
        """Send records already encoded, as (key, value) pairs, to ``topic``."""
        send = self._producer.send
        self.acks += [send(topic, key=key, value=value) for key, value in records]

    def dead_letters(self, letters: Iterable[DeadLetter]) -> None:
        """Send dead letters to the dead-letter topic, keyed by their source topic."""
        self.acks += kafka_io.send(
            self._producer, self._kafka, self._kafka.topics.dead_letter, (), letters
        )


class Handler(ABC, Generic[M, T]):
    """A stream service: what it reads, how its offsets are committed, and its hooks.

    ``M`` is the message its topics decode into, ``T`` what a batch leaves for ``durable``.
    """

    commits: ClassVar[Commits] = Commits.AFTER_ACKS

    def __init__(self, group_id: str, decoders: Mapping[str, Decoder[M]]) -> None:
        self.group_id = group_id
        self.decoders = decoders

    def ready(self) -> bool:
        """Whether the service can handle its topics now."""
        return True

    def start(self, stop: threading.Event) -> bool:
        """Before the loop joins the group: get ready; False when ``stop`` came first."""
        return True

    @abstractmethod
    def process(self, batch: Batch[M], out: Output) -> T:
        """Handle one polled batch: send its output through ``out``; what to make durable."""

    def event_time(self, message: M) -> datetime | None:
        """The message's event time, checked against the clock (None: not checked)."""
        return None

    def durable(self, payload: T) -> None:
        """A batch's output is acknowledged: make ``payload`` durable before its commit."""

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """This process now owns ``partitions``."""

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """``partitions`` went to another process (or were lost with the group)."""

    def tick(self) -> None:
        """A round of the loop ended, with a batch or none."""

    def mark(self) -> Offsets:
        """Under :attr:`Commits.AT_MARK`: the offsets to commit now, with their metadata."""
        return {}

    def resume(self, committed: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """Under :attr:`Commits.AT_MARK`: the offsets and metadata committed for the partitions
        just assigned (none for a partition never committed), before their first batch."""
