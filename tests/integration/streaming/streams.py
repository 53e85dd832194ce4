"""Helpers for the streaming integration tests: isolated topics, real service processes, reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from pymongo import MongoClient
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from streaming.simulator import Feed, SimulationOptions, SimulationStats, publish, scenario_rows
from tests.integration.projects import fish_on
from tidemark.config import SECTIONS, Settings
from tidemark.project.catalog import topics_of
from tidemark.project.contracts import Contracts
from tidemark.schemas import Prediction, Scored, utc_now
from tidemark.simulation.library import load_scenario


class Service:
    """A ``python -m tidemark <command>`` process against the test stack."""

    def __init__(self, settings: Settings, command: str, metrics_port: int, log: Path) -> None:
        self.command = command
        self.log = log
        self.metrics_port = metrics_port
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tidemark", command, "--metrics-port", str(metrics_port)],
                env=os.environ | settings.as_env(*SECTIONS),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        """SIGKILL: no batch is finished, nothing is flushed or committed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def metric(self, sample: str, default: float | None = None) -> float:
        """The value of one sample of the process's Prometheus metrics, e.g. ``name{label="x"}``.

        A labelled sample exists only once it was first counted: ``default`` stands for it
        until then (without one, its absence is a ``KeyError``).
        """
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[-1])
        if default is not None:
            return default
        raise KeyError(sample)

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` every half second; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


def _reader(settings: Settings, topic: str) -> tuple[KafkaConsumer, list[TopicPartition]]:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    except KafkaError:
        consumer.close()
        raise
    consumer.assign(partitions)
    return consumer, partitions


# A read's metadata request may go to a broker a test has just killed, or to a partition whose
# leader is moving: kafka-python raises then instead of asking another broker, so a read is
# tried again with a fresh client, the way a person would read again.
_through_broker_failures = retry(
    retry=retry_if_exception_type(KafkaError),
    stop=stop_after_delay(60),
    wait=wait_fixed(1),
    reraise=True,
)


@_through_broker_failures
def topic_size(settings: Settings, topic: str) -> int:
    """How many records the topic holds (sum of its partitions' end offsets)."""
    consumer, partitions = _reader(settings, topic)
    try:
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


@_through_broker_failures
def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record the topic holds now, from the beginning."""
    consumer, partitions = _reader(settings, topic)
    try:
        ends = consumer.end_offsets(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        while any(consumer.position(p) < ends[p] for p in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def fish_ids(records: list[Any]) -> list[str]:
    """The keys of records, as fish ids."""
    return [record.key.decode() for record in records]


# The pipeline tests' run: how many fish, how late their weights come, how many never do.
FISH = 20_000
LABEL_DELAY_S = 2.0
MISSING = 0.05


# Simulated time between two fish: 100 fish per second of line time, so the run spans 200 s of
# it and unmatched predictions expire within the run (the window is 60 s).
EVENT_INTERVAL_S = 0.01


def options(
    rate: float | None, start: datetime, first: int = 0, count: int = FISH
) -> SimulationOptions:
    """The simulator's options for fish ``first`` to ``first + count`` of the run, at ``rate``
    fish per second (None: flat out); the run's event time begins at ``start``."""
    return SimulationOptions(
        rate=rate,
        seed=11,
        label_delay_s=LABEL_DELAY_S,
        missing_truth_fraction=MISSING,
        limit=count,
        event_time_start=start + timedelta(seconds=first * EVENT_INTERVAL_S),
        event_interval_s=EVENT_INTERVAL_S,
    )


@dataclass
class Hold:
    """Holds the line after ``at`` fish until the test releases it.

    A service process takes tens of seconds to start on a busy machine, longer than the whole
    run lasts: a test that changes the services mid-run holds the line until they have
    changed, so that fish still come afterwards.
    """

    at: int
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """Let the rest of the fish come."""
        self.released.set()


class SimulateInBackground(Protocol):
    """The ``simulate_in_background`` fixture: starts the line on a thread."""

    def __call__(
        self, settings: Settings, rate: float, hold: Hold | None = None
    ) -> threading.Thread: ...


# How long a held line waits for its release before the simulator gives up.
HOLD_TIMEOUT_S = 600.0


def simulate(settings: Settings, rate: float | None, hold: Hold | None = None) -> SimulationStats:
    """Publish the run's fish (measurements and, later, weights), held at ``hold`` if given."""
    fish = fish_on(settings)
    contracts = Contracts(fish)
    rows = scenario_rows(load_scenario(fish), seed=11, loop=True)
    start = utc_now() - timedelta(hours=1)

    def send(chosen: SimulationOptions) -> SimulationStats:
        return publish(settings, [Feed(contracts, rows, chosen, topics_of(fish))])[fish.name]

    if hold is None:
        return send(options(rate, start))
    first = send(options(rate, start, count=hold.at))
    hold.reached.set()
    if not hold.released.wait(HOLD_TIMEOUT_S):
        raise TimeoutError(f"the line was held after {hold.at} fish and never released")
    rest = send(options(rate, start, first=hold.at, count=FISH - hold.at))
    return SimulationStats(
        inputs=first.inputs + rest.inputs,
        truths=first.truths + rest.truths,
        truths_dropped=first.truths_dropped + rest.truths_dropped,
    )


def training_ids(settings: Settings) -> list[str]:
    """The fish ids of every training row."""
    client: MongoClient[dict[str, Any]] = MongoClient(settings.store.uri)
    with client:
        collection = client[settings.store.database][settings.store.collection]
        return [str(d["_id"]) for d in collection.find({}, {"_id": 1})]


def training_count(settings: Settings) -> int:
    """How many training rows there are."""
    client: MongoClient[dict[str, Any]] = MongoClient(settings.store.uri)
    with client:
        return client[settings.store.database][settings.store.collection].count_documents({})


def wait_until_done(settings: Settings, fish: int, weighed: int, timeout_s: float) -> None:
    """Wait until ``fish`` predictions and ``weighed`` training rows exist."""
    wait_for(
        lambda: topic_size(settings, settings.kafka.topics.predictions) >= fish,
        timeout_s,
        f"{fish} predictions",
    )
    wait_for(lambda: training_count(settings) >= weighed, timeout_s, f"{weighed} joined fish")


def assert_nothing_lost_nothing_doubled(settings: Settings) -> None:
    """Every fish of the run predicted, every weighed one joined and stored exactly once."""
    measured = fish_ids(read_topic(settings, settings.kafka.topics.input))
    weighed = set(fish_ids(read_topic(settings, settings.kafka.topics.truth)))
    assert len(measured) == FISH
    assert len(set(measured)) == FISH
    wait_until_done(settings, FISH, len(weighed), timeout_s=300)

    predictions = [
        Prediction.from_json(r.value)
        for r in read_topic(settings, settings.kafka.topics.predictions)
    ]
    assert {p.fish_id for p in predictions} == set(measured)
    assert {p.model_name for p in predictions} == {settings.registry.model_name}

    training = training_ids(settings)
    assert len(training) == len(set(training)) == len(weighed)
    assert set(training) == weighed

    scored = [Scored.from_json(r.value) for r in read_topic(settings, settings.kafka.topics.scored)]
    assert {s.fish_id for s in scored} == weighed
    assert all(
        s.abs_error_kg == pytest.approx(abs(s.predicted_weight_kg - s.weight_kg)) for s in scored
    )
    assert read_topic(settings, settings.kafka.topics.dead_letter) == []
