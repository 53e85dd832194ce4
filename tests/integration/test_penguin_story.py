"""The penguins' whole loop, with the fish on the same stack (issue 23's second example).

One story on the real stack, which several tests read. Two projects of the test's own run side
by side: a penguin-mass project and a fish-weight project (variants of the repository's files:
their own names, topics, registered models and collections), served by ONE scorer, ONE joiner
one ``serve-flows`` process and ONE monitor process, in which each project's monitor runs its own
loop (``tidemark monitor --project A --project B``; its metrics carry the project's label).
Windows are 15 s of simulated event time with 60 items each, so the story plays in minutes.

1. The penguins are bootstrapped from their project's CSV (``tidemark train --if-no-production``:
   the real Adelie and Chinstrap, no Gentoo); the fish from the tutorial's salmon.
2. Steady windows of both. The fish meet walleye, which their model never saw: their monitor
   asks for a fish retrain, and the penguins' monitor, judging steady penguins meanwhile, asks
   for nothing.
3. Gentoo arrive (the ``gentoo-arrives`` scenario's second phase: a third of the penguins) while
   the fish keep coming (salmon only). The penguins' monitor opens ``unseen:Gentoo``, gathers
   labelled Gentoo, starts one retrain of the penguin project for them, and the candidate is
   promoted on its held-out penguins; no fish retrain is asked or started meanwhile.
4. Fresh penguins of the three species, scored by the new version: each species' window error
   within 1.5 times its noise floor.
5. The bootstrap version is forced back into production by hand: the Gentoo version watches it
   in shadow (the project's challenger), proves better on the live penguins, and the monitor's
   verdict rolls production back to it.

The noise floor of a penguin is the relative error, on that penguin, of a model of the platform's
default kind (``tidemark.modelling.training.train``) trained on another draw (another seed) of
the whole ``gentoo-arrives`` scenario: about 2,100 penguins of all three species from the same
distribution as the played ones, Gentoo included. The data are real, so there is no true law to
take the floor from; this is the error the model can reach with plenty of data of every species.

The story prints, for the penguins, the window errors before, during and after the Gentoo's
arrival, and the seconds from their arrival to the detection, the promotion and the first
prediction by the new version. It waits on offsets, topics and the monitor's metrics, never on
fixed sleeps.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from demo.incident import Incident, observed_incident
from demo.observer import LoopObserver
from demo.player import PhaseStart
from flows.promote import promote
from flows.train import BOOTSTRAP_SEED, train
from infra.local.stack import Stack
from monitoring.policy import IncidentKey, IncidentKind
from monitoring.windows import TumblingWindows
from tests.integration.conftest import Processes, loop_changes, loop_processes
from tests.integration.lines import ChunkedLine
from tests.integration.loop import port_open, ready, wait, what_the_loop_did
from tests.integration.metrics import scrape
from tests.integration.monitoring.test_monitor import RetrainRun, retrain_flow_runs
from tests.integration.projects import REPO, example
from tests.integration.topics import read_topic, topic_size
from tidemark import kafka_io
from tidemark.config import SECTIONS, Settings, get_settings
from tidemark.judging.tags import per_segment
from tidemark.modelling.training import predict
from tidemark.modelling.training import train as fit
from tidemark.orchestration import RETRAIN_DEPLOYMENT, deployments_ready, prefect_api
from tidemark.project.catalog import stack_catalog
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind, Project, save_project
from tidemark.registry import writer as registry
from tidemark.schemas import RetrainRequest
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario
from tidemark.store import TrainingStore

pytestmark = pytest.mark.integration

WINDOW_S = 15.0
EVENT_INTERVAL_S = 0.25
PER_WINDOW = int(WINDOW_S / EVENT_INTERVAL_S)
# Items per second of wall clock.
FAST = 60.0
STEADY_WINDOWS = 4
# How long the story plays a phase for the loop to answer it (a retrain, a verdict).
DEADLINE_S = 600.0
# The floor's draw of the scenario: any seed but the story's (1, 2, 3 …, one per chunk played).
FLOOR_SEED = 1_000
UNSEEN_GENTOO = IncidentKey(IncidentKind.UNSEEN, "Gentoo")
STEADY, GENTOO = "adelie-and-chinstrap", "gentoo-arrives"


class Line(ChunkedLine):
    """Plays phases of one project's scenario in simulated event time, a window's worth each,
    continuing where it stopped."""

    def __init__(self, settings: Settings, project: Project, scenario: str, start: datetime):
        super().__init__(settings, load_scenario(project, scenario), start, EVENT_INTERVAL_S)

    def play(self, phases: Sequence[str]) -> list[PhaseStart]:
        """One window's worth of items of each named phase (the scenario's segment mix)."""
        chosen = [
            next(p for p in self.scenario.phases if p.name == name).model_copy(
                update={"name": f"{name}-{i}", "count": PER_WINDOW}
            )
            for i, name in enumerate(phases)
        ]
        return self.play_phases(chosen, FAST)


@dataclass(frozen=True)
class PenguinStory:
    """What the story played and what the loop did meanwhile."""

    penguins: Project
    fish: Project
    # Each project's own settings (topics, model, collection), and the stack's with both.
    own: dict[str, Settings]
    stack_settings: Settings
    bootstrap_output: str
    observer: LoopObserver
    lines: dict[str, Line]
    # The stack-wide scorer's and joiner's metrics ports.
    services: dict[str, int]
    # The metrics port of the one monitor process that judges both projects.
    monitor: int
    fish_request_seen: datetime | None
    shift: PhaseStart | None
    gentoo_version: str | None
    # The forced version's promotion and when production came back (None: it did not).
    forced_at: datetime | None
    rolled_back_at: datetime | None
    floor_model: Any


@pytest.fixture(scope="module")
def penguin_story(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PenguinStory]:
    """Both projects on one stack and the penguins' whole loop; see the module's docstring.

    A step that does not come in time ends the story there; the tests say what is missing.
    """
    tag = uuid.uuid4().hex[:6]
    logs = tmp_path_factory.mktemp("penguin-story")
    folder = logs / "projects"
    folder.mkdir()
    penguins = example("penguin-mass").variant(f"penguins-{tag}")
    fish = example("fish-weight").variant(f"fish-{tag}")
    for project in (penguins, fish):
        save_project(project, folder / f"{project.name}.yaml")
    # The penguins first: the stack's default project, whose contracts the observer reads.
    settings = stack.settings.override(
        projects_dir=str(folder),
        projects_names=f"{penguins.name},{fish.name}",
        store_database=f"penguins_{tag}",
        stream_scorer_group_id=f"scorer-{tag}",
        stream_joiner_group_id=f"joiner-{tag}",
        monitor_group_id=f"monitor-{tag}",
        **loop_changes(),
        monitor_window_s=WINDOW_S,
        monitor_allowed_lateness_s=2.0,
        monitor_idle_flush_s=10.0,
        # Longer than the story: only a new incident can start a second retrain of a project.
        monitor_cooldown_s=900.0,
    )
    catalog = stack_catalog(settings.projects)
    own = {p.name: catalog.settings(settings, p.name) for p in (penguins, fish)}
    for name in own:
        kafka_io.ensure_topics(own[name].kafka)
    scorer = settings.stream.scorer_metrics_port
    joiner = settings.stream.joiner_metrics_port
    monitor = settings.monitor.metrics_port
    processes = loop_processes(settings, stack, logs)
    # The penguins' first model from their project's CSV, as `make up` does it, while the
    # services start (the scorer waits for a production model, keeping its offsets).
    bootstrap = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tidemark",
            "train",
            "--project",
            penguins.name,
            "--if-no-production",
        ],
        env=processes.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    observer: LoopObserver | None = None
    try:
        processes.start("serve-flows")
        processes.start("score", "--metrics-port", str(scorer))
        processes.start("join", "--metrics-port", str(joiner))
        _train_in_process(settings, fish.name, _fish_bootstrap(fish, logs))
        output, _ = bootstrap.communicate(timeout=600)
        assert bootstrap.returncode == 0, output
        # One monitor process judges both projects, each on a loop of its own.
        processes.start(
            "monitor",
            "--project",
            penguins.name,
            "--project",
            fish.name,
            "--metrics-port",
            str(monitor),
        )
        wait(
            lambda: ready(lambda: deployments_ready(settings.orchestration)),
            300,
            "deployments",
            processes,
        )
        for port in (scorer, joiner, monitor):
            wait(partial(port_open, port), 300, f"metrics port {port}", processes)
        observer = LoopObserver(own[penguins.name])
        start = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
        lines = {
            penguins.name: Line(own[penguins.name], penguins, GENTOO, start),
            fish.name: Line(own[fish.name], fish, "tutorial", start),
        }
        story = partial(
            PenguinStory,
            penguins=penguins,
            fish=fish,
            own=own,
            stack_settings=settings,
            bootstrap_output=output,
            observer=observer,
            lines=lines,
            services={"score": scorer, "join": joiner},
            monitor=monitor,
            floor_model=_floor_model(penguins),
        )
        yield _play(story, settings, processes, observer, own, monitor, (penguins, fish))
    finally:
        if observer is not None:
            observer.close()
        processes.stop()
        if bootstrap.poll() is None:
            bootstrap.kill()
            bootstrap.wait()


def _play(
    story: partial[PenguinStory],
    settings: Settings,
    processes: Processes,
    observer: LoopObserver,
    own: dict[str, Settings],
    monitor: int,
    projects: tuple[Project, Project],
) -> PenguinStory:
    """Steps 2 to 5 of the story; what happened, up to the first step that did not come."""
    penguins, fish = projects
    lines: dict[str, Line] = story.keywords["lines"]
    birds, line = lines[penguins.name], lines[fish.name]

    def both(penguin_phase: str, fish_phase: str) -> list[PhaseStart]:
        line.play([fish_phase])
        return birds.play([penguin_phase])

    # 2. Steady windows of both, then walleye for the fish until their monitor asks.
    for _ in range(STEADY_WINDOWS):
        both(STEADY, "salmon")
    deadline = time.monotonic() + DEADLINE_S
    while not _requests(own[fish.name]):
        if time.monotonic() > deadline:
            return story(
                fish_request_seen=None,
                shift=None,
                gentoo_version=None,
                forced_at=None,
                rolled_back_at=None,
            )
        both(STEADY, "walleye")
        _settle(observer, processes, 3.0)
    fish_request_seen = datetime.now(UTC)
    # The penguins' windows of the fish incident judged: the last steady window closes them.
    both(STEADY, "salmon")
    _wait_judged(
        observer, processes, monitor, penguins.name, birds.event - timedelta(seconds=WINDOW_S)
    )

    # 3. Gentoo arrive, a window at a time, while the fish keep coming, until a promotion.
    shift = both(GENTOO, "salmon")[0]
    gentoo_version = _play_until(lambda: len(observer.promotions) >= 1, both, observer, processes)
    if gentoo_version is None:
        return story(
            fish_request_seen=fish_request_seen,
            shift=shift,
            gentoo_version=None,
            forced_at=None,
            rolled_back_at=None,
        )
    gentoo_version = observer.promotions[0].version
    # 4. Fresh penguins for the new version (the scorer switches a poll after the alias moves).
    _settle(observer, processes, own[penguins.name].registry.poll_interval_s + 3)
    for _ in range(4):
        both(GENTOO, "salmon")
    _wait_scored(observer, processes, lines, own)

    # 5. The bootstrap version forced back by hand: the Gentoo version watches it in shadow.
    bootstrap = observer.initial_version
    assert bootstrap is not None
    _flow_in_process(
        settings, partial(promote, version=bootstrap, force=True, project=penguins.name)
    )
    forced_at = datetime.now(UTC)
    back = _play_until(
        lambda: (
            observer.production_version == gentoo_version
            and registry.challenger_version(own[penguins.name].registry) is None
        ),
        both,
        observer,
        processes,
    )
    rolled_back_at = datetime.now(UTC) if back is not None else None
    _wait_scored(observer, processes, lines, own)
    observer.catch_up()
    return story(
        fish_request_seen=fish_request_seen,
        shift=shift,
        gentoo_version=gentoo_version,
        forced_at=forced_at,
        rolled_back_at=rolled_back_at,
    )


def test_the_penguins_are_bootstrapped_from_their_project_s_csv(
    penguin_story: PenguinStory,
) -> None:
    story = penguin_story
    own = story.own[story.penguins.name]
    assert f"{story.penguins.name} v1: promoted" in " ".join(story.bootstrap_output.split())
    v1 = registry.version_info(own.registry, "1")
    assert v1.tags["trigger_reason"] == "bootstrap"
    # 219 Adelie and Chinstrap: the latest fifth of each held out (31 and 14, raised to 15).
    assert (v1.tags[per_segment("heldout_n", "Adelie")], v1.tags["heldout_n"]) == ("31", "46")
    assert float(v1.tags["candidate_mean_relative_error"]) < 0.1
    reference = registry.load_reference(own.registry, "1")
    assert set(reference["species"]) == {"Adelie", "Chinstrap"}
    assert {"island", "sex", "flipper_length_mm", "body_mass_g"} <= set(reference.columns)
    model = registry.client(own.registry).get_registered_model(story.penguins.name)
    assert "body_mass_g (g)" in model.description
    assert story.penguins.bootstrap is not None
    assert Path(story.penguins.bootstrap).samefile(REPO / "examples/penguins/bootstrap.csv")
    # Once production exists the bootstrap is a no-op, what `make up` runs on every start.
    again = _flow_in_process(
        story.stack_settings, partial(train, project=story.penguins.name, if_no_production=True)
    )
    assert (again.decision.value, again.version) == ("skipped", None)


def test_gentoo_never_seen_are_learned_on_evidence_and_reach_their_floor(
    penguin_story: PenguinStory,
) -> None:
    """The Gentoo open ``unseen:Gentoo``, one retrain of the penguin project about them is
    started and its version promoted on held-out penguins of every species; the new version's
    windows are each within 1.5 times their noise floor (the module's docstring says which)."""
    story = penguin_story
    observer, own = story.observer, story.own[story.penguins.name]
    assert story.shift is not None, "the fish incident did not come: the story stopped there"
    version = story.gentoo_version
    assert version is not None, f"no promotion; {what_the_loop_did(own, observer.requests)}"
    # Nothing asked before the Gentoo: the steady windows (and the fish's incident) raise nothing.
    early = [r for r in observer.requests if r.window_end <= story.shift.event]
    assert not early, early
    # One retrain for the Gentoo, of this project, about them.
    runs = _runs_of(own, story.penguins.name)
    assert len(runs) == 1, runs
    [run] = runs
    assert UNSEEN_GENTOO.tag in run.tags
    assert run.parameters["project"] == story.penguins.name
    assert run.parameters["segments"] == ["Gentoo"]
    # Promoted on evidence, stated on the version.
    info = registry.version_info(own.registry, version)
    assert info.tags["trigger_segments"] == "Gentoo"
    assert info.tags["champion_version"] == observer.initial_version
    minimum = own.retrain.min_holdout_rows_per_segment
    for species in ("Adelie", "Chinstrap", "Gentoo"):
        assert int(info.tags[per_segment("heldout_n", species)]) >= minimum, info.tags
    ours = float(info.tags[per_segment("candidate_mean_relative_error", "Gentoo")])
    theirs = float(info.tags[per_segment("champion_mean_relative_error", "Gentoo")])
    assert ours < own.monitor.error_threshold < theirs, (ours, theirs)
    assert "Gentoo" in set(registry.load_reference(own.registry, version)["species"])

    incident = _told(own, observer, story.shift, story.forced_at)
    assert incident.requests
    assert incident.promoted is not None
    assert incident.promoted.version == version
    assert incident.first_prediction is not None
    judged = _windows_within_floor(story, version, ("Adelie", "Chinstrap", "Gentoo"))
    assert judged["Gentoo"] >= 3, judged


def test_an_incident_of_one_project_triggers_nothing_on_the_other(
    penguin_story: PenguinStory,
) -> None:
    """The fish's walleye incident, while the penguins were steady, asked for a fish retrain
    only; the Gentoo incident, while the fish kept coming, started nothing of the fish."""
    story = penguin_story
    fish, penguins = story.own[story.fish.name], story.own[story.penguins.name]
    assert story.fish_request_seen is not None, "the fish never asked for a retrain"
    assert story.shift is not None
    assert story.gentoo_version is not None
    fish_requests = _requests(fish)
    assert fish_requests
    # Every fish request and fish run came before the Gentoo, and they are the fish's.
    assert all(r.requested_at < story.shift.wall for r in fish_requests), fish_requests
    fish_runs = _runs_of(fish, story.fish.name)
    assert fish_runs
    assert all(r.created is not None and r.created < story.shift.wall for r in fish_runs)
    assert {r.parameters["project"] for r in fish_runs} == {story.fish.name}
    # The penguins asked nothing during the fish incident, and their runs are theirs alone.
    assert all(r.requested_at >= story.shift.wall for r in story.observer.requests)
    assert {r.parameters["project"] for r in _runs_of(penguins, story.penguins.name)} == {
        story.penguins.name
    }


def test_one_scorer_and_one_joiner_serve_each_item_of_both_projects_once(
    penguin_story: PenguinStory,
) -> None:
    story = penguin_story
    catalog = stack_catalog(story.stack_settings.projects)
    for project in (story.penguins, story.fish):
        own, contracts = story.own[project.name], catalog.contracts(project.name)
        topics, sent = own.kafka.topics, story.lines[project.name].sent
        predictions = [
            contracts.decode_prediction(r.value) for r in read_topic(own, topics.predictions)
        ]
        keys = [p.key for p in predictions]
        assert len(keys) == len(set(keys)) == sent, (project.name, len(keys), sent)
        assert {p.model_name for p in predictions} == {project.name}
        scored = [contracts.decode_scored(r.value) for r in read_topic(own, topics.scored)]
        assert sorted(s.key for s in scored) == sorted(keys)
        assert read_topic(own, topics.dead_letter) == []
        with TrainingStore(own.store, contracts) as store:
            assert store.count() == sent
    for port in story.services.values():
        assert scrape(port)["tidemark_stream_loop_restarts_total"] == 0.0
    for project in (story.penguins, story.fish):
        sample = f'tidemark_stream_loop_restarts_total{{project="{project.name}"}}'
        assert scrape(story.monitor)[sample] == 0.0, project.name


def test_a_forced_version_is_watched_in_shadow_and_rolled_back_on_live_penguins(
    penguin_story: PenguinStory,
) -> None:
    """The bootstrap version, forced back over the Gentoo version, is watched by it in shadow
    (the penguin project's challenger) and rolled back on the live penguins' evidence."""
    story = penguin_story
    own = story.own[story.penguins.name]
    bootstrap, gentoo = story.observer.initial_version, story.gentoo_version
    assert gentoo is not None
    assert story.forced_at is not None
    assert story.rolled_back_at is not None, (
        f"production is v{registry.production_version(own.registry)}, challenger "
        f"v{registry.challenger_version(own.registry)}"
    )
    assert registry.production_version(own.registry) == gentoo
    assert registry.challenger_version(own.registry) is None
    # The watch in shadow: the scorer predicted with both while it ran.
    shadowed = [
        s
        for s in story.observer.scored
        if s.prediction.model_version == bootstrap and s.prediction.challenger_version == gentoo
    ]
    assert shadowed
    # The watch's verdict on its tags, the rollback and its reason on the forced version's.
    watch = registry.version_info(own.registry, gentoo).tags
    assert watch.get("shadow_verdict"), watch
    forced = registry.version_info(own.registry, bootstrap or "").tags
    assert forced.get("rolled_back_to") == gentoo, forced
    assert "live evidence" in forced["rolled_back_reason"], forced
    print(
        f"forced v{bootstrap} over v{gentoo}; rolled back after "
        f"{(story.rolled_back_at - story.forced_at).total_seconds():.1f} s, on "
        f"{len(shadowed)} penguins scored by both"
    )


# -- the story's steps --------------------------------------------------------------------


def _fish_bootstrap(fish: Project, folder: Path) -> Path:
    """The tutorial's salmon as a CSV in the fish project's shape."""
    frame = generate_frame(load_scenario(fish, "tutorial"), BOOTSTRAP_SEED, ["salmon"])
    csv = folder / "salmon.csv"
    frame[[*(f.name for f in fish.features), fish.target.name]].to_csv(csv, index=False)
    return csv


def _train_in_process(settings: Settings, project: str, csv: Path) -> None:
    outcome = _flow_in_process(settings, partial(train, project=project, csv=str(csv)))
    assert outcome.decision.value == "promoted", outcome


def _flow_in_process(settings: Settings, flow: partial[Any]) -> Any:
    """A platform flow run here, on ``settings`` (the environment says the same meanwhile)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.as_env(*SECTIONS).items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        try:
            with prefect_api(settings.orchestration):
                return flow()
        finally:
            get_settings.cache_clear()


def _floor_model(penguins: Project) -> Any:
    """The floor's model: the platform's default, on another draw of the whole scenario."""
    frame = generate_frame(load_scenario(penguins, GENTOO), FLOOR_SEED)
    return fit(penguins, frame, seed=0).model


def _requests(settings: Settings) -> list[RetrainRequest]:
    return [
        RetrainRequest.from_json(r.value)
        for r in read_topic(settings, settings.kafka.topics.retrain_requests)
    ]


def _runs_of(settings: Settings, model: str) -> list[RetrainRun]:
    return [
        r for r in retrain_flow_runs(settings, RETRAIN_DEPLOYMENT) if f"model:{model}" in r.tags
    ]


def _play_until(
    condition: Callable[[], bool],
    both: Callable[[str, str], list[PhaseStart]],
    observer: LoopObserver,
    processes: Processes,
) -> str | None:
    """Play a window of Gentoo (and of salmon) every few seconds until ``condition``."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            return None
        both(GENTOO, "salmon")
        _settle(observer, processes, 5.0)
    return observer.production_version


def _settle(observer: LoopObserver, processes: Processes, seconds: float) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        processes.check_alive()
        observer.poll(0.5)


def _wait_scored(
    observer: LoopObserver, processes: Processes, lines: dict[str, Line], own: dict[str, Settings]
) -> None:
    """Until every item each line played was scored (predicted, weighed and joined)."""
    penguins = observer.settings.registry.model_name

    def scored() -> bool:
        observer.poll(0.5)
        return len({r.key for r in observer.scored}) >= lines[penguins].sent and all(
            topic_size(own[n], own[n].kafka.topics.scored) >= lines[n].sent
            for n in lines
            if n != penguins
        )

    wait(scored, 180, "every item played scored", processes)


def _wait_judged(
    observer: LoopObserver, processes: Processes, port: int, project: str, until: datetime
) -> None:
    """Until the monitor on ``port`` has judged ``project``'s windows up to ``until`` (event
    time)."""
    sample = f'tidemark_monitor_window_end_timestamp_seconds{{project="{project}"}}'

    def judged() -> bool:
        observer.poll(0.5)
        end = scrape(port).get(sample, 0.0)
        return end >= until.timestamp()

    try:
        wait(judged, 180, f"the monitor's windows judged up to {until:%H:%M:%S}", processes)
    except AssertionError as timeout:
        seen = {k: v for k, v in scrape(port).items() if k.startswith("tidemark_monitor_")}
        raise AssertionError(f"{timeout}; the monitor's metrics: {seen}") from None
    observer.catch_up()


def _told(
    own: Settings, observer: LoopObserver, shift: PhaseStart, until: datetime | None
) -> Incident:
    """The Gentoo's incident, printed: window errors, requests, promotion, timings; the
    windows of the penguins predicted before ``until``."""
    incident = observed_incident(
        observer, own, old_version=observer.initial_version, shift=shift, end=None
    )
    print("\n".join(["", "penguins, Gentoo arrive:", *incident.lines(unit="g", items="penguins")]))
    for request in incident.requests:
        print(
            f"  request at +{incident.since_shift(request.requested_at):.1f} s: "
            f"{request.reason.value} {request.metric} {request.metric_value:.3f}"
        )
    print("window errors (mean relative error per species; versions that scored them):")
    windows = TumblingWindows(WINDOW_S, allowed_lateness_s=0, judged_by=ErrorKind.RELATIVE)
    by_window: dict[datetime, list[Scored]] = defaultdict(list)
    for record in observer.scored:
        if until is None or record.prediction.predicted_at < until:
            by_window[windows.window_start(record.at)].append(record)
    for start, records in sorted(by_window.items()):
        seen = {r.prediction.model_version for r in records}
        phase = (
            "before"
            if start < shift.event
            else "during"
            if seen == {observer.initial_version}
            else "after"
        )
        versions = ",".join(f"v{v}" for v in sorted(seen))
        species = "  ".join(
            f"{name} {np.mean([r.rel_error for r in records if r.segment == name]):.3f}"
            for name in ("Adelie", "Chinstrap", "Gentoo")
            if any(r.segment == name for r in records)
        )
        print(f"  {start:%H:%M:%S} {phase:<6} {versions:<6} {species}")
    return incident


def _windows_within_floor(
    story: PenguinStory, version: str, species: Sequence[str]
) -> dict[str, int]:
    """Print and check each window's error of ``version`` per species against the noise floor
    (at most 1.5 times it); how many windows of each species were judged. The penguins scored
    after the forced promotion are the bootstrap's and the watch's: left out."""
    project = story.penguins
    end = story.forced_at or datetime.now(UTC)
    after = [
        r
        for r in story.observer.scored
        if r.prediction.model_version == version
        and r.segment in species
        and r.prediction.predicted_at < end
    ]
    frame = pd.DataFrame(
        [{f.name: r.prediction.item.fields.get(f.name) for f in project.features} for r in after]
    )
    floor_predicted = predict(project, story.floor_model, frame).values
    floors = {
        r.key: abs(float(p) - r.truth) / r.truth
        for r, p in zip(after, floor_predicted, strict=True)
    }
    windows = TumblingWindows(WINDOW_S, allowed_lateness_s=0, judged_by=ErrorKind.RELATIVE)
    by_window: dict[tuple[datetime, str], list[Scored]] = defaultdict(list)
    for record in after:
        by_window[(windows.window_start(record.at), str(record.segment))].append(record)
    print(f"windows of v{version} (mean relative error / noise floor, per species):")
    judged = dict.fromkeys(species, 0)
    for (start, name), records in sorted(by_window.items()):
        if len(records) < 10:
            continue
        error = float(np.mean([r.rel_error for r in records]))
        floor = float(np.mean([floors[r.key] for r in records]))
        print(f"  {start:%H:%M:%S} {name:<9} {error:.3f} / {floor:.3f} ({len(records)} penguins)")
        assert error <= 1.5 * floor, (start, name, error, floor)
        judged[name] += 1
    return judged
