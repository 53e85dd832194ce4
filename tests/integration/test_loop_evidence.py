"""The loop decides on evidence (issue 11), on the real stack.

Each test has its own model, topics and scenario, short windows (15 s of event time, 30 fish
each) and simulated event time, so that the story plays in a few minutes of wall time. The
tutorial's fish:

1. ten windows of salmon scored by the salmon-only bootstrap model trigger nothing;
2. walleye arrive, one window at a time, until a version is promoted: no version is promoted on
   fewer held-out fish than the minimum (the monitor gathers a second window of walleye before
   it asks for the retrain, and the salmon are judged too);
3. the promoted version's tags and description state the evidence (n, p-value, per-species
   errors);
4. fresh salmon and walleye scored by it: each species' window error is within 1.5 times its
   noise floor (the mean relative error of the true law itself on the same fish).

It prints the window errors before, during and after, and the seconds from the shift to the
detection, the promotion and the first prediction by the new version. A second test plays the
never-seen scenario: plaice arrive while the walleye incident is in its cooldown and get their
own retrain. A third plays the near-floor scenario's small walleye, whose floor sits just under
the threshold: exactly one retrain, whose rejection closes the incident. The last is the
closed loop end to end: ``make demo`` twice on one stack, one retrain and a recovery each time.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from demo.incident import Incident, observed_incident
from demo.observer import LoopObserver
from demo.player import PhaseStart, play
from demo.run import wait_out_cooldown
from flows.train import BOOTSTRAP_SEED, train
from infra.local.stack import Stack
from monitoring.windows import TumblingWindows
from tests.integration.conftest import Processes
from tests.integration.loop import port_open, ready, wait
from tests.integration.projects import fish_on
from tidemark.config import SECTIONS, Settings, get_settings
from tidemark.judging.tags import per_segment
from tidemark.orchestration import TRAIN_DEPLOYMENT, deployments_ready, prefect_api
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind
from tidemark.registry import writer as registry
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario
from tidemark.simulation.spec import Phase

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
        self.scenario = load_scenario(fish_on(settings), scenario)
        self.event = start
        self.played = 0

    def phase(self, species: str) -> Phase:
        """The first phase with ``species``, with that species alone."""
        phase = next(p for p in self.scenario.phases if species in p.segments)
        return phase.model_copy(update={"segments": {species: phase.segments[species]}})

    def play(self, species: Sequence[str], rate: float) -> list[PhaseStart]:
        """One window's worth of fish per entry of ``species``, all at ``rate`` fish/s."""
        self.played += 1
        phases = [
            self.phase(name).model_copy(update={"name": f"{name}-{i}", "count": FISH_PER_WINDOW})
            for i, name in enumerate(species)
        ]
        # Each chunk its own scenario name: fish ids differ from every other chunk's.
        scenario = self.scenario.with_phases(phases, name=f"{self.scenario.name}-{self.played}")
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
        species = str(record.segment)
        law = self.phase(species).segments[species].target
        assert law is not None
        sizes = {
            name: np.array([record.prediction.item.fields[name]])
            for name in ("length_cm", "height_cm")
        }
        truth = float(law.median(sizes, 1)[0])
        return abs(record.truth - truth) / record.truth


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
        assert int(info.tags[per_segment("heldout_n", species)]) >= (
            settings.retrain.min_holdout_rows_per_segment
        )
        candidate = float(info.tags[per_segment("candidate_mean_relative_error", species)])
        champion = float(info.tags[per_segment("champion_mean_relative_error", species)])
        assert f"| {species} |" in info.description
        assert f"{candidate:.4f}" in info.description
        assert f"{champion:.4f}" in info.description
    assert f"{info.tags['heldout_n']} held-out fish" in info.description
    assert "Wilcoxon" in info.description

    incident = _told(settings, observer, first_version, shift)
    assert incident.promoted is not None
    assert incident.first_prediction is not None

    # Each species' window error of the new version within 1.5 times its floor.
    assert _windows_within_floor(line, observer.scored, promoted, ["salmon", "walleye"]) >= 4


