"""A retrain learns from the regime its incident says has changed (issue 26), on the real stack.

A running line of salmon (the growth scenario's spring law, 15-s windows of 30 fish) changes
law half-way through a window: from then on the salmon weigh 35 % more for their size. The
bootstrap version's error on them rises to about 0.26, the monitor opens ``error:salmon``, and
the retrain must read the salmon only from the first fish of the new law (the change-point on
the fish's errors inside the window), never the spring fish before it.

Noise floor: the mean relative error of the new law itself (its noise-free weight, the
``median`` of its log-normal noise) on the new-law fish the line played before the promotion:
about 0.056, the mean of ``|exp(0.07 z) - 1|``. The first promoted version's held-out error on
the salmon (its tag ``candidate_mean_relative_error.salmon``) must be within 1.5 times it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from demo.observer import LoopObserver
from demo.player import play
from infra.local.stack import Stack
from tests.integration.conftest import Processes
from tests.integration.loop import port_open as _port_open
from tests.integration.loop import ready as _ready
from tests.integration.loop import wait as _wait
from tests.integration.projects import fish_on
from tests.integration.test_loop_evidence import (
    EVENT_INTERVAL_S,
    FAST,
    FISH_PER_WINDOW,
    WINDOW_S,
    _settle,
)
from tidemark.config import SECTIONS, Settings
from tidemark.judging.tags import per_segment
from tidemark.orchestration import TRAIN_DEPLOYMENT, deployments_ready, prefect_api
from tidemark.project.contracts import Scored
from tidemark.registry import writer as registry
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario
from tidemark.simulation.spec import PowerLaw

# How much heavier for its size a salmon of the new law is than a spring one.
NEW_LAW = 1.35
CALM_WINDOWS = 4


@pytest.fixture
def regime_loop(loop: tuple[Settings, Processes]) -> tuple[Settings, Processes]:
    """The loop with 15-s windows and a short cooldown, as the evidence tests have it."""
    settings, processes = loop
    settings = settings.override(
        monitor_window_s=WINDOW_S,
        monitor_allowed_lateness_s=2.0,
        monitor_idle_flush_s=10.0,
        monitor_cooldown_s=10.0,
    )
    processes.env = processes.env | settings.as_env(*SECTIONS)
    return settings, processes


class ChangingLine:
    """Salmon in simulated event time: spring's law, then (from a given fish on) the new one."""

    def __init__(self, settings: Settings, start: datetime) -> None:
        self.settings = settings
        self.scenario = load_scenario(fish_on(settings), "growth")
        spring = self.scenario.phases[0]
        self.old = spring.model_copy(update={"segments": {"salmon": spring.segments["salmon"]}})
        law = spring.segments["salmon"].target
        assert isinstance(law, PowerLaw)
        changed = spring.segments["salmon"].model_copy(
            update={"target": law.model_copy(update={"scale": law.scale * NEW_LAW})}
        )
        self.new = spring.model_copy(update={"segments": {"salmon": changed}})
        self.event = start
        self.played = 0

    def play(self, *chunks: tuple[str, int]) -> list[datetime]:
        """Play ``(law, count)`` chunks back to back; the event time of each chunk's first fish."""
        self.played += 1
        phases = [
            (self.old if law == "old" else self.new).model_copy(
                update={"name": f"{law}-{i}", "count": count}
            )
            for i, (law, count) in enumerate(chunks)
        ]
        scenario = self.scenario.with_phases(phases, name=f"regime-{self.played}")
        starts = play(
            self.settings,
            scenario,
            [FAST] * len(phases),
            seed=self.played,
            label_delay_s=3.0,
            event_time_start=self.event,
            event_interval_s=EVENT_INTERVAL_S,
        )
        self.event += timedelta(seconds=scenario.count * EVENT_INTERVAL_S)
        return [s.event for s in starts]

    def floor(self, records: list[Scored]) -> float:
        """The new law's own mean relative error on these fish (the noise floor)."""
        law = self.new.segments["salmon"].target
        assert law is not None
        sizes = {
            name: np.array([r.prediction.item.fields[name] for r in records])
            for name in ("length_cm", "height_cm")
        }
        truth = law.median(sizes, len(records))
        weights = np.array([r.truth for r in records])
        return float(np.mean(np.abs(weights - truth) / weights))


