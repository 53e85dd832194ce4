"""A project's line, simulated: inputs now, the matching truths a little later.

Items come from a scenario (``tidemark.simulation``) or a CSV in the project's shape. Each is
sent to the project's input topic at the chosen rate; its truth follows on the truth topic
after the label delay, except for a seeded random fraction of items whose truth never arrives
(an item that falls off the scale), and for a replayed row without a target. Every record is
built through the project's contracts, so each one sent is valid.

Timestamps are real (the wall clock at the moment of sending) by default. With an event-time
start, they are simulated instead: item ``i`` is seen at ``start + i * interval`` and its truth
``label_delay_s`` later in that simulated time, whatever the sending rate, so that a test or a
demo can push hours of line time through the platform in seconds. Either way a truth is sent
only once its time has come (real or simulated), so the truth topic is ordered by event time as
a real scale's would be.

Several projects are simulated by one process (:func:`publish` with several feeds), each on its
own thread and at its own pace, through one producer.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.project.contracts import Contracts, Message
from tidemark.simulation.generate import Row, generate
from tidemark.simulation.scenario import Scenario


class SimulationOptions(BaseModel):
    """How the line runs: pace, label delay, lost truths, how many items, which clock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float | None = Field(default=None, gt=0, description="items per second; None: no pause")
    label_delay_s: float = Field(default=0.0, ge=0)
    missing_truth_fraction: float = Field(default=0.0, ge=0, le=1)
    seed: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=0, description="stop after this many items")
    event_time_start: datetime | None = Field(
        default=None, description="simulate event time from here instead of the wall clock"
    )
    event_interval_s: float = Field(
        default=1.0, gt=0, description="simulated time between two items (event time only)"
    )


@dataclass
class SimulationStats:
    """What the simulator sent."""

    inputs: int = 0
    truths: int = 0
    # Lost on purpose (the missing-truth fraction).
    truths_dropped: int = 0
    # Rows that had no target to send (a replayed CSV's gaps).
    truths_unknown: int = 0


@dataclass(order=True)
class _DueTruth:
    due: datetime
    index: int
    truth: Message = field(compare=False)


def scenario_rows(scenario: Scenario, seed: int, loop: bool) -> Iterator[Row]:
    """The scenario's items; with ``loop``, again and again with seeds seed, seed+1, ...

    Each pass uses the next seed, so keys never repeat within a run.
    """
    for pass_seed in itertools.count(seed) if loop else [seed]:
        yield from generate(scenario, pass_seed)


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


