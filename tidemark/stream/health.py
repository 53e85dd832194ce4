"""Whether a stream service makes progress: a port that answers says nothing of it.

A service is unhealthy when its loop has started again ``stream.max_loop_restarts`` times in a
row without finishing one round in between, or when input it polled has stayed uncommitted
longer than ``stream.max_uncommitted_s`` (a loop stuck on a batch, commits that keep failing,
acknowledgements that never come). Both are metrics of the service's registry, computed when
they are scraped, so a loop that hangs still shows its input growing older:

- ``tidemark_stream_loop_restarts_total``: every time the loop started again;
- ``tidemark_stream_loop_restarts_in_a_row``: restarts since the last round that finished;
- ``tidemark_stream_uncommitted_seconds``: age of the oldest polled input not committed;
- ``tidemark_stream_healthy``: 1, or 0 when either bound is passed.

``tidemark stack status`` (``make status``) reads ``tidemark_stream_healthy`` and says why.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

HEALTHY = "tidemark_stream_healthy"
RESTARTS_IN_A_ROW = "tidemark_stream_loop_restarts_in_a_row"
UNCOMMITTED_SECONDS = "tidemark_stream_uncommitted_seconds"

Clock = Callable[[], float]


class Backlog:
    """When each polled batch not committed yet was polled, by partition.

    The loop notes each batch's offsets as it polls it; the commit policy says which offsets
    are committed; what is left is input the service holds without having made it durable.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._waiting: dict[TopicPartition, deque[tuple[int, float]]] = {}

    def polled(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """A batch was polled: the offsets that follow its records, by partition."""
        now = self._clock()
        for tp, offset in offsets.items():
            self._waiting.setdefault(tp, deque()).append((offset.offset, now))

    def committed(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """These offsets are committed: the batches up to them are no longer waiting."""
        for tp, offset in offsets.items():
            waiting = self._waiting.get(tp)
            while waiting and waiting[0][0] <= offset.offset:
                waiting.popleft()

    def clear(self) -> None:
        """Everything polled is accounted for (a service that commits at its own mark)."""
        self._waiting.clear()

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions gone to another consumer: their input is its to commit."""
        for tp in partitions:
            self._waiting.pop(tp, None)

    def keep_only(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget every partition but these (after a new loop was given its partitions)."""
        owned = set(partitions)
        self.forget([tp for tp in self._waiting if tp not in owned])

    def oldest_s(self) -> float:
        """How long the oldest polled input has waited for its commit (0 when none waits)."""
        firsts = [waiting[0][1] for waiting in self._waiting.values() if waiting]
        return self._clock() - min(firsts) if firsts else 0.0


class LoopHealth:
    """A service's progress, as its metrics and ``tidemark stack status`` show it."""

    def __init__(
        self,
        registry: CollectorRegistry,
        max_restarts: int,
        max_uncommitted_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.max_restarts = max_restarts
        self.max_uncommitted_s = max_uncommitted_s
        self.backlog = Backlog(clock)
        self.restarts_in_a_row = 0
        self._restarts = Counter(
            "tidemark_stream_loop_restarts",
            "Times the service's consume loop started again after a failure",
            registry=registry,
        )
        Gauge(
            RESTARTS_IN_A_ROW,
            "Loop restarts since the last round that finished",
            registry=registry,
        ).set_function(lambda: float(self.restarts_in_a_row))
        Gauge(
            UNCOMMITTED_SECONDS,
            "Age of the oldest polled input whose offsets are not committed yet",
            registry=registry,
        ).set_function(self.backlog.oldest_s)
        Gauge(
            HEALTHY,
            "1 while the service makes progress; 0 past a bound on restarts or uncommitted input",
            registry=registry,
        ).set_function(lambda: 0.0 if self.problem() else 1.0)

    def restarted(self) -> None:
        """The loop failed and starts again."""
        self._restarts.inc()
        self.restarts_in_a_row += 1

    def round_done(self) -> None:
        """A round of the loop finished (polled, handled, committed what it could)."""
        self.restarts_in_a_row = 0

    def problem(self) -> str | None:
        """Why the service is unhealthy, or None."""
        if self.restarts_in_a_row >= self.max_restarts:
            return f"its loop started again {self.restarts_in_a_row} times in a row"
        age = self.backlog.oldest_s()
        if age > self.max_uncommitted_s:
            return f"input polled {age:.0f} s ago is still not committed"
        return None
