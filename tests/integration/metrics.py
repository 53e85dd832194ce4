"""Reading a service's Prometheus metrics the way a scraper does."""

from __future__ import annotations

import httpx


def scrape(port: int) -> dict[str, float]:
    """Every sample of one scrape of ``127.0.0.1:port/metrics``, by its name and labels as the
    text shows them (``name{label="x"}``)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
