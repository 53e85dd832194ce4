"""The loop decides on evidence (issue 11), on the real stack.

Each test has its own model, topics and scenario, short windows (15 s of event time, 30 fish
each) and simulated event time, so that the story plays in a few minutes of wall time. The
tutorial's fish:

1. ten windows of salmon scored by the salmon-only bootstrap model trigger nothing;
2. walleye arrive, one window at a time, until a version is promoted: no version is promoted on
   fewer held-out fish than the minimum (a retrain on the first walleye window alone ends
   ``insufficient_evidence`` and the next one reads its data again with the windows since);
3. the promoted version's tags and description state the evidence (n, p-value, per-species
   errors);
4. fresh salmon and walleye scored by it: each species' window error is within 1.5 times its
   noise floor (the mean relative error of the true law itself on the same fish).

It prints the window errors before, during and after, and the seconds from the shift to the
detection, the promotion and the first prediction by the new version. A second test plays the
near-floor scenario's small walleye, whose floor sits just under the threshold: at most one
retrain.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

import numpy as np
import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from demo.incident import summarize
from demo.observer import LoopObserver
from demo.player import PhaseStart, play
from demo.run import wait_out_cooldown
from infra.local.stack import Stack
from monitoring.windows import TumblingWindows
from tests.integration.conftest import Processes
from tests.integration.test_closed_loop import _port_open, _ready, _wait
from tidemark import registry
from tidemark.config import SECTIONS, Settings
from tidemark.orchestration import TRAIN_DEPLOYMENT, deployments_ready, prefect_api
from tidemark.promotion import per_species
from tidemark.scenario import Phase, Scenario, load_scenario
from tidemark.schemas import Scored

# Known to fail (issue 11), as their first fresh-clone run showed. The tutorial loop promoted a
# walleye-aware version on evidence (30 held-out walleye, p = 9.3e-10), but that version carries
# no `heldout_n.salmon`: the remembered salmon were trained on and not judged. The near-floor
# species asked for two retrains where at most one is allowed; the monitor's log also shows the
# drift incident firing again after the promotion, against the new version's reference. They
# keep running, so that a fix shows as an unexpected pass.
pytestmark = pytest.mark.xfail(
    reason="issue 11: remembered species are not judged; a near-floor species retrains twice",
    strict=False,
)

WINDOW_S = 15.0
# 30 fish per window: the monitor's minimum to judge a window.
EVENT_INTERVAL_S = 0.5
FISH_PER_WINDOW = int(WINDOW_S / EVENT_INTERVAL_S)
STATIONARY_WINDOWS = 10
# Wall-clock pace of the played fish (fish per second).
FAST = 60.0


@pytest.fixture
def short_loop(loop: tuple[Settings, Processes]) -> tuple[Settings, Processes]:
    """The closed-loop test's own settings and processes, with 15-s windows and a short
    cooldown (the retrain of an insufficient window may repeat soon after)."""
    settings, processes = loop
    settings = settings.override(
        monitor_window_s=WINDOW_S,
        monitor_allowed_lateness_s=2.0,
        monitor_idle_flush_s=10.0,
        monitor_cooldown_s=10.0,
    )
    processes.env = processes.env | settings.as_env(*SECTIONS)
    return settings, processes


class Line:
    """Plays a scenario's species in simulated event time, continuing where it stopped."""

    def __init__(self, settings: Settings, start: datetime, scenario: str) -> None:
        self.settings = settings
        self.scenario = load_scenario(scenario)
        self.event = start
        self.played = 0

    def phase(self, species: str) -> Phase:
        return next(p for p in self.scenario.phases if species in p.species)

    def play(self, species: Sequence[str], rate: float) -> list[PhaseStart]:
        """One window's worth of fish per entry of ``species``, all at ``rate`` fish/s."""
        self.played += 1
        phases = [
            self.phase(name).model_copy(update={"name": f"{name}-{i}", "count": FISH_PER_WINDOW})
            for i, name in enumerate(species)
        ]
        # Each chunk its own scenario name: fish ids differ from every other chunk's.
        scenario = Scenario(name=f"{self.scenario.name}-{self.played}", phases=phases)
        starts = play(
            self.settings,
            scenario,
            [rate] * len(phases),
            seed=self.played,
            label_delay_s=3.0,
            event_time_start=self.event,
            event_interval_s=EVENT_INTERVAL_S,
        )
        self.event += timedelta(seconds=scenario.count * EVENT_INTERVAL_S)
        return starts

    def noise_floor(self, record: Scored) -> float:
        """The relative error of the true (noise-free) law on this fish."""
        law = self.phase(record.species).species[record.species].weight
        length = np.array([record.length_cm])
        truth = float(law.median_kg(length, np.array([record.height_cm]) / length)[0])
        return abs(record.weight_kg - truth) / record.weight_kg


