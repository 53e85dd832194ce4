"""The server's Prometheus metrics, in a registry of its own (one per app, so tests can build many).

Requests and latency are labelled by endpoint (the route template, never the raw path) and the
model version that answered; predictions by project, segment (the value of the project's segment
field) and version, with every segment the model never saw counted as ``unknown`` so that
arbitrary input cannot grow the label set, and ``all`` for a project without a segment.

A request only adds to plain tallies; they are handed to prometheus-client in bulk
(:meth:`ServingMetrics.flush`) before every scrape and every second. Counting through
prometheus-client on the request path (a lock and checks per increment, a file write per
increment with several workers) cost more than the prediction itself.

With several worker processes (``tidemark serve --workers N``) every worker writes its metrics
to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) and
``/metrics``, whichever worker answers it, reads them all: requests, latency, predictions and
swaps are summed over the workers (another worker's counts are at most a second old), and the
model gauges are given per worker (``pid`` label), so that each worker's version shows.
"""

from __future__ import annotations

import math
import os
import threading
from bisect import bisect_left
from collections.abc import Sequence

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

from serving.active_model import ModelHolder

UNKNOWN_SEGMENT = "unknown"
# The segment label of a project without a segment field.
NO_SEGMENT = "all"
NO_MODEL = "none"
# How often a worker hands its tallies to prometheus-client between scrapes.
FLUSH_INTERVAL_S = 1.0
# Sub-millisecond buckets: a one-item prediction on the fast path takes well under 1 ms.
LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
_BOUNDS = (*LATENCY_BUCKETS, math.inf)


