"""The loop decides on evidence (issue 11), on the real stack.

Each story has its own model, topics and processes, short windows (15 s of event time, 30 fish
each) and simulated event time, so that it plays in a few minutes of wall time. The tutorial's
fish, in one story that two tests read (they share the bootstrap, the processes and the line):

1. ten windows of salmon scored by the salmon-only bootstrap model trigger nothing;
2. walleye arrive, one window at a time, until a version is promoted: no version is promoted on
   fewer held-out fish than the minimum (the monitor gathers a second window of walleye before
   it asks for the retrain, and the salmon are judged too);
3. the promoted version's tags and description state the evidence (n, p-value, per-species
   errors);
4. fresh salmon and walleye scored by it: each species' window error is within 1.5 times its
   noise floor (the mean relative error of the true law itself on the same fish);
5. plaice (the never-seen scenario's) then arrive while the walleye incident is in its cooldown
   and get their own retrain.

It prints the window errors before, during and after, and the seconds from the shift to the
detection, the promotion and the first prediction by the new version. A story of its own plays
the near-floor scenario's small walleye, whose floor sits just under the threshold: exactly one
retrain, whose rejection closes the incident.

No story sleeps for what it can wait on: the line's fish are waited for until they are scored,
and the monitor's judging until its last closed window is past the fish of interest.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from demo.incident import Incident, observed_incident
from demo.observer import LoopObserver
from demo.player import PhaseStart
from demo.run import wait_out_cooldown
from flows.train import BOOTSTRAP_SEED, train
from infra.local.stack import Stack
from monitoring.windows import TumblingWindows
from tests.integration.conftest import Processes
from tests.integration.lines import ChunkedLine
from tests.integration.loop import port_open, ready, wait, what_the_loop_did
from tests.integration.metrics import scrape
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
# How long a story plays a species' windows for a version that knows it to be promoted.
PROMOTION_DEADLINE_S = 600.0


def _short_windows(settings: Settings, processes: Processes, cooldown_s: float) -> Settings:
    """15-s windows and the given cooldown, for the settings and the processes started next."""
    settings = settings.override(
        monitor_window_s=WINDOW_S,
        monitor_allowed_lateness_s=2.0,
        monitor_idle_flush_s=10.0,
        monitor_cooldown_s=cooldown_s,
    )
    processes.env = processes.env | settings.as_env(*SECTIONS)
    return settings


@pytest.fixture
def short_loop(loop: tuple[Settings, Processes]) -> tuple[Settings, Processes]:
    """A test's own settings and processes, with 15-s windows and a short cooldown (a retrain
    that ended may be followed soon by another, unless something else holds it back)."""
    settings, processes = loop
    return _short_windows(settings, processes, cooldown_s=10.0), processes


class Line(ChunkedLine):
    """Plays a scenario's species in simulated event time, continuing where it stopped.

    A species the scenario does not have comes from the first of ``more`` scenarios that has it.
    """

    def __init__(self, settings: Settings, start: datetime, scenario: str, *more: str) -> None:
        project = fish_on(settings)
        super().__init__(settings, load_scenario(project, scenario), start, EVENT_INTERVAL_S)
        self.scenarios = [self.scenario, *(load_scenario(project, name) for name in more)]

    def phase(self, species: str) -> Phase:
        """The first phase with ``species``, with that species alone."""
        phase = next(p for s in self.scenarios for p in s.phases if species in p.segments)
        return phase.model_copy(update={"segments": {species: phase.segments[species]}})

    def play(self, species: Sequence[str], rate: float) -> list[PhaseStart]:
        """One window's worth of fish per entry of ``species``, all at ``rate`` fish/s."""
        phases = [
            self.phase(name).model_copy(update={"name": f"{name}-{i}", "count": FISH_PER_WINDOW})
            for i, name in enumerate(species)
        ]
        return self.play_phases(phases, rate)

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


@dataclass(frozen=True)
class TutorialStory:
    """What the tutorial story (with its plaice) played and what the loop did meanwhile."""

    settings: Settings
    observer: LoopObserver
    line: Line
    bootstrap: str
    walleye_shift: PhaseStart
    # None when no version was promoted in time (the test that needs it fails on it).
    walleye_version: str | None
    plaice_shift: PhaseStart | None
    plaice_version: str | None


