"""``make demo``: the default drift scenario on the running stack, told as it happens.

The demo takes over the fish line of ``make up``: it pauses the gentle simulator, waits out the
monitor's cooldown if a retrain ran recently, makes sure the production model is one that has
never seen walleye (the bootstrap version, put back by a forced promotion through the
``promote`` deployment when needed), then plays salmon → walleye → salmon on the wall clock,
each phase lasting a number of the monitor's windows. Meanwhile it prints each window's error,
the retrain request, the promotion and the new version's first prediction; at the end the error
before, during and after, the times from the shift, and the path of the picture.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from demo import history
from demo.incident import Incident, observed_incident
from demo.observer import LoopObserver
from demo.player import PhaseStart, play
from demo.timeline import draw_timeline
from monitoring.trigger import RetrainTrigger
from monitoring.windows import ClosedWindow, TumblingWindows
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.modelling.default import known_segments
from tidemark.orchestration import PROMOTE_DEPLOYMENT, RETIRE_CHALLENGER_DEPLOYMENT, prefect_api
from tidemark.project.catalog import load_catalog
from tidemark.project.spec import ErrorKind, Project
from tidemark.registry import writer as registry
from tidemark.schemas import RetrainReason, utc_now
from tidemark.simulation.generate import fresh_seed, generate_frame
from tidemark.simulation.library import load_scenario
from tidemark.simulation.scenario import Scenario

Say = Callable[[str], None]
# The demo plays the fish project's default scenario. The stack's projects are read from this
# folder (relative to where `make demo` runs) until the settings name it.
PROJECTS = Path("projects")
DEMO_PROJECT = "fish-weight"


def demo_project() -> Project:
    """The project whose default scenario the demo plays: the fish."""
    return load_catalog(PROJECTS).get(DEMO_PROJECT)


@dataclass(frozen=True)
class DemoResult:
    """What the demo saw, and where the picture is."""

    incident: Incident
    picture: Path
    retrain_requests: int


def phase_rates(
    scenario: Scenario, windows: Sequence[float], window_s: float, min_shift_s: float
) -> list[float]:
    """Items per second so that phase ``i`` lasts ``windows[i]`` monitor windows.

    The shifted phase (the second) lasts at least ``min_shift_s``, so that the retrain, which
    takes a minute or two whatever the window size, lands while the new fish still arrive.
    """
    if len(windows) != len(scenario.phases):
        raise ValueError(f"need {len(scenario.phases)} window counts, got {len(windows)}")
    seconds = [n * window_s for n in windows]
    if len(seconds) > 1:
        seconds[1] = max(seconds[1], min_shift_s)
    return [phase.count / s for phase, s in zip(scenario.phases, seconds, strict=True)]


def ensure_walleye_naive_production(settings: Settings, say: Say) -> str:
    """Make production a version that never saw walleye; return that version."""
    current = registry.production_version(settings.registry)
    model = registry.load_model(settings.registry) if current else None
    known = known_segments(demo_project(), model) if model is not None else None
    if current is not None and "walleye" not in (known or ()):
        say(f"production is v{current}, which has never seen walleye")
        return current
    bootstrap = [
        v
        for v in registry.list_versions(settings.registry)
        if v.tags.get("trigger_reason") == RetrainReason.BOOTSTRAP
    ]
    if not bootstrap:
        raise RuntimeError("no bootstrap version in the registry: run `make up` (it trains one)")
    version = min(bootstrap, key=lambda v: int(v.version)).version
    say(f"production is v{current}, which knows walleye already; putting back v{version}")
    from prefect.deployments import run_deployment

    with prefect_api(settings.orchestration):
        run_deployment(
            PROMOTE_DEPLOYMENT, parameters={"version": version, "force": True}, timeout=180
        )
    if registry.production_version(settings.registry) != version:
        raise RuntimeError(f"the forced promotion of v{version} did not happen; see the Prefect UI")
    # A forced promotion leaves the version it replaced watching in shadow, ready to roll the
    # promotion back: right for a person's mistake, not for a demo that demotes on purpose.
    watching = registry.challenger_version(settings.registry)
    if watching is not None:
        say(f"retiring v{watching} from shadow: the demo put v{version} back on purpose")
        with prefect_api(settings.orchestration):
            run_deployment(
                RETIRE_CHALLENGER_DEPLOYMENT,
                parameters={"reason": f"make demo put v{version} back on purpose"},
                timeout=180,
            )
    # Let the scorers and the monitor notice before the first fish arrives.
    time.sleep(settings.registry.poll_interval_s + 2)
    return version


def line_settle_s(settings: Settings) -> float:
    """How long after pausing the gentle line its last window is surely closed and judged.

    The line's last fish are in a window that no later fish will close: the monitor closes it
    once the stream has been idle that long, and its alarm (if any) fires then. Waiting it out
    means no retrain of the line's own fish can start during the demo.
    """
    return settings.monitor.idle_flush_s + settings.stack.simulator_label_delay_s + 10.0


def wait_out_cooldown(settings: Settings, say: Say) -> None:
    """Wait until the monitor may trigger a retrain again (no run in flight, cooldown over)."""
    producer = kafka_io.producer(settings.kafka)
    trigger = RetrainTrigger(settings, producer)
    try:
        while True:
            last = trigger.last_run()
            if last is None:
                return
            age = (utc_now() - last.created_at).total_seconds()
            if last.final and age >= settings.monitor.cooldown_s:
                return
            wait = max(5.0, settings.monitor.cooldown_s - age)
            say(
                f"the last retrain run ({last.state}) started {age:.0f} s ago; the monitor's "
                f"cooldown is {settings.monitor.cooldown_s:.0f} s: waiting {wait:.0f} s"
            )
            time.sleep(min(wait, 30.0))
    finally:
        producer.close()


def run_demo(
    settings: Settings,
    *,
    phase_windows: Sequence[float],
    min_shift_s: float,
    say: Say,
    line_paused: AbstractContextManager[object] | None = None,
    project: Project | None = None,
) -> DemoResult:
    """Play the fish's default scenario on the running stack and tell what the loop did.

    ``project`` is the fish project the items go to (the demo's own by default; a test gives
    a variant on its own topics).
    """
    scenario = load_scenario(project or demo_project())
    rates = phase_rates(scenario, phase_windows, settings.monitor.window_s, min_shift_s)
    seed = fresh_seed()
    fish_ids = frozenset(generate_frame(scenario, seed)[scenario.project.key])
    with line_paused or nullcontext():
        if line_paused is not None:
            settle = line_settle_s(settings)
            say(f"waiting {settle:.0f} s for the monitor to close the line's last window")
            time.sleep(settle)
        # The cooldown first: a retrain in flight could promote a walleye-wise model meanwhile.
        wait_out_cooldown(settings, say)
        first_version = ensure_walleye_naive_production(settings, say)
        observer = LoopObserver(settings, fish_ids=fish_ids)
        try:
            phases = _play_and_watch(settings, scenario, rates, seed, observer, first_version, say)
        finally:
            observer.close()
    shift, end = phases[1], phases[2] if len(phases) > 2 else None
    incident = observed_incident(
        observer, settings, old_version=first_version, shift=shift, end=end
    )
    picture = draw_timeline(
        observer.scored,
        observer.requests,
        decisions=history.model_decisions(settings),
        threshold=settings.monitor.error_threshold,
        window_s=settings.monitor.window_s,
        path=settings.stack.state_dir / "reports" / f"demo-{utc_now():%Y%m%dT%H%M%SZ}.png",
        title="Tidemark demo: salmon → walleye → salmon",
    )
    return DemoResult(incident, picture.resolve(), len(observer.requests))


def _play_and_watch(
    settings: Settings,
    scenario: Scenario,
    rates: Sequence[float],
    seed: int,
    observer: LoopObserver,
    first_version: str,
    say: Say,
) -> list[PhaseStart]:
    phases: list[PhaseStart] = []
    failure: list[BaseException] = []

    def on_phase(start: PhaseStart) -> None:
        phases.append(start)
        count = scenario.phases[start.index].count
        say(
            f"{start.wall:%H:%M:%S} phase {start.name!r}: {count} fish at "
            f"{rates[start.index]:.1f} fish/s"
        )

    def player() -> None:
        try:
            play(settings, scenario, rates, seed=seed, label_delay_s=5.0, on_phase=on_phase)
        except BaseException as error:  # reported by the watching thread
            failure.append(error)

    thread = threading.Thread(target=player, name="demo-player", daemon=True)
    thread.start()
    narrator = _Narrator(settings, observer, first_version, say)
    while thread.is_alive():
        observer.poll(0.5)
        narrator.tell(phases)
    if failure:
        raise failure[0]
    # The last fish are weighed, joined and judged a little after they were measured.
    settle = time.monotonic() + settings.monitor.allowed_lateness_s + 15
    while time.monotonic() < settle:
        observer.poll(0.5)
        narrator.tell(phases)
    narrator.flush(phases)
    return phases


class _Narrator:
    """Prints windows, retrain requests, promotions and first predictions as they appear."""

    def __init__(
        self, settings: Settings, observer: LoopObserver, first_version: str, say: Say
    ) -> None:
        self.settings = settings
        self.observer = observer
        self.say = say
        self.windows = TumblingWindows(
            settings.monitor.window_s,
            settings.monitor.allowed_lateness_s + 10,
            judged_by=ErrorKind.RELATIVE,
        )
        self.fed = 0
        self.told_requests = 0
        self.told_promotions = 0
        self.told_first: set[str] = {first_version}
        self.crossed = False

    def tell(self, phases: Sequence[PhaseStart]) -> None:
        scored = self.observer.scored
        for record in scored[self.fed :]:
            self.windows.add(record)
        self.fed = len(scored)
        for window in self.windows.close_due():
            self._window(window, phases)
        for request in self.observer.requests[self.told_requests :]:
            self.say(
                f"{request.requested_at:%H:%M:%S} retrain triggered by the monitor: "
                f"{request.metric} {request.metric_value:.3f} > {request.threshold:.2f} in the "
                f"window {request.window_start:%H:%M:%S}-{request.window_end:%H:%M:%S} "
                f"(v{request.model_version})"
            )
        self.told_requests = len(self.observer.requests)
        for promotion in self.observer.promotions[self.told_promotions :]:
            self.say(f"{promotion.seen_at:%H:%M:%S} v{promotion.version} promoted to production")
        self.told_promotions = len(self.observer.promotions)
        for version, at in self.observer.first_prediction.items():
            if version not in self.told_first:
                self.told_first.add(version)
                self.say(f"{at:%H:%M:%S} first prediction by v{version}")

    def flush(self, phases: Sequence[PhaseStart]) -> None:
        for window in self.windows.flush():
            self._window(window, phases)

    def _window(self, window: ClosedWindow, phases: Sequence[PhaseStart]) -> None:
        threshold = self.settings.monitor.error_threshold
        versions = ", ".join(f"v{v}: {s.judged:.3f} ({s.n})" for v, s in window.by_version.items())
        above = window.overall.judged > threshold
        self.say(
            f"  window {window.start:%H:%M:%S}-{window.end:%H:%M:%S}  mean relative error "
            f"{window.overall.judged:.3f}{' ABOVE' if above else ''}  [{versions}]"
        )
        shifted = len(phases) > 1 and window.end > phases[1].event
        if shifted and not self.crossed and above:
            self.crossed = True
            self.say(f"{window.end:%H:%M:%S} the error crossed {threshold:.2f}")