def test_a_species_never_seen_in_another_incidents_cooldown_gets_its_own_retrain(
    short_loop: tuple[Settings, Processes], stack: Stack
) -> None:
    """Walleye shift the salmon model and are learned; plaice then arrive inside the walleye
    incident's cooldown, alarm as unseen at their first judged window, and get a retrain of their
    own: a version that knows them, whose plaice windows are each within 1.5 times their floor."""
    settings, processes = short_loop
    # A cooldown that outlasts the whole plaice story: only a new incident can start a retrain.
    settings = settings.override(monitor_cooldown_s=900.0)
    processes.env = processes.env | settings.as_env(*SECTIONS)
    _start_loop(settings, processes, "never-seen", ["salmon"])
    observer = LoopObserver(settings)
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    line = Line(settings, start, "never-seen")
    try:
        line.play(["salmon"] * 3, FAST)
        _settle(observer, processes, WINDOW_S)
        line.play(["walleye"], FAST)
        walleye_deadline = time.monotonic() + 600
        while not observer.promotions:
            assert time.monotonic() < walleye_deadline, f"walleye: {observer.requests}"
            line.play(["walleye"], FAST)
            _settle(observer, processes, 8.0)
        walleye_version = observer.promotions[0].version
        _settle(observer, processes, settings.registry.poll_interval_s + 3)

        # Plaice now, beside walleye, well inside the walleye incident's cooldown.
        shift = line.play(["plaice"], FAST)[0]
        plaice_deadline = time.monotonic() + 600
        while len(observer.promotions) < 2:
            assert time.monotonic() < plaice_deadline, f"plaice: {observer.requests}"
            line.play(["walleye", "plaice"], FAST)
            _settle(observer, processes, 8.0)
        plaice_version = observer.promotions[1].version
        _settle(observer, processes, settings.registry.poll_interval_s + 3)
        line.play(["plaice", "walleye", "plaice"], FAST)
        _settle(observer, processes, WINDOW_S)
    finally:
        observer.close()

    plaice_requests = [r for r in observer.requests if r.model_version == walleye_version]
    assert plaice_requests, observer.requests
    info = registry.version_info(settings.registry, plaice_version)
    assert "plaice" in info.tags["trigger_segments"], info.tags
    assert int(info.tags[per_segment("heldout_n", "plaice")]) >= (
        settings.retrain.min_holdout_rows_per_segment
    )
    incident = _told(settings, observer, walleye_version, shift)
    assert incident.promoted is not None
    assert incident.promoted.version == plaice_version
    assert incident.first_prediction is not None
    judged = _windows_within_floor(line, observer.scored, plaice_version, ["plaice"])
    assert judged >= 2


# The near-floor story's bound: pairs of walleye windows played, at most, until a window played
# after the rejected retrain crosses the threshold again by chance.
NEAR_FLOOR_PAIRS = 16


def test_a_species_at_its_floor_near_the_threshold_triggers_exactly_one_retrain(
    short_loop: tuple[Settings, Processes], stack: Stack
) -> None:
    """Small walleye (near-floor scenario) that production knows already: their windows cross
    the threshold now and then by chance; no retrain can answer that. Exactly one runs, its
    candidate is rejected, and the rejection closes the incident: a later window that crosses
    the threshold again starts no second retrain."""
    settings, processes = short_loop
    bootstrap = _start_loop(settings, processes, "near-floor", ["salmon", "small-walleye"])
    observer = LoopObserver(settings)
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    line = Line(settings, start, "near-floor")
    threshold = settings.monitor.error_threshold
    rejected_at: datetime | None = None
    try:
        # Walleye windows two at a time, with a pause for a retrain to run and end, until the
        # retrain was rejected and a window played after that crossed the threshold again.
        for _ in range(NEAR_FLOOR_PAIRS):
            line.play(["walleye", "walleye"], FAST)
            _settle(observer, processes, 6.0)
            if rejected_at is None and _decisions(settings, bootstrap):
                rejected_at = line.event
            if rejected_at is not None and _crossings(observer.scored, rejected_at, threshold):
                break
        line.play(["salmon"], FAST)
        _settle(observer, processes, 2 * WINDOW_S)
    finally:
        observer.close()
    errors = [e for _, e in _window_errors(observer.scored)]
    print("window errors:", " ".join(f"{e:.3f}" for e in errors))
    print(
        "retrain requests:", [(r.reason.value, round(r.metric_value, 3)) for r in observer.requests]
    )
    # The scenario does what it is for: some windows cross the threshold by chance.
    assert max(errors) > threshold
    assert len(observer.requests) == 1, observer.requests
    # The one retrain's candidate was judged and rejected: production stays.
    assert _decisions(settings, bootstrap) == ["rejected"]
    assert not observer.promotions
    assert registry.production_version(settings.registry) == bootstrap
    # The rejection closed the incident: windows played after it crossed the threshold again,
    # and none started a second retrain.
    assert rejected_at is not None
    later = _crossings(observer.scored, rejected_at, threshold)
    print(f"windows above the threshold after the rejection: {later}")
    assert later, f"no window crossed again in {NEAR_FLOOR_PAIRS} pairs"


def _window_errors(scored: Sequence[Scored]) -> list[tuple[datetime, float]]:
    """Each window's start and mean relative error, by event time."""
    windows = TumblingWindows(WINDOW_S, allowed_lateness_s=0, judged_by=ErrorKind.RELATIVE)
    for record in sorted(scored, key=lambda r: r.at):
        windows.add(record)
    return [(w.start, w.overall.judged) for w in windows.flush()]


def _crossings(scored: Sequence[Scored], since: datetime, threshold: float) -> list[float]:
    """The errors of the windows that start at ``since`` or later and cross ``threshold``."""
    return [e for start, e in _window_errors(scored) if start >= since and e > threshold]