class _Tally:
    """Requests of one label set since the last flush: how many, their seconds, per bucket."""

    __slots__ = ("buckets", "count", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * len(_BOUNDS)


def add_observations(histogram: Histogram, buckets: Sequence[int], seconds: float) -> None:
    """Add observations to a labelled histogram as ``observe`` would, one call for them all:
    ``buckets[i]`` of them fell in bucket i, and they sum to ``seconds``.

    prometheus-client has no public call for this; its histogram keeps one value per bucket
    (non-cumulative) and one for the sum, which is what ``observe`` increments.
    """
    histogram._sum.inc(seconds)
    for value, count in zip(histogram._buckets, buckets, strict=True):
        if count:
            value.inc(count)


class ServingMetrics:
    """Request and prediction tallies, the metrics they are flushed to, and the model gauges,
    which follow the holder."""

    def __init__(self, holder: ModelHolder, shared_dir: str | None = None) -> None:
        self._holder = holder
        self.shared_dir = shared_dir
        # Where the metrics live; in multiprocess mode they are read back from the files instead.
        self.registry = CollectorRegistry(auto_describe=True)
        self._exposed = self.registry
        if shared_dir is not None:
            self._exposed = CollectorRegistry()
            # prometheus-client's multiprocess module has no type annotations.
            prometheus_multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                self._exposed, path=shared_dir
            )
        self._requests = Counter(
            "tidemark_serving_requests",
            "HTTP requests answered, by endpoint, method, status and model version.",
            ["endpoint", "method", "status", "model_version"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "tidemark_serving_request_duration_seconds",
            "Time from request to response, by endpoint and model version.",
            ["endpoint", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._predictions = Counter(
            "tidemark_serving_predictions",
            "Items predicted, by project, segment (unknown for segments the model never saw, "
            "all for a project without segments) and model version.",
            ["project", "segment", "model_version"],
            registry=self.registry,
        )
        self._model_info = Gauge(
            "tidemark_serving_model_info",
            "The model version in service (value 1); absent while there is none. With several "
            "workers, one per worker (pid), and 0 for a version a worker served before.",
            ["model_name", "model_version", "run_id"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self._model_loaded = Gauge(
            "tidemark_serving_model_loaded",
            "1 when a production model is loaded, else 0.",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self._registry_reachable = Gauge(
            "tidemark_serving_registry_reachable",
            "1 when the last registry check succeeded, else 0.",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self._swaps = Counter(
            "tidemark_serving_model_swaps",
            "Model versions swapped in since the server started (the first load included).",
            registry=self.registry,
        )
        # Touched by the event loop only (requests, flushes), so they need no lock.
        self._pending_requests: dict[tuple[str, str, int, str], _Tally] = {}
        self._pending_predictions: dict[tuple[str, str, str], int] = {}
        self._shown: tuple[str, str, str] | None = None
        self._swaps_counted = 0
        # Refreshed from the event loop (scrapes, flushes) and from the watcher's thread (swaps).
        self._refreshing = threading.Lock()
        self.refresh()
        holder.source.add_listener(lambda _: self.refresh())

    def count_request(
        self, endpoint: str, method: str, status: int, version: str, seconds: float
    ) -> None:
        """Count one answered request and its latency."""
        key = (endpoint, method, status, version)
        tally = self._pending_requests.get(key)
        if tally is None:
            tally = self._pending_requests[key] = _Tally()
        tally.count += 1
        tally.seconds += seconds
        tally.buckets[bisect_left(_BOUNDS, seconds)] += 1

    def count_predictions(
        self, project: str, segments: list[str], known: list[bool], version: str
    ) -> None:
        """Count one answered request's items by segment (``segments`` as the items give
        them, ``known`` whether the model knew each one)."""
        pending = self._pending_predictions
        for name, is_known in zip(segments, known, strict=True):
            key = (project, name if is_known else UNKNOWN_SEGMENT, version)
            pending[key] = pending.get(key, 0) + 1

    def count_prediction(self, project: str, segment: str, version: str) -> None:
        """Count one item of a segment the model knows (``UNKNOWN_SEGMENT`` otherwise,
        ``NO_SEGMENT`` for a project without segments)."""
        key = (project, segment, version)
        self._pending_predictions[key] = self._pending_predictions.get(key, 0) + 1

    def flush(self) -> None:
        """Hand the tallies since the last flush to prometheus-client (event loop only)."""
        requests, self._pending_requests = self._pending_requests, {}
        predictions, self._pending_predictions = self._pending_predictions, {}
        for (endpoint, method, status, version), tally in requests.items():
            self._requests.labels(endpoint, method, str(status), version).inc(tally.count)
            latency = self._latency.labels(endpoint, version)
            add_observations(latency, tally.buckets, tally.seconds)
        for (project, segment, version), count in predictions.items():
            self._predictions.labels(project, segment, version).inc(count)

    async def flush_every(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        """Flush and refresh every ``interval_s`` until cancelled: other workers' scrapes read
        this one's files."""
        while True:
            await anyio.sleep(interval_s)
            self.flush()
            self.refresh()

    def refresh(self) -> None:
        """Bring the model gauges to the holder's model and the registry link's state."""
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        active = self._holder.active
        shown = (
            None
            if active is None
            else (active.served.name, active.served.version, active.served.run_id)
        )
        if shown != self._shown:
            if self._shown is not None:
                # In multiprocess mode the file keeps a removed value: it must read 0.
                self._model_info.labels(*self._shown).set(0)
                self._model_info.remove(*self._shown)
            if shown is not None:
                self._model_info.labels(*shown).set(1)
            self._shown = shown
        self._model_loaded.set(float(active is not None))
        self._registry_reachable.set(float(self._holder.source.registry_ok))
        swaps = self._holder.swaps
        if swaps > self._swaps_counted:
            self._swaps.inc(swaps - self._swaps_counted)
            self._swaps_counted = swaps

    def exposition(self) -> bytes:
        """The Prometheus text of every metric (of every worker in multiprocess mode)."""
        self.flush()
        self.refresh()
        return generate_latest(self._exposed)

    def close(self) -> None:
        """Flush, and drop this worker's gauges from the shared files (multiprocess mode)."""
        self.flush()
        if self.shared_dir is not None:
            pid = os.getpid()
            prometheus_multiprocess.mark_process_dead(pid, self.shared_dir)  # type: ignore[no-untyped-call]
