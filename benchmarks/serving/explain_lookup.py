"""What ``tidemark explain`` costs: finding an item on the predictions and scored topics.

    .venv/bin/python -m benchmarks.serving.explain_lookup [--items 100000] [--repeats 5]
        [--bootstrap-servers HOST:PORT]

Fills a predictions and a scored topic (3 partitions each, like the stack's) with ``--items``
fish records each, then times ``tidemark.explain.explain`` (both topics read, the registry
unreachable so that only the lookup counts) for the newest item, one in the middle, the oldest,
and a key that was never scored (the 404: a whole partition of each topic read). Without a
broker it starts a private Kafka on free ports under a temporary folder (as
benchmarks/streaming/scorer_throughput.py does). Prints the median and the spread per case.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import orjson
import typer

from benchmarks.streaming.scorer_throughput import private_kafka
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.explain import ItemNotFoundError, explain
from tidemark.project.catalog import load_catalog

CATALOG = load_catalog(Path("projects"), ["fish-weight"])
START = datetime(2026, 12, 1, tzinfo=UTC)


def _records(i: int) -> tuple[bytes, bytes, bytes]:
    at = START + timedelta(milliseconds=10 * i)
    prediction = {
        "fish_id": f"f-{i}", "species": "salmon", "length_cm": 70.0, "height_cm": 17.0,
        "measured_at": at, "predicted_weight_kg": 4.0, "species_known": True,
        "model_name": "bench", "model_version": "1", "predicted_at": at,
    }  # fmt: skip
    scored = prediction | {
        "weight_kg": 4.2, "abs_error_kg": 0.2, "rel_error": 0.2 / 4.2,
        "joined_at": at + timedelta(seconds=5),
    }  # fmt: skip
    option = orjson.OPT_UTC_Z
    return (
        f"f-{i}".encode(),
        orjson.dumps(prediction, option=option),
        orjson.dumps(scored, option=option),
    )


def _fill(settings: Settings, items: int) -> None:
    producer = kafka_io.producer(settings.kafka, linger_ms=20, batch_size=256 * 1024)
    topics = settings.kafka.topics
    for i in range(items):
        key, prediction, scored = _records(i)
        producer.send(topics.predictions, key=key, value=prediction)
        producer.send(topics.scored, key=key, value=scored)
    producer.flush()
    producer.close()


def _time(call: Callable[[], object], repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def main(
    items: Annotated[int, typer.Option(min=10, help="Records on each topic.")] = 100_000,
    repeats: Annotated[int, typer.Option(min=1, help="Lookups per case.")] = 5,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="A broker to use instead of a private one.")
    ] = None,
) -> None:
    """Fill the topics, then time each case."""
    if bootstrap_servers is None:
        with private_kafka() as bootstrap:
            _run(bootstrap, items, repeats)
    else:
        _run(bootstrap_servers, items, repeats)


def _run(bootstrap: str, items: int, repeats: int) -> None:
    run = uuid.uuid4().hex[:6]
    settings = CATALOG.settings(
        Settings(
            kafka_bootstrap_servers=bootstrap,
            kafka_topics_predictions=f"bench-{run}.predictions",
            kafka_topics_scored=f"bench-{run}.scored",
            # Nothing listens there: the lineage read fails at once and is reported, not timed.
            registry_tracking_uri="http://127.0.0.1:9",
            registry_timeout_s=0.5,
        )
    )
    kafka_io.ensure_topics(
        settings.kafka, [settings.kafka.topics.predictions, settings.kafka.topics.scored]
    )
    started = time.perf_counter()
    _fill(settings, items)
    typer.echo(f"filled 2 x {items} records in {time.perf_counter() - started:.1f} s")
    contracts = CATALOG.contracts()

    def lookup(key: str) -> Callable[[], object]:
        def call() -> object:
            try:
                return explain(settings, contracts, key)
            except ItemNotFoundError:
                return None

        return call

    cases = {
        "newest item": f"f-{items - 1}",
        "middle item": f"f-{items // 2}",
        "oldest item": "f-0",
        "unknown key (404)": "never-scored",
    }
    typer.echo(f"{'case':<20} {'median s':>9} {'min s':>8} {'max s':>8}")
    for name, key in cases.items():
        seconds = _time(lookup(key), repeats)
        typer.echo(
            f"{name:<20} {statistics.median(seconds):>9.3f} {min(seconds):>8.3f} "
            f"{max(seconds):>8.3f}"
        )


if __name__ == "__main__":
    typer.run(main)
