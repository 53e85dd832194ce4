"""The monitor on the real stack, fed with synthetic ``fish.scored`` records.

Records are scored by the real production model (trained on salmon): salmon come out about
5 % off, walleye, which it never saw (an unseen species: its own incident), about 20 % off.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import pandas as pd
from evidently.ui.workspace import Workspace
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from sklearn.pipeline import Pipeline

from monitoring.judgement import WindowJudgement
from monitoring.monitor import Monitor
from monitoring.policy import GateState, IncidentKey, IncidentKind
from monitoring.reports import workspace_dir
from tests.integration.monitoring.fish import (
    CONTRACTS,
    PER_WINDOW,
    produce,
    scored_fish,
    window_aligned_start,
)
from tests.integration.topics import read_topic
from tests.pictures import assert_error_report
from tidemark.config import Settings
from tidemark.orchestration import prefect_api
from tidemark.project.contracts import Contracts
from tidemark.schemas import RetrainReason, RetrainRequest
from tidemark.stream.loop import run_loop


def run_monitor(
    settings: Settings,
    until: Callable[[list[WindowJudgement]], bool],
    timeout_s: float = 180,
    queue_empty: bool = False,
    contracts: Contracts = CONTRACTS,
) -> list[WindowJudgement]:
    """Run a monitor of ``contracts``' project (the fish by default) in a thread until
    ``until(verdicts)`` holds (and, with ``queue_empty``, no incident waits in its queue);
    return its verdicts."""
    verdicts: list[WindowJudgement] = []
    monitor = Monitor.create(settings, contracts, on_judgement=verdicts.append)
    stop = threading.Event()
    thread = threading.Thread(target=run_loop, args=(monitor, settings, stop), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not until(verdicts) or (queue_empty and monitor.incidents.queue):
            assert thread.is_alive(), "the monitor stopped"
            assert time.monotonic() < deadline, f"only {len(verdicts)} windows judged"
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
        monitor.close()
    return verdicts


def retrain_requests(settings: Settings) -> list[RetrainRequest]:
    """Every request on the test's topic (the monitor waits for each one's ack, and has
    stopped when this is read)."""
    topic = settings.kafka.topics.retrain_requests
    return [RetrainRequest.from_json(r.value) for r in read_topic(settings, topic)]


def retrain_runs(settings: Settings, deployment: str) -> list[tuple[str, str, dict[str, object]]]:
    """(id, state, parameters) of every run of the retrain deployment."""
    return [(r.id, r.state, r.parameters) for r in retrain_flow_runs(settings, deployment)]


@dataclass(frozen=True)
class RetrainRun:
    id: str
    state: str
    parameters: dict[str, object]
    tags: frozenset[str]
    created: datetime | None


def retrain_flow_runs(settings: Settings, deployment: str) -> list[RetrainRun]:
    """Every run of the retrain deployment, oldest first."""
    with (
        prefect_api(settings.orchestration),
        get_client(sync_client=True) as client,
    ):
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=[deployment.split("/")[1]])
            )
        )
    return sorted(
        (
            RetrainRun(
                str(r.id),
                r.state.type.value if r.state else "",
                r.parameters,
                frozenset(r.tags),
                r.created,
            )
            for r in runs
        ),
        key=lambda r: (r.created is None, r.created),
    )


def test_stationary_data_over_ten_windows_triggers_nothing_across_a_restart(
    monitored: Settings, salmon_model: tuple[str, Pipeline], retrain_deployment: str
) -> None:
    runs_before = retrain_runs(monitored, retrain_deployment)
    first = window_aligned_start(monitored)
    # 10 windows to judge, and one more whose records push the watermark past the tenth.
    produce(monitored, scored_fish(salmon_model[1], "1", "salmon", 11, first, monitored))

    before_restart = run_monitor(monitored, lambda v: len(v) >= 4)
    after_restart = run_monitor(monitored, lambda v: len(before_restart) + len(v) >= 10)

    judged = before_restart + after_restart
    starts = [v.window.start for v in judged]
    assert starts == [first + timedelta(seconds=2 * i) for i in range(10)]  # none twice, none lost
    assert all(v.version == "1" and v.judged is not None for v in judged)
    assert all(v.judged.n == PER_WINDOW for v in judged if v.judged)
    assert max(v.judged.judged for v in judged if v.judged) < 0.10
    assert all(v.drift is not None and not v.drift.detected for v in judged)
    assert not any(v.alarms or v.triggered for v in judged)
    assert retrain_requests(monitored) == []
    assert retrain_runs(monitored, retrain_deployment) == runs_before


def test_an_error_jump_triggers_exactly_one_retrain(
    monitored: Settings, salmon_model: tuple[str, Pipeline], retrain_deployment: str
) -> None:
    model = salmon_model[1]
    runs_before = {run[0] for run in retrain_runs(monitored, retrain_deployment)}
    first = window_aligned_start(monitored)
    shift = first + timedelta(seconds=6)
    produce(
        monitored,
        scored_fish(model, "1", "salmon", 3, first, monitored)
        + scored_fish(model, "1", "walleye", 7, shift, monitored),
    )

    verdicts = run_monitor(monitored, lambda v: len(v) >= 9)

    before = [v for v in verdicts if v.window.start < shift]
    after = [v for v in verdicts if v.window.start >= shift]
    assert len(before) == 3
    assert len(after) >= 6
    assert not any(v.alarms for v in before)
    # A species the model never saw is its own incident, not drift: the sizes of the species
    # it knows are what can drift, and the windows after the shift hold none of those.
    walleye = IncidentKey(IncidentKind.UNSEEN, "walleye")
    assert all({g.alarm.incident for g in v.alarms} == {walleye} for v in after)
    assert all(v.judged and v.judged.judged > 0.10 for v in after)
    assert all(v.drift is None for v in after)
    assert all(v.drift is not None and not v.drift.detected for v in before)
    fired = [v for v in verdicts if v.triggered]
    assert [v.window.start for v in fired] == [shift]
    assert all(not g.gate.open for v in after[1:] for g in v.alarms)

    [request] = retrain_requests(monitored)
    assert request.reason is RetrainReason.ERROR
    assert request.metric == "mean_relative_error"
    assert request.metric_value > request.threshold == 0.10
    assert request.model_version == "1"
    assert (request.window_start, request.window_end) == (shift, shift + timedelta(seconds=2))

    deadline = time.monotonic() + 120
    while True:
        new = [r for r in retrain_runs(monitored, retrain_deployment) if r[0] not in runs_before]
        if (len(new) == 1 and new[0][1] == "COMPLETED") or time.monotonic() > deadline:
            break
        time.sleep(1)
    [(run_id, state, parameters)] = new
    assert run_id == fired[0].flow_run_id
    [run] = [r for r in retrain_flow_runs(monitored, retrain_deployment) if r.id == run_id]
    assert {walleye.tag, "model-version:1"} <= run.tags
    assert IncidentKey(IncidentKind.DRIFT).tag not in run.tags
    assert state == "COMPLETED"
    assert parameters["reason"] == "error"
    # The retrain reads the window that fired and the one before (as many fish), not earlier.
    training_start = shift - timedelta(seconds=2)
    assert pd.Timestamp(str(parameters["window_start"])) == pd.Timestamp(training_start)
    assert pd.Timestamp(str(parameters["window_end"])) == pd.Timestamp(request.window_end)
    # ...but the walleye only from their first fish, where their incident began.
    starts = cast(dict[str, dict[str, str]], parameters["segment_starts"])
    walleye_start = starts["walleye"]["start"]
    assert pd.Timestamp(str(walleye_start)) >= pd.Timestamp(shift)

    report = fired[0].reports
    assert report is not None
    assert [p.name.rsplit("-", 1)[-1] for p in report.pages] == ["error.html"]
    # The page is the report of the fired window's fish (all scored by version 1).
    assert_error_report(report.pages[0], fired[0].window.records)
    workspace = Workspace.create(str(workspace_dir(monitored)))
    [project] = workspace.search_project("fish-weight")
    # Every judged window is a run (and a drift run when it was tested, a truth-coverage run
    # when its predictions were counted), named by its verdict.
    runs = [workspace.get_run(project.id, r) for r in workspace.list_runs(project.id)]
    assert len(runs) == len(verdicts) + sum(v.drift is not None for v in verdicts) + sum(
        v.coverage is not None for v in verdicts
    )
    # One window fired: its judgement's run (its coverage run carries the verdict too).
    coverage = [r for r in runs if r.name.endswith(": truth coverage")]
    assert len([r for r in runs if "fired" in r.tags and r not in coverage]) == 1
    assert len([r for r in coverage if "fired" in r.tags]) == 1
    assert sum(r.name.endswith("· v1 · held-back: error") for r in runs) == len(after) - 1


def test_a_never_seen_species_arriving_during_another_incidents_cooldown_gets_its_own_retrain(
    monitored: Settings, salmon_model: tuple[str, Pipeline], retrain_deployment: str
) -> None:
    settings = monitored.override(monitor_queue_check_s=1.0)
    model = salmon_model[1]
    runs_before = {run.id for run in retrain_flow_runs(settings, retrain_deployment)}
    species = f"pike{uuid.uuid4().hex[:6]}"  # a name no other test's incident shares
    first = window_aligned_start(settings)
    wrong = first + timedelta(seconds=6)  # salmon predicted 30 % too heavy: error:salmon
    arrival = first + timedelta(seconds=10)  # then a species the model never saw
    produce(
        settings,
        scored_fish(model, "1", "salmon", 3, first, settings)
        + scored_fish(model, "1", "salmon", 2, wrong, settings, bias=1.3)
        + scored_fish(model, "1", "walleye", 4, arrival, settings, species=species),
    )

    verdicts = run_monitor(settings, lambda v: len(v) >= 8, timeout_s=300, queue_empty=True)

    salmon = IncidentKey(IncidentKind.ERROR, "salmon")
    pike = IncidentKey(IncidentKind.UNSEEN, species)
    by_start = {v.window.start: v for v in verdicts}
    fired, repeated = by_start[wrong], by_start[wrong + timedelta(seconds=2)]
    assert fired.triggered
    assert fired.gate_of(salmon) is not None
    held = repeated.gate_of(salmon)
    assert held is not None
    assert held.state is GateState.HELD
    # Pike is not held back by salmon's cooldown: it fires, or waits while salmon's run is in
    # flight and fires once it has ended (the monitor's queue is empty at the end).
    pike_gates = [v.gate_of(pike) for v in verdicts if v.window.start >= arrival]
    assert pike_gates[0] is not None
    assert pike_gates[0].state in (GateState.FIRED, GateState.QUEUED)
    assert all(g is not None and g.state is not GateState.CLOSED for g in pike_gates)

    deadline = time.monotonic() + 120
    while True:
        new = [
            r for r in retrain_flow_runs(settings, retrain_deployment) if r.id not in runs_before
        ]
        if (len(new) >= 2 and all(r.state == "COMPLETED" for r in new)) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(1)
    [salmon_run, pike_run] = new
    assert salmon.tag in salmon_run.tags
    assert pike.tag not in salmon_run.tags
    assert pike.tag in pike_run.tags
    assert salmon.tag not in pike_run.tags
    assert all(r.state == "COMPLETED" for r in new)
    assert salmon_run.created is not None
    assert pike_run.created is not None
    # The pike retrain started inside salmon's cooldown, which held salmon's repeats back.
    elapsed = (pike_run.created - salmon_run.created).total_seconds()
    assert 0 < elapsed < settings.monitor.cooldown_s
    assert pd.Timestamp(str(pike_run.parameters["window_end"])) >= pd.Timestamp(
        arrival + timedelta(seconds=2)
    )
    [salmon_request, pike_request] = retrain_requests(settings)
    assert salmon_request.metric_value > 0.2  # salmon 30 % off
    assert pike_request.window_start >= arrival  # pike's own windows, not salmon's