def _start_line(settings: Settings, processes: Processes, csv: Path) -> str:
    """Serve the flows, bootstrap the default project (the fish) from ``csv``, start the
    scorer, the joiner and the monitor; return the bootstrap version."""
    processes.start("serve-flows")
    _wait(
        lambda: _ready(lambda: deployments_ready(settings.orchestration)),
        180,
        "deployments",
        processes,
    )
    with prefect_api(settings.orchestration):
        bootstrap: FlowRun = run_deployment(  # type: ignore[assignment]  # sync caller
            TRAIN_DEPLOYMENT, parameters={"csv": str(csv)}, timeout=300, poll_interval=2
        )
    assert bootstrap.state is not None
    assert bootstrap.state.is_completed(), bootstrap.state
    version = registry.production_version(settings.registry)
    assert version is not None
    services = {
        "score": settings.stream.scorer_metrics_port,
        "join": settings.stream.joiner_metrics_port,
        "monitor": settings.monitor.metrics_port,
    }
    for name, port in services.items():
        processes.start(name, "--metrics-port", str(port))
    for name, port in services.items():
        _wait(partial(_port_open, port), 300, f"{name} metrics port", processes)
    return version


def test_a_law_that_changes_mid_window_is_learned_from_its_first_fish_only(
    regime_loop: tuple[Settings, Processes], stack: Stack, tmp_path: Path
) -> None:
    settings, processes = regime_loop
    # The bootstrap: the growth scenario's spring salmon, as a CSV in the project's shape.
    spring = generate_frame(load_scenario(fish_on(settings), "growth"), 0, ["spring"])
    csv = tmp_path / "spring.csv"
    spring[["species", "length_cm", "height_cm", "weight_kg"]].to_csv(csv, index=False)
    first_version = _start_line(settings, processes, csv)
    observer = LoopObserver(settings)
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    line = ChangingLine(settings, start)
    half = FISH_PER_WINDOW // 2
    try:
        line.play(("old", CALM_WINDOWS * FISH_PER_WINDOW))
        # The law changes half-way through the next window.
        change = line.play(("old", half), ("new", FISH_PER_WINDOW - half))[1]
        deadline = time.monotonic() + 600
        while not observer.promotions:
            assert time.monotonic() < deadline, f"no promotion; requests: {observer.requests}"
            processes.check_alive()
            line.play(("new", FISH_PER_WINDOW))
            _settle(observer, processes, 8.0)
        promoted = observer.promotions[0].version
    finally:
        observer.close()

    # The first candidate after the bootstrap: what the incident's first retrain trained on.
    candidates = sorted(
        (
            v
            for v in registry.list_versions(settings.registry)
            if int(v.version) > int(first_version)
        ),
        key=lambda v: int(v.version),
    )
    first = candidates[0]
    trained = registry.load_reference(settings.registry, first.version)
    times = pd.to_datetime(trained["measured_at"], utc=True)
    before, after = int((times < change).sum()), int((times >= change).sum())
    held_out = float(first.tags[per_segment("candidate_mean_relative_error", "salmon")])
    champion = float(first.tags[per_segment("champion_mean_relative_error", "salmon")])
    new_fish = [
        r
        for r in observer.scored
        if r.at >= change and r.prediction.model_version == first_version and r.segment == "salmon"
    ]
    floor = line.floor(new_fish)
    info = registry.version_info(settings.registry, promoted)
    window = info.tags.get(per_segment("data_window", "salmon"), "")
    print(
        f"\nthe law changed at {change.isoformat()}; first candidate v{first.version} "
        f"({first.tags.get('decision')}): training rows per regime: old law {before}, new law "
        f"{after}; held-out salmon error {held_out:.4f} (champion v{first_version} "
        f"{champion:.4f}); noise floor {floor:.4f} on {len(new_fish)} new-law fish; first "
        f"promoted v{promoted}\n  data_window.salmon = {window}"
    )
    assert before == 0, (before, after)
    # One retrain answers the incident: its first candidate is the version promoted.
    assert first.version == promoted, (first.version, first.tags.get("decision"))
    assert after >= settings.retrain.min_training_rows_per_segment
    assert held_out <= 1.5 * floor, (held_out, floor)
    # Its tags say where its salmon begin, and why.
    begins = datetime.fromisoformat(window.split(" to ")[0])
    assert begins >= change, window
    assert "change-point" in window, window
    assert "change-point" in info.description
    assert first_version != promoted
