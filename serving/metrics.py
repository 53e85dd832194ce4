"""The server's Prometheus metrics, in a registry of its own (one per app, so tests can build many).

Requests and latency are labelled by endpoint (the route template, never the raw path) and the
model version that answered; predictions by species, with every species the model never saw
counted as ``unknown`` so that arbitrary input cannot grow the label set.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from serving.active_model import ModelHolder

UNKNOWN_SPECIES = "unknown"
NO_MODEL = "none"
# Sub-millisecond buckets: a one-fish prediction on the fast path takes well under 1 ms.
_LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class ServingMetrics:
    """Counters and histograms the middleware and the predict route update."""

    def __init__(self, holder: ModelHolder) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tidemark_serving_requests",
            "HTTP requests answered, by endpoint, method, status and model version.",
            ["endpoint", "method", "status", "model_version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tidemark_serving_request_duration_seconds",
            "Time from request to response, by endpoint and model version.",
            ["endpoint", "model_version"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "tidemark_serving_predictions",
            "Fish predicted, by species (unknown for species the model never saw) and version.",
            ["species", "model_version"],
            registry=self.registry,
        )
        self.registry.register(_ModelCollector(holder))

    def count_predictions(self, species: list[str], known: list[bool], version: str) -> None:
        """Count one answered request's fish by species."""
        tally: dict[str, int] = {}
        for name, is_known in zip(species, known, strict=True):
            label = name if is_known else UNKNOWN_SPECIES
            tally[label] = tally.get(label, 0) + 1
        for label, count in tally.items():
            self.predictions.labels(label, version).inc(count)


class _ModelCollector(Collector):
    """Read at scrape time, so it always shows the version in service right now."""

    def __init__(self, holder: ModelHolder) -> None:
        self._holder = holder

    def collect(self) -> Iterator[Metric]:
        active = self._holder.active
        info = GaugeMetricFamily(
            "tidemark_serving_model_info",
            "The model version in service (value 1); absent while there is none.",
            labels=["model_name", "model_version", "run_id"],
        )
        if active is not None:
            served = active.served
            info.add_metric([served.name, served.version, served.run_id], 1.0)
        yield info
        yield GaugeMetricFamily(
            "tidemark_serving_model_loaded",
            "1 when a production model is loaded, else 0.",
            value=float(active is not None),
        )
        yield GaugeMetricFamily(
            "tidemark_serving_registry_reachable",
            "1 when the last registry check succeeded, else 0.",
            value=float(self._holder.source.registry_ok),
        )
        yield CounterMetricFamily(
            "tidemark_serving_model_swaps",
            "Model versions swapped in since the server started (the first load included).",
            value=float(self._holder.swaps),
        )
