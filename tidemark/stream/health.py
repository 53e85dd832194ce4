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

A service that runs one loop per project (the monitor) labels each series by ``project``: one
project's loop may be unhealthy while the others make progress. ``tidemark stack status``
(``make status``) reads ``tidemark_stream_healthy`` and says why, and of which project.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping

from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RESTARTS = "tidemark_stream_loop_restarts"
HEALTHY = "tidemark_stream_healthy"
RESTARTS_IN_A_ROW = "tidemark_stream_loop_restarts_in_a_row"
UNCOMMITTED_SECONDS = "tidemark_stream_uncommitted_seconds"

Clock = Callable[[], float]


class Backlog:
    """When each polled batch not committed yet was polled, by partition.

    The loop notes each batch's offsets as it polls it; the commit policy says which offsets
    are committed; what is left is input the service holds without having made it durable.
    The metrics endpoint's thread reads it while the loop changes it: both hold one lock (a
    read that iterated the partitions as the loop added one raised "dictionary changed size
    during iteration" in the scrape).
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._waiting: dict[TopicPartition, deque[tuple[int, float]]] = {}
        self._lock = threading.Lock()

    def polled(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """A batch was polled: the offsets that follow its records, by partition."""
        now = self._clock()
        with self._lock:
            for tp, offset in offsets.items():
                self._waiting.setdefault(tp, deque()).append((offset.offset, now))

    def committed(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """These offsets are committed: the batches up to them are no longer waiting."""
        with self._lock:
            for tp, offset in offsets.items():
                waiting = self._waiting.get(tp)
                while waiting and waiting[0][0] <= offset.offset:
                    waiting.popleft()

    def clear(self) -> None:
        """Everything polled is accounted for (a service that commits at its own mark)."""
        with self._lock:
            self._waiting.clear()

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions gone to another consumer: their input is its to commit."""
        with self._lock:
            for tp in partitions:
                self._waiting.pop(tp, None)

    def keep_only(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget every partition but these (after a new loop was given its partitions)."""
        owned = set(partitions)
        with self._lock:
            for tp in [tp for tp in self._waiting if tp not in owned]:
                del self._waiting[tp]

    def oldest_s(self) -> float:
        """How long the oldest polled input has waited for its commit (0 when none waits)."""
        with self._lock:
            firsts = [waiting[0][1] for waiting in self._waiting.values() if waiting]
        return self._clock() - min(firsts) if firsts else 0.0


class LoopHealth:
    """A loop's progress, as its service's metrics and ``tidemark stack status`` show it.

    Given a registry, its series are the service's own, unlabelled; the loops of a service that
    runs one loop per project (:func:`tidemark.stream.projects.run_project_loops`) are made
    without one and exported together by :func:`export_per_project`, labelled by ``project``.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None,
        max_restarts: int,
        max_uncommitted_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.max_restarts = max_restarts
        self.max_uncommitted_s = max_uncommitted_s
        self.backlog = Backlog(clock)
        self.restarts = 0
        self.restarts_in_a_row = 0
        if registry is not None:
            registry.register(_Exported({"": self}, labelled=False))

    def restarted(self) -> None:
        """The loop failed and starts again."""
        self.restarts += 1
        self.restarts_in_a_row += 1

    def round_done(self) -> None:
        """A round of the loop finished (polled, handled, committed what it could)."""
        self.restarts_in_a_row = 0

    def problem(self) -> str | None:
        """Why the loop is unhealthy, or None."""
        if self.restarts_in_a_row >= self.max_restarts:
            return f"its loop started again {self.restarts_in_a_row} times in a row"
        age = self.backlog.oldest_s()
        if age > self.max_uncommitted_s:
            return f"input polled {age:.0f} s ago is still not committed"
        return None


def export_per_project(registry: CollectorRegistry, loops: Mapping[str, LoopHealth]) -> None:
    """Export the health of each project's loop in ``registry``, labelled by ``project``."""
    registry.register(_Exported(dict(loops), labelled=True))


class _Exported(Collector):
    """The health series of a service's loops, computed when scraped (so that a loop that hangs
    still shows its input growing older): one series per project, or one unlabelled series."""

    def __init__(self, loops: Mapping[str, LoopHealth], labelled: bool) -> None:
        self._loops = loops
        self._labelled = labelled

    def collect(self) -> Iterator[Metric]:
        labels = ["project"] if self._labelled else []
        restarts = CounterMetricFamily(
            RESTARTS,
            "Times the service's consume loop started again after a failure",
            labels=labels,
        )
        in_a_row = GaugeMetricFamily(
            RESTARTS_IN_A_ROW, "Loop restarts since the last round that finished", labels=labels
        )
        uncommitted = GaugeMetricFamily(
            UNCOMMITTED_SECONDS,
            "Age of the oldest polled input whose offsets are not committed yet",
            labels=labels,
        )
        healthy = GaugeMetricFamily(
            HEALTHY,
            "1 while the service makes progress; 0 past a bound on restarts or uncommitted input",
            labels=labels,
        )
        for project, loop in self._loops.items():
            values = [project] if self._labelled else []
            restarts.add_metric(values, float(loop.restarts))
            in_a_row.add_metric(values, float(loop.restarts_in_a_row))
            uncommitted.add_metric(values, loop.backlog.oldest_s())
            healthy.add_metric(values, 0.0 if loop.problem() else 1.0)
        yield from (restarts, in_a_row, uncommitted, healthy)
