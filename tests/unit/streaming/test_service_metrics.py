"""Each service's /metrics exports its own metrics, though one process imports every service."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client import CollectorRegistry
from tenacity import retry, stop_after_delay, wait_fixed

from monitoring import metrics as monitor_metrics
from streaming import joiner, scorer
from tidemark.stream.service import serve_metrics

PREFIXES = {
    "monitor": "tidemark_monitor_",
    "scorer": "tidemark_scorer_",
    "joiner": "tidemark_joiner_",
}
REGISTRIES = {
    "monitor": monitor_metrics.REGISTRY,
    "scorer": scorer.REGISTRY,
    "joiner": joiner.REGISTRY,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@retry(stop=stop_after_delay(10), wait=wait_fixed(0.05), reraise=True)
def _scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text


def _served_metrics(name: str, registry: CollectorRegistry) -> str:
    port = _free_port()
    serve_metrics(name, port, registry)
    return _scrape(port)


@pytest.mark.parametrize("service", sorted(REGISTRIES))
def test_a_services_metrics_endpoint_shows_only_its_own_metrics(service: str) -> None:
    text = _served_metrics(service, REGISTRIES[service])
    names = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert any(n.startswith(PREFIXES[service]) for n in names), names
    others = [p for s, p in PREFIXES.items() if s != service]
    assert not [n for n in names if n.startswith(tuple(others))]
    # What the default registry gave before stays: process and Python figures.
    assert "process_resident_memory_bytes" in names
    assert "python_info" in names


def test_the_monitors_endpoint_shows_its_per_incident_metrics() -> None:
    text = _served_metrics("monitor", monitor_metrics.REGISTRY)
    names = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE")}
    for name in (
        "tidemark_monitor_incident_alarms_total",
        "tidemark_monitor_incident_value",
        "tidemark_monitor_incidents_queued",
        "tidemark_monitor_evidence_pending_items",
    ):
        assert name in names, sorted(names)
