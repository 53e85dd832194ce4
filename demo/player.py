"""Plays a scenario phase by phase through the simulator, each phase at its own pace.

The items are exactly those of ``tidemark simulate`` for the same scenario and seed (same keys,
same order), sent to the topics of the scenario's project; only the pace differs per phase, so
that a demo or a test can pass quickly over the stationary start and give the loop time to react
during the shift. Event time is either the wall clock or simulated (``event_time_start`` + one
``event_interval_s`` per item, continuous across phases).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from streaming.simulator import Feed, SimulationOptions, publish, scenario_rows
from tidemark.config import Settings
from tidemark.project.catalog import project_settings
from tidemark.project.contracts import Contracts
from tidemark.schemas import utc_now
from tidemark.simulation.scenario import Scenario


@dataclass(frozen=True)
class PhaseStart:
    """When a phase began: on the wall clock, and in event time (its first item's)."""

    name: str
    index: int
    first_item: int
    wall: datetime
    event: datetime


def play(
    settings: Settings,
    scenario: Scenario,
    rates: Sequence[float],
    *,
    seed: int = 0,
    label_delay_s: float = 5.0,
    event_time_start: datetime | None = None,
    event_interval_s: float = 1.0,
    on_phase: Callable[[PhaseStart], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> list[PhaseStart]:
    """Send every item of ``scenario``, phase ``i`` at ``rates[i]`` items per second."""
    if len(rates) != len(scenario.phases):
        raise ValueError(f"need {len(scenario.phases)} rates (one per phase), got {len(rates)}")
    contracts = Contracts(scenario.project)
    rows = scenario_rows(scenario, seed, loop=False)
    starts = []
    first = 0
    for index, (phase, rate) in enumerate(zip(scenario.phases, rates, strict=True)):
        if stop():
            break
        event_start = (
            None
            if event_time_start is None
            else event_time_start + timedelta(seconds=first * event_interval_s)
        )
        now = utc_now()
        started = PhaseStart(phase.name, index, first, now, event_start or now)
        starts.append(started)
        if on_phase is not None:
            on_phase(started)
        options = SimulationOptions(
            rate=rate,
            label_delay_s=label_delay_s,
            seed=seed,
            event_time_start=event_start,
            event_interval_s=event_interval_s,
        )
        topics = project_settings(contracts.project, settings).kafka.topics
        feed = Feed(
            contracts,
            itertools.islice(rows, phase.count),
            options,
            {"input": topics.input, "truth": topics.truth},
        )
        publish(settings, [feed], stop=stop)
        first += phase.count
    return starts
