"""A scenario's items played in simulated event time, a chunk at a time, each chunk's event time
following the last one's: a story plays a window's worth of one phase, watches the loop, and
plays the next."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from demo.player import PhaseStart, play
from tidemark.config import Settings
from tidemark.simulation.scenario import Scenario
from tidemark.simulation.spec import Phase


class ChunkedLine:
    """Plays chunks of ``scenario``'s phases from ``start`` (event time), an item every
    ``event_interval_s`` of it, continuing where the last chunk stopped."""

    def __init__(
        self, settings: Settings, scenario: Scenario, start: datetime, event_interval_s: float
    ) -> None:
        self.settings = settings
        self.scenario = scenario
        self.event = start
        self.event_interval_s = event_interval_s
        self.played = 0
        self.sent = 0

    def play_phases(self, phases: Sequence[Phase], rate: float) -> list[PhaseStart]:
        """``phases`` back to back at ``rate`` items per second of wall clock; where each began."""
        self.played += 1
        # Each chunk its own scenario name: its keys differ from every other chunk's.
        scenario = self.scenario.with_phases(phases, name=f"{self.scenario.name}-{self.played}")
        starts = play(
            self.settings,
            scenario,
            [rate] * len(phases),
            seed=self.played,
            label_delay_s=3.0,
            event_time_start=self.event,
            event_interval_s=self.event_interval_s,
        )
        self.event += timedelta(seconds=scenario.count * self.event_interval_s)
        self.sent += scenario.count
        return starts