@pytest.fixture(scope="module")
def tutorial_story(module_loop: tuple[Settings, Processes], stack: Stack) -> TutorialStory:
    """The tutorial's salmon, then walleye until a version is promoted, then fresh fish for it;
    then plaice beside the walleye until a second version is promoted, and fresh fish for it.

    The cooldown outlasts the whole story: only a new incident can start a second retrain.
    A promotion that does not come in time ends the story there; the tests say what is missing.
    """
    settings, processes = module_loop
    settings = _short_windows(settings, processes, cooldown_s=900.0)
    bootstrap = _start_loop(settings, processes, "tutorial", ["salmon"])
    observer = LoopObserver(settings)
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    line = Line(settings, start, "tutorial", "never-seen")
    try:
        # 1. Stationary salmon; the first walleye window closes the tenth.
        line.play(["salmon"] * STATIONARY_WINDOWS, FAST)
        # 2. Walleye, one window every few seconds, until a version is promoted.
        walleye_shift = line.play(["walleye"], FAST)[0]
        walleye_version = _play_until_promoted(line, observer, processes, ["walleye"], 1)
        if walleye_version is None:
            return TutorialStory(
                settings, observer, line, bootstrap, walleye_shift, None, None, None
            )
        # 4. Fresh fish of both species for the promoted version (a little settling first:
        # the scorer switches a poll after the alias moves).
        _settle(observer, processes, settings.registry.poll_interval_s + 3)
        line.play(["walleye", "salmon", "walleye", "salmon", "walleye"], FAST)
        _wait_scored(observer, processes, line)
        # 5. Plaice now, beside walleye, well inside the walleye incident's cooldown.
        plaice_shift = line.play(["plaice"], FAST)[0]
        plaice_version = _play_until_promoted(line, observer, processes, ["walleye", "plaice"], 2)
        if plaice_version is not None:
            _settle(observer, processes, settings.registry.poll_interval_s + 3)
            line.play(["plaice", "walleye", "plaice"], FAST)
            _wait_scored(observer, processes, line)
    finally:
        observer.close()
        # The story ends here, not with the module: a later test's serve-flows serves the same
        # deployments, and two runners would race for (and may run) each other's retrains.
        processes.stop()
    return TutorialStory(
        settings,
        observer,
        line,
        bootstrap,
        walleye_shift,
        walleye_version,
        plaice_shift,
        plaice_version,
    )


def test_tutorial_fish_promote_on_evidence_and_reach_each_floor(
    tutorial_story: TutorialStory,
) -> None:
    story = tutorial_story
    settings, observer = story.settings, story.observer
    # 1. The ten salmon windows asked for nothing: every request is of a window after the shift
    # (the monitor judges windows in event-time order, so it judged them before the first).
    assert observer.requests
    early = [r for r in observer.requests if r.window_end <= story.walleye_shift.event]
    assert not early, [(r.reason, r.window_start, r.metric_value) for r in early]

    # 3. Evidence on every promoted version, and stated on this one.
    minimum = settings.retrain.min_holdout_rows
    for version in registry.list_versions(settings.registry):
        if version.tags.get("decision") == "promoted":
            assert int(version.tags["heldout_n"]) >= minimum, (version.version, version.tags)
    promoted = story.walleye_version
    assert promoted is not None, f"no promotion; {what_the_loop_did(settings, observer.requests)}"
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
    assert f"{info.tags['heldout_n']} held-out items" in info.description
    assert "Wilcoxon" in info.description

    incident = _told(settings, observer, story.bootstrap, story.walleye_shift)
    assert incident.promoted is not None
    assert incident.promoted.version == promoted
    assert incident.first_prediction is not None

    # Each species' window error of the new version within 1.5 times its floor.
    judged = _windows_within_floor(story.line, observer.scored, promoted, ["salmon", "walleye"])
    assert judged >= 4


def test_a_species_never_seen_in_another_incidents_cooldown_gets_its_own_retrain(
    tutorial_story: TutorialStory,
) -> None:
    """Walleye shift the salmon model and are learned; plaice then arrive inside the walleye
    incident's cooldown, alarm as unseen at their first judged window, and get a retrain of their
    own: a version that knows them, whose plaice windows are each within 1.5 times their floor."""
    story = tutorial_story
    settings, observer = story.settings, story.observer
    walleye_version, plaice_version = story.walleye_version, story.plaice_version
    assert walleye_version is not None, (
        f"walleye: no promotion; {what_the_loop_did(settings, observer.requests)}"
    )
    assert story.plaice_shift is not None
    assert plaice_version is not None, (
        f"plaice: no promotion; {what_the_loop_did(settings, observer.requests)}"
    )
    plaice_requests = [r for r in observer.requests if r.model_version == walleye_version]
    assert plaice_requests, observer.requests
    info = registry.version_info(settings.registry, plaice_version)
    assert "plaice" in info.tags["trigger_segments"], info.tags
    assert int(info.tags[per_segment("heldout_n", "plaice")]) >= (
        settings.retrain.min_holdout_rows_per_segment
    )
    incident = _told(settings, observer, walleye_version, story.plaice_shift)
    assert incident.promoted is not None
    assert incident.promoted.version == plaice_version
    assert incident.first_prediction is not None
    judged = _windows_within_floor(story.line, observer.scored, plaice_version, ["plaice"])
    assert judged >= 2


# The near-floor story's bound: pairs of walleye windows played, at most, until a window crosses
# the threshold by chance (about one window in twelve does), before the retrain and after it.
NEAR_FLOOR_PAIRS = 40