class Simulator:
    """Sends a project's inputs and, later, their truths, for a stream of rows."""

    def __init__(
        self,
        contracts: Contracts,
        rows: Iterable[Row],
        options: SimulationOptions,
        send_input: Callable[[Message], None],
        send_truth: Callable[[Message], None],
        *,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._contracts = contracts
        self._rows = rows
        self._options = options
        self._send_input = send_input
        self._send_truth = send_truth
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        # Its own stream, so the choice of lost truths does not disturb the items themselves.
        self._rng = np.random.default_rng([options.seed, 1])
        self._due: list[_DueTruth] = []
        self.stats = SimulationStats()

    def run(
        self,
        progress: Callable[[SimulationStats], None] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> SimulationStats:
        """Send every item (up to the limit), then the truths still due; returns the counts."""
        options = self._options
        project = self._contracts.project
        rows = self._rows if options.limit is None else itertools.islice(self._rows, options.limit)
        started = self._monotonic()
        for index, row in enumerate(rows):
            if stop():
                break
            if options.rate is not None:
                self._pause_until(started + index / options.rate)
            seen_at = self._event_time(index)
            self._release(seen_at)
            self._send_input(
                self._contracts.input.model_validate(
                    {project.key: row.key, **row.features, project.times.input: seen_at}
                )
            )
            self.stats.inputs += 1
            self._schedule_truth(index, row, seen_at)
            if progress is not None:
                progress(self.stats)
        self._drain(stop)
        if progress is not None:
            progress(self.stats)
        return self.stats

    def _event_time(self, index: int) -> datetime:
        start = self._options.event_time_start
        if start is None:
            return self._clock()
        return start + timedelta(seconds=index * self._options.event_interval_s)

    def _schedule_truth(self, index: int, row: Row, seen_at: datetime) -> None:
        if self._rng.random() < self._options.missing_truth_fraction:
            self.stats.truths_dropped += 1
            return
        if row.target is None:
            self.stats.truths_unknown += 1
            return
        project = self._contracts.project
        known_at = seen_at + timedelta(seconds=self._options.label_delay_s)
        truth = self._contracts.truth.model_validate(
            {
                project.key: row.key,
                **{name: row.features.get(name) for name in project.truth_fields},
                project.target.name: row.target,
                project.times.truth: known_at,
            }
        )
        heapq.heappush(self._due, _DueTruth(known_at, index, truth))

    def _release(self, now: datetime) -> None:
        while self._due and self._due[0].due <= now:
            self._send_truth(heapq.heappop(self._due).truth)
            self.stats.truths += 1

    def _drain(self, stop: Callable[[], bool]) -> None:
        while self._due and not stop():
            if self._options.event_time_start is None:
                # Real time: the truths come when their delay has passed.
                wait = (self._due[0].due - self._clock()).total_seconds()
                if wait > 0:
                    self._sleep(min(wait, 0.5))
                    continue
                self._release(self._clock())
            else:
                self._release(self._due[0].due)

    def _pause_until(self, deadline: float) -> None:
        wait = deadline - self._monotonic()
        if wait > 0:
            self._sleep(wait)


@dataclass(frozen=True)
class Feed:
    """One project's rows and how to send them."""

    contracts: Contracts
    rows: Iterable[Row]
    options: SimulationOptions
    # Where the inputs and the truths go ("input", "truth"): the project's topics, or those the
    # stack's settings give its default project (tidemark.project.catalog.project_settings).
    topics: Mapping[str, str]

    @property
    def name(self) -> str:
        """The project's name."""
        return self.contracts.project.name


def encode(message: Message) -> bytes:
    """A record's JSON, absent optional fields left out."""
    return message.model_dump_json(exclude_none=True).encode()


def publish(
    settings: Settings,
    feeds: Sequence[Feed],
    progress: Callable[[str, SimulationStats], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> dict[str, SimulationStats]:
    """Run a simulator per feed against Kafka; returns once every record sent is acknowledged.

    The feeds run side by side, each on its own thread; the first error stops the others and
    is raised (``KafkaError`` when a record could not be delivered).
    """
    producer = kafka_io.producer(settings.kafka)
    failures: list[BaseException] = []
    failed = threading.Event()
    stats: dict[str, SimulationStats] = {}

    def halted() -> bool:
        return failed.is_set() or stop()

    def fail(error: BaseException) -> None:
        failures.append(error)
        failed.set()

    def run(feed: Feed) -> None:
        project = feed.contracts.project
        topics = feed.topics

        def send(topic: str, message: Message) -> None:
            key = str(getattr(message, project.key)).encode()
            producer.send(topic, key=key, value=encode(message)).add_errback(fail)

        simulator = Simulator(
            feed.contracts,
            feed.rows,
            feed.options,
            lambda m: send(topics["input"], m),
            lambda m: send(topics["truth"], m),
        )
        shown = None if progress is None else (lambda s: progress(feed.name, s))
        try:
            stats[feed.name] = simulator.run(shown, halted)
        except BaseException as error:  # raised by the caller's thread below
            fail(error)

    try:
        threads = [
            threading.Thread(target=run, args=(feed,), name=f"simulate-{feed.name}", daemon=True)
            for feed in feeds[1:]
        ]
        for thread in threads:
            thread.start()
        if feeds:
            run(feeds[0])
        for thread in threads:
            thread.join()
        producer.flush()
        if failures:
            raise failures[0]
        return stats
    finally:
        producer.close()