def test_tutorial_fish_promote_on_evidence_and_reach_each_floor(
    short_loop: tuple[Settings, Processes], stack: Stack
) -> None:
    settings, processes = short_loop
    first_version = _start_loop(settings, processes, "tutorial", ["salmon"])
    observer = LoopObserver(settings)
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    line = Line(settings, start, "tutorial")
    try:
        # 1. Stationary salmon, then one more so that the monitor closes the tenth window.
        line.play(["salmon"] * (STATIONARY_WINDOWS + 1), FAST)
        _settle(observer, processes, 2 * WINDOW_S)
        assert not observer.requests, [r.reason for r in observer.requests]

        # 2. Walleye, one window every few seconds, until a version is promoted.
        shift = line.play(["walleye"], FAST)[0]
        deadline = time.monotonic() + 600
        while not observer.promotions:
            assert time.monotonic() < deadline, f"no promotion; requests: {observer.requests}"
            processes.check_alive()
            line.play(["walleye"], FAST)
            _settle(observer, processes, 8.0)
        promoted = observer.promotions[0].version

        # 4. Fresh fish of both species for the promoted version (a little settling first:
        # the scorer switches a poll after the alias moves).
        _settle(observer, processes, settings.registry.poll_interval_s + 3)
        line.play(["walleye", "salmon", "walleye", "salmon", "walleye"], FAST)
        _settle(observer, processes, WINDOW_S)
    finally:
        observer.close()

    # 3. Evidence on every promoted version, and stated on this one.
    minimum = settings.retrain.min_holdout_rows
    for version in registry.list_versions(settings.registry):
        if version.tags.get("decision") == "promoted":
            assert int(version.tags["heldout_n"]) >= minimum, (version.version, version.tags)
    info = registry.version_info(settings.registry, promoted)
    assert int(info.tags["heldout_n"]) >= minimum
    assert 0.0 <= float(info.tags["p_value"]) <= settings.retrain.promotion_alpha
    for species in ("salmon", "walleye"):
        assert int(info.tags[per_species("heldout_n", species)]) >= (
            settings.retrain.min_holdout_rows_per_species
        )
        candidate = float(info.tags[per_species("candidate_mean_relative_error", species)])
        champion = float(info.tags[per_species("champion_mean_relative_error", species)])
        assert f"| {species} |" in info.description
        assert f"{candidate:.4f}" in info.description
        assert f"{champion:.4f}" in info.description
    assert f"{info.tags['heldout_n']} held-out fish" in info.description
    assert "Wilcoxon" in info.description

    incident = summarize(
        scored=observer.scored,
        requests=observer.requests,
        promotions=observer.promotions,
        first_prediction=observer.first_prediction,
        old_version=first_version,
        shift_wall=shift.wall,
        shift_event=shift.event,
        end_event=None,
        threshold=settings.monitor.error_threshold,
        window_s=WINDOW_S,
    )
    print("\n".join(["", *incident.lines(), f"retrain requests: {len(observer.requests)}"]))
    for request in observer.requests:
        print(
            f"  request at +{incident.since_shift(request.requested_at):.1f} s: "
            f"{request.reason.value} {request.metric} {request.metric_value:.3f}"
        )
    assert incident.promoted is not None
    assert incident.first_prediction is not None

    # Each species' window error of the new version within 1.5 times its floor.
    after = [r for r in observer.scored if r.model_version == promoted]
    print(f"windows of v{promoted} (mean relative error / noise floor, per species):")
    windows = TumblingWindows(WINDOW_S, allowed_lateness_s=0)
    for record in sorted(after, key=lambda r: r.measured_at):
        windows.add(record)
    judged = 0
    for window in windows.flush():
        by_species: dict[str, list[Scored]] = defaultdict(list)
        for record in after:
            if window.start <= record.measured_at < window.end:
                by_species[record.species].append(record)
        for species, records in sorted(by_species.items()):
            if len(records) < FISH_PER_WINDOW // 2:
                continue
            error = float(np.mean([r.rel_error for r in records]))
            floor = float(np.mean([line.noise_floor(r) for r in records]))
            print(f"  {window.start:%H:%M:%S} {species:<8} {error:.3f} / {floor:.3f}")
            assert error <= 1.5 * floor, (window.start, species, error, floor)
            judged += 1
    assert judged >= 4


