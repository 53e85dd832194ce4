"""The monitor on the real stack, fed with synthetic ``fish.scored`` records.

Records are scored by the real production model (trained on salmon): salmon come out about
5 % off, walleye, which it never saw, about 20 % off.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pandas as pd
from evidently.ui.workspace import Workspace
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings
from sklearn.pipeline import Pipeline

from monitoring.monitor import Monitor, Verdict
from monitoring.reports import workspace_dir
from tests.integration.monitoring.fish import PER_WINDOW, produce, scored_fish, window_aligned_start
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.schemas import RetrainReason, RetrainRequest


def run_monitor(
    settings: Settings, until: Callable[[list[Verdict]], bool], timeout_s: float = 180
) -> list[Verdict]:
    """Run a monitor in a thread until ``until(verdicts)`` holds; return its verdicts."""
    verdicts: list[Verdict] = []
    monitor = Monitor.create(settings, on_verdict=verdicts.append)
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not until(verdicts):
            assert thread.is_alive(), "the monitor stopped"
            assert time.monotonic() < deadline, f"only {len(verdicts)} windows judged"
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
        monitor.close()
    return verdicts


def retrain_requests(settings: Settings) -> list[RetrainRequest]:
    consumer = kafka_io.consumer(
        settings, f"check-{uuid.uuid4().hex[:6]}", settings.topic_retrain_requests,
        consumer_timeout_ms=8_000,
    )  # fmt: skip
    try:
        return [RetrainRequest.from_json(m.value) for m in consumer]
    finally:
        consumer.close()


def retrain_runs(settings: Settings, deployment: str) -> list[tuple[str, str, dict[str, object]]]:
    """(id, state, parameters) of every run of the retrain deployment."""
    with (
        temporary_settings(updates={PREFECT_API_URL: settings.prefect_api_url}),
        get_client(sync_client=True) as client,
    ):
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=[deployment.split("/")[1]])
            )
        )
    return [(str(r.id), r.state.type.value if r.state else "", r.parameters) for r in runs]


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
    assert all(v.judged.count == PER_WINDOW for v in judged if v.judged)
    assert max(v.judged.mean_relative_error for v in judged if v.judged) < 0.10
    assert all(v.drift is not None and not v.drift.detected for v in judged)
    assert not any(v.alarm or v.triggered for v in judged)
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
    assert not any(v.alarm for v in before)
    assert all(v.alarm is not None for v in after)
    assert all(v.judged and v.judged.mean_relative_error > 0.10 for v in after)
    assert all(v.drift and v.drift.detected for v in after)
    fired = [v for v in verdicts if v.triggered]
    assert [v.window.start for v in fired] == [shift]
    assert all(v.gate is not None and not v.gate.open for v in after[1:])

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
    assert state == "COMPLETED"
    assert parameters["reason"] == "error"
    # The retrain reads the window that fired and the one before (as many fish), not earlier.
    training_start = shift - timedelta(seconds=2)
    assert pd.Timestamp(str(parameters["window_start"])) == pd.Timestamp(training_start)
    assert pd.Timestamp(str(parameters["window_end"])) == pd.Timestamp(request.window_end)

    report = fired[0].reports
    assert report is not None
    assert [p.name.rsplit("-", 1)[-1] for p in report.pages] == ["error.html", "drift.html"]
    assert all(p.stat().st_size > 10_000 for p in report.pages)
    workspace = Workspace.create(str(workspace_dir(monitored)))
    [project] = workspace.search_project("tidemark")
    # Every judged window is a run (and a drift run when it was tested), named by its verdict.
    runs = [workspace.get_run(project.id, r) for r in workspace.list_runs(project.id)]
    assert len(runs) == len(verdicts) + sum(v.drift is not None for v in verdicts)
    assert len([r for r in runs if "fired" in r.tags]) == 2
    assert sum(r.name.endswith("· v1 · held-back: error") for r in runs) == len(after) - 1
