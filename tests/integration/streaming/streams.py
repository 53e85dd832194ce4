"""Helpers for the streaming integration tests: isolated topics, real service processes, reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from pymongo import MongoClient

from streaming.simulator import Feed, SimulationOptions, SimulationStats, publish, scenario_rows
from tests.integration.metrics import scrape
from tests.integration.projects import fish_on
from tests.integration.topics import read_topic, topic_size
from tidemark.config import SECTIONS, Settings
from tidemark.project.catalog import topics_of
from tidemark.project.contracts import Contracts
from tidemark.schemas import utc_now
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

    def metrics(self) -> dict[str, float]:
        """Every sample of one scrape of the process's Prometheus metrics, by its name and
        labels as the text shows them (``name{label="x"}``)."""
        return scrape(self.metrics_port)

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


@dataclass(frozen=True)
class Copies:
    """At most how many records of one fish ``fish.predictions`` and ``fish.scored`` may hold.

    The services are at-least-once: a service that is SIGKILLed, or whose partitions move to
    another member (a scorer joining or leaving the group, a broker that stops), has the input
    it had not committed processed again by the partitions' next owner, so each such event can
    add one more copy of the fish in flight at that moment, and no other. With no such event a
    fish is predicted once and joined once. The joiner remembers the fish it joined, so a
    prediction sent twice is joined once: the scorer's events add no copy to ``fish.scored``.
    """

    predictions: int = 1
    scored: int = 1


@dataclass(frozen=True)
class RunOutcome:
    """What a checked run left on its topics: the fish with more than one copy on each."""

    doubled_predictions: int
    doubled_scored: int


def _fields(document: dict[str, Any]) -> dict[str, Any]:
    """A record's fields as MongoDB gives them back: times in UTC to the millisecond, and
    absent fields (None) left out."""
    return {
        name: value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)
        if isinstance(value, datetime)
        else value
        for name, value in document.items()
        if value is not None
    }


def assert_nothing_lost_nothing_doubled(settings: Settings, copies: Copies) -> RunOutcome:
    """Every fish of the run predicted and every weighed one joined, on each output topic at
    most ``copies`` times, and stored once: as the first scored record of that fish."""
    measured = fish_ids(read_topic(settings, settings.kafka.topics.input))
    weighed = set(fish_ids(read_topic(settings, settings.kafka.topics.truth)))
    assert len(measured) == FISH
    assert len(set(measured)) == FISH
    wait_until_done(settings, FISH, len(weighed), timeout_s=300)

    contracts = Contracts(fish_on(settings))
    predictions = [
        contracts.decode_prediction(r.value)
        for r in read_topic(settings, settings.kafka.topics.predictions)
    ]
    predicted = Counter(p.key for p in predictions)
    assert set(predicted) == set(measured)
    most = predicted.most_common(1)[0]
    assert most[1] <= copies.predictions, f"{most[0]} predicted {most[1]} times"
    assert {p.model_name for p in predictions} == {settings.registry.model_name}

    scored_records = read_topic(settings, settings.kafka.topics.scored)
    scored = [contracts.decode_scored(r.value) for r in scored_records]
    joined = Counter(s.key for s in scored)
    assert set(joined) == weighed
    most = joined.most_common(1)[0]
    assert most[1] <= copies.scored, f"{most[0]} joined {most[1]} times"
    assert all(s.abs_error == pytest.approx(abs(s.prediction.value - s.truth)) for s in scored)

    # One training row per weighed fish (its _id is the fish id), and it is one of the fish's
    # scored records: with no kill, its only one; after a kill the joiner may have stored one
    # copy and published another (at-least-once: the copies differ in when they were joined,
    # and may carry a challenger's prediction the other lacks), so a row equal to no scored
    # record of its fish is what fails.
    copies_of: dict[str, list[dict[str, Any]]] = {}
    for record in scored_records:
        fields = _fields(contracts.scored_fields(contracts.decode_scored(record.value)))
        copies_of.setdefault(record.key.decode(), []).append(fields)
    client: MongoClient[dict[str, Any]] = MongoClient(settings.store.uri, tz_aware=True)
    with client:
        collection = client[settings.store.database][settings.store.collection]
        rows = {str(row.pop("_id")): row for row in collection.find({})}
    assert set(rows) == weighed
    for fish_id, row in rows.items():
        assert _fields(row) in copies_of[fish_id], fish_id

    assert read_topic(settings, settings.kafka.topics.dead_letter) == []
    return RunOutcome(
        doubled_predictions=sum(n > 1 for n in predicted.values()),
        doubled_scored=sum(n > 1 for n in joined.values()),
    )