def test_a_species_at_its_floor_near_the_threshold_triggers_at_most_one_retrain(
    short_loop: tuple[Settings, Processes], stack: Stack
) -> None:
    """Small walleye (near-floor scenario) that production knows already: their windows cross
    the threshold now and then by chance; no retrain can answer that, so at most one runs (its
    rejection closes the incident at the achievable error)."""
    settings, processes = short_loop
    _start_loop(settings, processes, "near-floor", ["salmon", "small-walleye"])
    observer = LoopObserver(settings)
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    line = Line(settings, start, "near-floor")
    try:
        # Twenty windows of walleye, two at a time with a pause for a retrain to run and end.
        for _ in range(10):
            line.play(["walleye", "walleye"], FAST)
            _settle(observer, processes, 6.0)
        line.play(["salmon"], FAST)
        _settle(observer, processes, 2 * WINDOW_S)
    finally:
        observer.close()
    windows = TumblingWindows(WINDOW_S, allowed_lateness_s=0)
    for record in sorted(observer.scored, key=lambda r: r.measured_at):
        windows.add(record)
    errors = [w.overall.mean_relative_error for w in windows.flush()]
    print("window errors:", " ".join(f"{e:.3f}" for e in errors))
    print(
        "retrain requests:", [(r.reason.value, round(r.metric_value, 3)) for r in observer.requests]
    )
    # The scenario does what it is for: some windows cross the threshold by chance.
    assert max(errors) > settings.monitor.error_threshold
    assert len(observer.requests) <= 1


def _start_loop(settings: Settings, processes: Processes, scenario: str, phases: list[str]) -> str:
    """Serve the flows, train the bootstrap version on ``phases`` of ``scenario`` and start the
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
            TRAIN_DEPLOYMENT,
            parameters={"scenario": scenario, "phases": phases},
            timeout=300,
            poll_interval=2,
        )
    assert bootstrap.state is not None
    assert bootstrap.state.is_completed(), bootstrap.state
    first_version = registry.production_version(settings.registry)
    assert first_version is not None
    services = {
        "score": settings.stream.scorer_metrics_port,
        "join": settings.stream.joiner_metrics_port,
        "monitor": settings.monitor.metrics_port,
    }
    for name, port in services.items():
        processes.start(name, "--metrics-port", str(port))
    for name, port in services.items():
        _wait(partial(_port_open, port), 300, f"{name} metrics port", processes)
    wait_out_cooldown(settings, print)
    return first_version


def _settle(observer: LoopObserver, processes: Processes, seconds: float) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        processes.check_alive()
        observer.poll(0.5)
