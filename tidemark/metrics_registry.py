"""One Prometheus registry per service, so that each ``/metrics`` exports only its own metrics.

The default registry holds every metric defined in any module a process imported: the
``tidemark`` command imports all the services' modules, so the monitor would also export the
scorer's and the joiner's counters at 0, and a query not filtered by job would mix those zeros in.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector


def service_registry() -> CollectorRegistry:
    """An empty registry with the process, platform and GC metrics the default one has."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