def _decisions(settings: Settings, bootstrap: str) -> list[str]:
    """The decisions of the versions registered after ``bootstrap`` (retrains' candidates)."""
    return [
        v.tags.get("decision", "")
        for v in registry.list_versions(settings.registry)
        if int(v.version) > int(bootstrap)
    ]


def _start_loop(
    settings: Settings,
    processes: Processes,
    scenario: str,
    phases: list[str],
    *,
    bootstrap_by_deployment: bool = False,
) -> str:
    """Train the bootstrap version on ``phases`` of ``scenario``, serve the flows and start
    the scorer, the joiner and the monitor; return the bootstrap version.

    The bootstrap runs the ``train`` flow in this process before the processes start, beside
    nothing (a test that is not about the bootstrap need not wait for the deployments first);
    ``bootstrap_by_deployment`` runs it through the served ``train`` deployment instead, as
    ``make up`` does.
    """
    # The bootstrap data: ``phases`` of ``scenario``, as a CSV in the project's shape.
    frame = generate_frame(load_scenario(fish_on(settings), scenario), BOOTSTRAP_SEED, phases)
    csv = Path(tempfile.mkdtemp(prefix="bootstrap-")) / f"{scenario}.csv"
    frame[["species", "length_cm", "height_cm", "weight_kg"]].to_csv(csv, index=False)
    if not bootstrap_by_deployment:
        first_version = _train_in_process(settings, csv)
    processes.start("serve-flows")
    services = {
        "score": settings.stream.scorer_metrics_port,
        "join": settings.stream.joiner_metrics_port,
        "monitor": settings.monitor.metrics_port,
    }
    if not bootstrap_by_deployment:
        for name, port in services.items():
            processes.start(name, "--metrics-port", str(port))
    wait(
        lambda: ready(lambda: deployments_ready(settings.orchestration)),
        300,
        "deployments",
        processes,
    )
    if bootstrap_by_deployment:
        with prefect_api(settings.orchestration):
            run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync caller
                TRAIN_DEPLOYMENT,
                parameters={"csv": str(csv)},
                timeout=300,
                poll_interval=2,
            )
        assert run.state is not None
        assert run.state.is_completed(), run.state
        for name, port in services.items():
            processes.start(name, "--metrics-port", str(port))
    version = registry.production_version(settings.registry)
    assert version is not None
    if not bootstrap_by_deployment:
        assert version == first_version
    for name, port in services.items():
        wait(partial(port_open, port), 300, f"{name} metrics port", processes)
    wait_out_cooldown(settings, print)
    return version


def _train_in_process(settings: Settings, csv: Path) -> str:
    """The platform's ``train`` flow, run here on the test's settings: the bootstrap version."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.as_env(*SECTIONS).items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        try:
            with prefect_api(settings.orchestration):
                outcome = train(csv=str(csv))
        finally:
            get_settings.cache_clear()
    assert outcome.decision == "promoted", outcome
    assert outcome.version is not None
    return outcome.version


def _told(
    settings: Settings, observer: LoopObserver, old_version: str, shift: PhaseStart
) -> Incident:
    """The incident since ``shift``, printed: window errors, requests, promotion, timings."""
    incident = observed_incident(observer, settings, old_version=old_version, shift=shift, end=None)
    print("\n".join(["", *incident.lines(), f"retrain requests: {len(observer.requests)}"]))
    for request in observer.requests:
        print(
            f"  request at +{incident.since_shift(request.requested_at):.1f} s: "
            f"{request.reason.value} {request.metric} {request.metric_value:.3f}"
        )
    return incident


def _windows_within_floor(
    line: Line, scored: Sequence[Scored], version: str, species: Sequence[str]
) -> int:
    """Print and check each window's error of ``version`` per species against the noise floor
    (at most 1.5 times it); return how many species windows were judged."""
    after = [r for r in scored if r.prediction.model_version == version and r.segment in species]
    print(f"windows of v{version} (mean relative error / noise floor, per species):")
    by_window: dict[tuple[datetime, str], list[Scored]] = defaultdict(list)
    windows = TumblingWindows(WINDOW_S, allowed_lateness_s=0, judged_by=ErrorKind.RELATIVE)
    for record in after:
        by_window[(windows.window_start(record.at), str(record.segment))].append(record)
    judged = 0
    for (start, name), records in sorted(by_window.items()):
        if len(records) < FISH_PER_WINDOW // 2:
            continue
        error = float(np.mean([r.rel_error for r in records]))
        floor = float(np.mean([line.noise_floor(r) for r in records]))
        print(f"  {start:%H:%M:%S} {name:<8} {error:.3f} / {floor:.3f}")
        assert error <= 1.5 * floor, (start, name, error, floor)
        judged += 1
    return judged


def _settle(observer: LoopObserver, processes: Processes, seconds: float) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        processes.check_alive()
        observer.poll(0.5)
