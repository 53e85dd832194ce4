"""The fish line, simulated: measurements now, the matching weights a little later.

Fish come from a scenario (``tidemark.scenario``) or a user's CSV. Each fish is measured
(``fish.measurements``) at the chosen rate; its weight (``fish.weights``) follows after the label
delay, except for a seeded random fraction of fish whose weight never arrives, as when a fish
falls off the scale.

Timestamps are real (the wall clock at the moment of sending) by default. With an event-time
start, they are simulated instead: fish ``i`` is measured at ``start + i * interval`` and weighed
``label_delay_s`` later in that simulated time, whatever the sending rate, so that a test or a
demo can push hours of line time through the platform in seconds. Either way a weight is sent
only once its weighing time has come (real or simulated), so the weights topic is ordered by
event time as a real scale's would be.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.scenario import FishRecord, Scenario, generate
from tidemark.schemas import Measurement, Weight, utc_now


class SimulationOptions(BaseModel):
    """How the line runs: pace, label delay, lost weights, how many fish, which clock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float | None = Field(default=None, gt=0, description="fish per second; None: no pause")
    label_delay_s: float = Field(default=0.0, ge=0)
    missing_weight_fraction: float = Field(default=0.0, ge=0, le=1)
    seed: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=0, description="stop after this many fish")
    event_time_start: datetime | None = Field(
        default=None, description="simulate event time from here instead of the wall clock"
    )
    event_interval_s: float = Field(
        default=1.0, gt=0, description="simulated time between two fish (event time only)"
    )


@dataclass
class SimulationStats:
    """What the simulator sent."""

    measurements: int = 0
    weights: int = 0
    weights_dropped: int = 0


@dataclass(order=True)
class _DueWeight:
    due: datetime
    index: int
    weight: Weight = field(compare=False)


def scenario_fish(scenario: Scenario, seed: int, loop: bool) -> Iterator[FishRecord]:
    """The scenario's fish; with ``loop``, again and again with seeds seed, seed+1, ...

    Each pass uses the next seed, so fish ids never repeat within a run.
    """
    for pass_seed in itertools.count(seed) if loop else [seed]:
        yield from generate(scenario, pass_seed)


class Simulator:
    """Sends measurements and delayed weights for a stream of fish."""

    def __init__(
        self,
        fish: Iterable[FishRecord],
        options: SimulationOptions,
        send_measurement: Callable[[Measurement], None],
        send_weight: Callable[[Weight], None],
        *,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fish = fish
        self._options = options
        self._send_measurement = send_measurement
        self._send_weight = send_weight
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        # Its own stream, so the choice of lost weights does not disturb the fish themselves.
        self._rng = np.random.default_rng([options.seed, 1])
        self._due: list[_DueWeight] = []
        self.stats = SimulationStats()

    def run(
        self,
        progress: Callable[[SimulationStats], None] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> SimulationStats:
        """Send every fish (up to the limit), then the weights still due; returns the counts."""
        options = self._options
        fish = self._fish if options.limit is None else itertools.islice(self._fish, options.limit)
        started = self._monotonic()
        for index, record in enumerate(fish):
            if stop():
                break
            if options.rate is not None:
                self._pause_until(started + index / options.rate)
            measured_at = self._event_time(index)
            self._release(measured_at)
            self._send_measurement(
                Measurement(
                    fish_id=record.fish_id,
                    species=record.species,
                    length_cm=record.length_cm,
                    height_cm=record.height_cm,
                    measured_at=measured_at,
                )
            )
            self.stats.measurements += 1
            self._schedule_weight(index, record, measured_at)
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

    def _schedule_weight(self, index: int, record: FishRecord, measured_at: datetime) -> None:
        if self._rng.random() < self._options.missing_weight_fraction:
            self.stats.weights_dropped += 1
            return
        weighed_at = measured_at + timedelta(seconds=self._options.label_delay_s)
        weight = Weight(
            fish_id=record.fish_id,
            species=record.species,
            weight_kg=record.weight_kg,
            weighed_at=weighed_at,
        )
        heapq.heappush(self._due, _DueWeight(weighed_at, index, weight))

    def _release(self, now: datetime) -> None:
        while self._due and self._due[0].due <= now:
            self._send_weight(heapq.heappop(self._due).weight)
            self.stats.weights += 1

    def _drain(self, stop: Callable[[], bool]) -> None:
        while self._due and not stop():
            if self._options.event_time_start is None:
                # Real time: the scale weighs these fish when their delay has passed.
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


def publish(
    settings: Settings,
    fish: Iterable[FishRecord],
    options: SimulationOptions,
    progress: Callable[[SimulationStats], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> SimulationStats:
    """Run the simulator against Kafka; returns once every record sent is acknowledged.

    Raises ``KafkaError`` when a record could not be delivered.
    """
    producer = kafka_io.producer(settings.kafka)
    failures: list[BaseException] = []
    try:

        def send(topic: str, fish_id: str, value: bytes) -> None:
            future = producer.send(topic, key=fish_id.encode(), value=value)
            future.add_errback(failures.append)

        simulator = Simulator(
            fish,
            options,
            lambda m: send(settings.kafka.topics.input, m.fish_id, m.to_json()),
            lambda w: send(settings.kafka.topics.truth, w.fish_id, w.to_json()),
        )
        stats = simulator.run(progress, stop)
        producer.flush()
        if failures:
            raise failures[0]
        return stats
    finally:
        producer.close()