def test_a_species_at_its_floor_near_the_threshold_triggers_exactly_one_retrain(
    short_loop: tuple[Settings, Processes], stack: Stack
) -> None:
    """Small walleye (near-floor scenario) that production knows already: their windows cross
    the threshold now and then by chance; no retrain can answer that. Exactly one runs, its
    candidate is rejected, and the rejection closes the incident: a later window that crosses
    the threshold again starts no second retrain."""
    settings, processes = short_loop
    # The incident closes at the rejected candidate's held-out error and reopens above it plus
    # the margin (at least the threshold). With the default 25 % the level is 0.1 whenever that
    # error is under 0.08, as it is for these fish now and then (one of two runs here: a second
    # retrain at 0.101): every chance crossing then rightly reopens the incident
    # (tests/unit/monitoring/test_policy.py), and a closed incident cannot be seen. Twice the
    # error (about 0.17) is beyond every chance window of these fish (about 0.06 to 0.13), so
    # each crossing after the rejection is one the closing must hold.
    settings = settings.override(monitor_reopen_margin=1.0)
    processes.env = processes.env | settings.as_env(*SECTIONS)
    bootstrap = _start_loop(settings, processes, "near-floor", ["salmon", "small-walleye"])
    observer = LoopObserver(settings)
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    line = Line(settings, start, "near-floor")
    threshold = settings.monitor.error_threshold
    try:
        # Walleye windows two at a time until the monitor asks for a retrain (a window crossed)…
        for _ in range(NEAR_FLOOR_PAIRS):
            line.play(["walleye", "walleye"], FAST)
            _settle(observer, processes, 2.0)
            if observer.requests:
                break
        assert observer.requests, f"no retrain asked in {NEAR_FLOOR_PAIRS} pairs of windows"
        # …then none until that retrain has decided…
        wait(
            lambda: any(_decisions(settings, bootstrap)),
            PROMOTION_DEADLINE_S,
            "the retrain's decision",
            processes,
        )
        rejected_at = line.event
        # …then pairs again until a window played after the decision crosses the threshold.
        for _ in range(NEAR_FLOOR_PAIRS):
            line.play(["walleye", "walleye"], FAST)
            _settle(observer, processes, 2.0)
            if _crossings(observer.scored, rejected_at, threshold):
                break
        # Two salmon windows: the first closes the last walleye window, the second the first.
        walleye_end = line.event
        line.play(["salmon", "salmon"], FAST)
        _wait_judged(observer, processes, settings, walleye_end + timedelta(seconds=WINDOW_S))
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
    # The rejection closed the incident: windows played after it (more than the cooldown after
    # its run started) crossed the threshold again, within the reopen level, were judged, and
    # none started a retrain.
    later = _crossings(observer.scored, rejected_at, threshold)
    (candidate,) = [v for v in registry.list_versions(settings.registry) if v.version != bootstrap]
    achievable = float(candidate.tags[per_segment("candidate_mean_relative_error", "walleye")])
    level = max(threshold, achievable * (1 + settings.monitor.reopen_margin))
    print(f"windows above the threshold after the rejection: {later} (reopen level {level:.3f})")
    assert later, f"no window crossed again in {NEAR_FLOOR_PAIRS} pairs"
    assert max(later) <= level, (later, level)


def _play_until_promoted(
    line: Line, observer: LoopObserver, processes: Processes, species: list[str], count: int
) -> str | None:
    """Play a window of ``species`` every few seconds until the ``count``-th promotion; its
    version (None if it did not come within ``PROMOTION_DEADLINE_S``)."""
    deadline = time.monotonic() + PROMOTION_DEADLINE_S
    while len(observer.promotions) < count:
        if time.monotonic() > deadline:
            return None
        line.play(species, FAST)
        _settle(observer, processes, 5.0)
    return observer.promotions[count - 1].version


def _wait_scored(observer: LoopObserver, processes: Processes, line: Line) -> None:
    """Until every fish the line played was scored (measured, predicted, weighed and joined):
    the observer started before the line, and every fish has its truth."""

    def scored() -> bool:
        observer.poll(0.5)
        return len({r.key for r in observer.scored}) >= line.sent

    wait(
        scored,
        120,
        "every fish played scored",
        processes,
    )


def _wait_judged(
    observer: LoopObserver, processes: Processes, settings: Settings, until: datetime
) -> None:
    """Until the monitor has closed and judged its windows up to ``until`` (event time), then
    read everything it published by then (it publishes a window's request before it closes the
    next window)."""

    def judged() -> bool:
        observer.poll(0.5)
        # The monitor's series of the one project it judges here (none before its first window).
        (project,) = settings.projects.listed
        sample = f'tidemark_monitor_window_end_timestamp_seconds{{project="{project}"}}'
        return scrape(settings.monitor.metrics_port).get(sample, 0.0) >= until.timestamp()

    wait(judged, 120, f"the monitor's windows judged up to {until:%H:%M:%S}", processes)
    observer.catch_up()


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
