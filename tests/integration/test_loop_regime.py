"""A retrain learns from the regime its incident says has changed (issues 26 and 22), on the
real stack, in one story of three phases on one line (15-s windows of 30 fish, simulated event
time), each played until a version is promoted and then until two windows of its fish are scored
by that version. Each window is played once the monitor has read every fish played before it
(its records counter), never after a sleep: a window played earlier moves the monitor's clock
past the last one's records still coming in (late, left out of their window):

1. a known segment on a new law: a running line of salmon (the growth scenario's spring law)
   changes law half-way through a window: from then on the salmon weigh 35 % more for their
   size. The bootstrap version's error on them rises to about 0.26, the monitor opens
   ``error:salmon``, and the retrain must read the salmon only from the first fish of the new
   law (the change-point on the fish's errors inside the window), never the spring fish before;
2. a segment never seen: plaice (the never-seen scenario's) alone on the line, ``unseen:plaice``;
3. the first segment drifted: the salmon grown to the growth scenario's summer sizes, 7 % heavier
   for their size and less noisy (``noise_sd`` 0.04, floor about 0.032). At 5 % the second
   phase's version scored them at 0.033 to 0.056 in five runs (too near their floor: a
   retrain's gain on its 15 held-out salmon was then not significant, p = 0.46 once, and its
   candidate neither promoted nor shadowed); 7 % puts them about 0.02 higher, twice their
   floor and well under the 0.10 threshold (at autumn sizes
   and 4 % they reached 0.101 in CI and the retrain was asked on error): only their drift
   against that version's training data (``drift:salmon``, an incident of that version) can
   start the retrain, as the grown salmon of issue 22 could not while drift had one key for the
   stack. A candidate not proven better on the holdout but no worse may still be promoted from
   shadow on live salmon (``tidemark.judging.shadow``): still one retrain.

Each phase gets one retrain, and the first two windows of each phase's fish, scored by the
version that phase promoted, are each within 1.5 times their noise floor: the mean relative
error of the phase's law itself (its noise-free weight, the ``median`` of its log-normal noise)
on the same fish (about 0.056 for the first two phases, the mean of ``|exp(0.07 z) - 1|``, and
0.032 for the third). The first promoted version's held-out error on the salmon (its tag
``candidate_mean_relative_error.salmon``) must be within 1.5 times the first phase's floor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
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
from tests.integration.loop import what_the_loop_did
from tests.integration.metrics import scrape
from tests.integration.projects import fish_on
from tests.integration.test_loop_evidence import (
    EVENT_INTERVAL_S,
    FAST,
    FISH_PER_WINDOW,
    PROMOTION_DEADLINE_S,
    WINDOW_S,
)
from tidemark.config import SECTIONS, Settings
from tidemark.judging.tags import per_segment
from tidemark.orchestration import TRAIN_DEPLOYMENT, deployments_ready, prefect_api
from tidemark.project.contracts import Scored
from tidemark.registry import writer as registry
from tidemark.schemas import RetrainRequest
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario
from tidemark.simulation.spec import Phase, PowerLaw

# How much heavier for its size a salmon of the new law is than a spring one.
NEW_LAW = 1.35
# How much heavier for its size a grown salmon (third phase, summer sizes) is than one of the
# new law, and its law's noise: its error under the second phase's version is about twice its
# floor (a retrain's gain is significant on its held-out salmon) and well under the 0.10
# threshold, so that only its drift can start a retrain.
GROWN_CONDITION = 1.07
GROWN_NOISE = 0.04
CALM_WINDOWS = 4
# Windows of each phase's fish scored by its promoted version, for its final error.
FINAL_WINDOWS = 2
# Windows played after a promotion, at most, until FINAL_WINDOWS of them are the new version's.
SWITCH_WINDOWS = 6


@pytest.fixture(scope="module")
def regime_loop(module_loop: tuple[Settings, Processes]) -> tuple[Settings, Processes]:
    """The loop with 15-s windows and a short cooldown, as the evidence tests have it."""
    settings, processes = module_loop
    settings = settings.override(
        monitor_window_s=WINDOW_S,
        monitor_allowed_lateness_s=2.0,
        monitor_idle_flush_s=10.0,
        monitor_cooldown_s=10.0,
    )
    processes.env = processes.env | settings.as_env(*SECTIONS)
    return settings, processes


class ChangingLine:
    """Fish in simulated event time, each chunk on one of the story's laws: ``old`` (spring
    salmon), ``new`` (salmon on the new law), ``plaice`` (never seen) and ``grown`` (salmon of
    the new law grown larger)."""

    def __init__(self, settings: Settings, start: datetime) -> None:
        self.settings = settings
        project = fish_on(settings)
        self.scenario = load_scenario(project, "growth")
        spring, summer = self.scenario.phases[0], self.scenario.phases[1]
        self.old = spring.model_copy(update={"segments": {"salmon": spring.segments["salmon"]}})
        law = spring.segments["salmon"].target
        assert isinstance(law, PowerLaw)
        new_law = law.model_copy(update={"scale": law.scale * NEW_LAW})
        changed = spring.segments["salmon"].model_copy(update={"target": new_law})
        self.new = spring.model_copy(update={"segments": {"salmon": changed}})
        grown_law = new_law.model_copy(
            update={"scale": new_law.scale * GROWN_CONDITION, "noise_sd": GROWN_NOISE}
        )
        grown = summer.segments["salmon"].model_copy(update={"target": grown_law})
        self.grown = summer.model_copy(update={"segments": {"salmon": grown}})
        never_seen = load_scenario(project, "never-seen").phases[-1]
        plaice = never_seen.segments["plaice"]
        self.plaice = never_seen.model_copy(update={"segments": {"plaice": plaice}})
        self.event = start
        self.played = 0
        self.sent = 0

    def law(self, name: str) -> Phase:
        """The phase of the law called ``name``."""
        laws = {"old": self.old, "new": self.new, "grown": self.grown, "plaice": self.plaice}
        return laws[name]

    def play(self, *chunks: tuple[str, int]) -> list[datetime]:
        """Play ``(law, count)`` chunks back to back; the event time of each chunk's first fish."""
        self.played += 1
        phases = [
            self.law(law).model_copy(update={"name": f"{law}-{i}", "count": count})
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
        self.sent += scenario.count
        return [s.event for s in starts]

    def floor(self, records: list[Scored], law: str = "new") -> float:
        """The mean relative error of the law called ``law`` itself on these fish (the noise
        floor)."""
        phase = self.law(law)
        (segment,) = phase.segments
        target = phase.segments[segment].target
        assert target is not None
        sizes = {
            name: np.array([r.prediction.item.fields[name] for r in records])
            for name in ("length_cm", "height_cm")
        }
        truth = target.median(sizes, len(records))
        weights = np.array([r.truth for r in records])
        return float(np.mean(np.abs(weights - truth) / weights))


@dataclass(frozen=True)
class StoryPhase:
    """One phase of the story: its law, the event time of its first fish and of its final
    windows, and the version it promoted (None when none came in time)."""

    name: str
    law: str
    segment: str
    start: datetime
    promoted: str | None = None
    final_start: datetime | None = None


@dataclass(frozen=True)
class RegimeStory:
    """What the three-phase story played and what the loop did meanwhile."""

    settings: Settings
    observer: LoopObserver
    line: ChangingLine
    first_version: str
    # When the first phase's law changed (half-way through a window).
    change: datetime
    phases: tuple[StoryPhase, ...]


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


def _scored(line: ChangingLine, observer: LoopObserver, processes: Processes) -> None:
    """Until every fish the line played is scored (measured, predicted, weighed and joined) and
    read by the monitor: a window's fish played before the monitor read the last one's could
    move its clock past that window's last records (late, left out of the window)."""
    deadline = time.monotonic() + 120
    port = line.settings.monitor.metrics_port
    while len({r.key for r in observer.scored}) < line.sent or _monitor_read(port) < line.sent:
        processes.check_alive()
        assert time.monotonic() < deadline, f"{line.sent} fish played, not all scored and read"
        observer.poll(0.5)


def _monitor_read(port: int) -> float:
    """The scored records the monitor has read (in a window, late or replayed)."""
    samples = scrape(port)
    return sum(v for k, v in samples.items() if k.startswith("tidemark_monitor_records_total{"))


def _until_promoted(
    line: ChangingLine, observer: LoopObserver, processes: Processes, law: str, count: int
) -> str | None:
    """Play ``law``'s fish a window at a time, each once the one before it is scored, until the
    ``count``-th promotion; its version (None when it did not come within
    ``PROMOTION_DEADLINE_S``). The monitor closes a window when the next one's fish arrive."""
    deadline = time.monotonic() + PROMOTION_DEADLINE_S
    while len(observer.promotions) < count:
        if time.monotonic() > deadline:
            return None
        line.play((law, FISH_PER_WINDOW))
        _scored(line, observer, processes)
    return observer.promotions[count - 1].version


def _final_windows(
    line: ChangingLine, observer: LoopObserver, processes: Processes, law: str, version: str
) -> datetime | None:
    """After a promotion: ``law``'s fish a window at a time (each once the one before it is
    scored) until ``FINAL_WINDOWS`` windows in a row were scored by ``version`` alone (the
    scorer switches at its next registry poll); the event time of their first fish (None when
    the scorer did not switch within ``SWITCH_WINDOWS``)."""
    theirs: list[datetime] = []
    for _ in range(SWITCH_WINDOWS):
        start = line.play((law, FISH_PER_WINDOW))[0]
        _scored(line, observer, processes)
        end = start + timedelta(seconds=WINDOW_S)
        fish = [r for r in observer.scored if start <= r.at < end]
        mine = all(r.prediction.model_version == version for r in fish)
        theirs = [*theirs, start] if mine else []
        if len(theirs) == FINAL_WINDOWS:
            return theirs[0]
    return None


@pytest.fixture(scope="module")
def regime_story(
    regime_loop: tuple[Settings, Processes], stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> RegimeStory:
    """Bootstrap on spring salmon, then the three phases, each until its promotion and then
    for its final windows; a promotion that does not come in time ends the story there."""
    settings, processes = regime_loop
    # The bootstrap: the growth scenario's spring salmon, as a CSV in the project's shape.
    spring = generate_frame(load_scenario(fish_on(settings), "growth"), 0, ["spring"])
    csv = tmp_path_factory.mktemp("regime") / "spring.csv"
    spring[["species", "length_cm", "height_cm", "weight_kg"]].to_csv(csv, index=False)
    first_version = _start_line(settings, processes, csv)
    observer = LoopObserver(settings)
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    line = ChangingLine(settings, start)
    half = FISH_PER_WINDOW // 2
    phases: list[StoryPhase] = []
    try:
        line.play(("old", CALM_WINDOWS * FISH_PER_WINDOW))
        # 1. The law changes half-way through the next window.
        change = line.play(("old", half), ("new", FISH_PER_WINDOW - half))[1]
        _scored(line, observer, processes)
        plan = [("new law", "new", "salmon"), ("never seen", "plaice", "plaice")]
        plan.append(("grown", "grown", "salmon"))
        for count, (name, law, segment) in enumerate(plan, start=1):
            # The phase's first fish is the next one the line plays.
            begins = change if count == 1 else line.event
            promoted = _until_promoted(line, observer, processes, law, count)
            if promoted is None:
                phases.append(StoryPhase(name, law, segment, begins))
                break
            final = _final_windows(line, observer, processes, law, promoted)
            phases.append(StoryPhase(name, law, segment, begins, promoted, final))
            if final is None:
                break
    finally:
        observer.close()
        # The story ends here, not with the module: a later test's serve-flows serves the same
        # deployments, and two runners would race for (and may run) each other's retrains.
        processes.stop()
    return RegimeStory(settings, observer, line, first_version, change, tuple(phases))


def test_a_law_that_changes_mid_window_is_learned_from_its_first_fish_only(
    regime_story: RegimeStory,
) -> None:
    story = regime_story
    settings, observer, line = story.settings, story.observer, story.line
    first_version, change = story.first_version, story.change
    assert observer.promotions, f"no promotion; {what_the_loop_did(settings, observer.requests)}"
    promoted = observer.promotions[0].version

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


def test_three_phases_get_one_retrain_each_and_end_near_their_floor(
    regime_story: RegimeStory,
) -> None:
    """Issue 22: a known segment on a new law, a segment never seen, the first segment grown
    larger: one retrain per phase, asked on the version in production when the phase began
    (the third one on the drift of its salmon), and each phase's final windows within 1.5
    times their noise floor."""
    story = regime_story
    settings, observer, line = story.settings, story.observer, story.line
    phases = story.phases
    ends = [p.start for p in phases[1:]] + [line.event]
    serving = [story.first_version, *(p.promoted for p in phases)]
    print("\nphase       retrain requests (reason value, on version)  promoted  final windows")
    finals: list[tuple[list[RetrainRequest], list[tuple[float, float]]]] = []
    for phase, end, before in zip(phases, ends, serving, strict=False):
        # A window that ends where a phase begins is the previous phase's.
        asked = [r for r in observer.requests if phase.start < r.window_end <= end]
        windows: list[tuple[float, float]] = []
        if phase.promoted is not None and phase.final_start is not None:
            for index in range(FINAL_WINDOWS):
                begins = phase.final_start + timedelta(seconds=index * WINDOW_S)
                windows.append(_window(story, phase, begins, phase.promoted))
        finals.append((asked, windows))
        shown = ", ".join(f"{e:.4f} / {f:.4f} ({e / f:.2f}x)" for e, f in windows)
        reasons = ", ".join(
            f"{r.reason.value} {r.metric_value:.3f} on v{r.model_version}" for r in asked
        )
        print(
            f"{phase.name:<11} {len(asked)} ({reasons}; in production v{before})"
            f"  v{phase.promoted}  {shown or 'none'}"
        )
    if len(phases) == 3:
        # The grown salmon's windows on the second phase's version, until the third promotion.
        grown, on = phases[2], phases[1].promoted
        under = [
            _window(story, grown, grown.start + timedelta(seconds=i * WINDOW_S), on)
            for i in range(int((ends[2] - grown.start).total_seconds() // WINDOW_S))
        ]
        shown = ", ".join(f"{e:.3f}" for e, f in under if not np.isnan(e))
        print(f"grown salmon on v{on} (threshold {settings.monitor.error_threshold}): {shown}")
    assert len(phases) == 3, [p.name for p in phases]
    for phase, before, (asked, windows) in zip(phases, serving, finals, strict=False):
        assert phase.promoted is not None, (
            f"{phase.name}: no promotion; {what_the_loop_did(settings, observer.requests)}"
        )
        assert len(asked) == 1, (phase.name, asked)
        assert asked[0].model_version == before, (phase.name, asked)
        assert len(windows) == FINAL_WINDOWS, (phase.name, windows)
        for error, floor in windows:
            assert error <= 1.5 * floor, (phase.name, error, floor)
    # The grown salmon's retrain was asked on their drift, against the second phase's version.
    (grown_request,) = finals[2][0]
    assert grown_request.reason.value == "drift", grown_request
    assert grown_request.metric == "drift_share", grown_request
    # One version registered per retrain: three after the bootstrap, all promoted.
    later = [
        v
        for v in registry.list_versions(settings.registry)
        if int(v.version) > int(story.first_version)
    ]
    assert sorted(int(v.version) for v in later) == sorted(int(p.promoted or 0) for p in phases)


def _window(
    story: RegimeStory, phase: StoryPhase, begins: datetime, version: str | None
) -> tuple[float, float]:
    """The mean error of the phase's fish of the window from ``begins`` that ``version`` scored,
    and the noise floor of the phase's law on them (NaN, NaN when it scored none)."""
    end = begins + timedelta(seconds=WINDOW_S)
    fish = [
        r
        for r in story.observer.scored
        if begins <= r.at < end
        and r.segment == phase.segment
        and r.prediction.model_version == version
    ]
    if not fish:
        return float("nan"), float("nan")
    return float(np.mean([r.rel_error for r in fish])), story.line.floor(fish, phase.law)
