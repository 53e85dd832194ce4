"""The monitor's alarm while the Prefect server is down (issue 21): the alarm is kept, and its
retrain runs once Prefect is back, exactly once."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

from sklearn.pipeline import Pipeline

from infra.local.stack import Stack
from monitoring.judgement import WindowJudgement
from monitoring.monitor import Monitor
from monitoring.policy import GateState, IncidentKey, IncidentKind
from tests.integration.monitoring.fish import CONTRACTS, produce, scored_fish, window_aligned_start
from tests.integration.monitoring.test_monitor import (
    RetrainRun,
    retrain_flow_runs,
    retrain_requests,
)
from tests.integration.streaming.streams import wait_for
from tidemark.config import Settings
from tidemark.stream.loop import run_loop


def test_an_alarm_raised_while_prefect_is_down_retrains_once_prefect_is_back(
    stack: Stack,
    monitored: Settings,
    salmon_model: tuple[str, Pipeline],
    retrain_deployment: str,
) -> None:
    settings = monitored.override(monitor_queue_check_s=1.0)
    model = salmon_model[1]
    before = {run.id for run in retrain_flow_runs(settings, retrain_deployment)}
    species = f"pike{uuid.uuid4().hex[:6]}"  # a name no other test's incident shares
    unseen = IncidentKey(IncidentKind.UNSEEN, species)
    first = window_aligned_start(settings)
    arrival = first + timedelta(seconds=4)
    produce(
        settings,
        scored_fish(model, "1", "salmon", 2, first, settings)
        + scored_fish(model, "1", "walleye", 3, arrival, settings, species=species),
    )

    def new_runs() -> list[RetrainRun]:
        return [r for r in retrain_flow_runs(settings, retrain_deployment) if r.id not in before]

    verdicts: list[WindowJudgement] = []
    monitor = Monitor.create(settings, CONTRACTS, on_judgement=verdicts.append)
    stop = threading.Event()
    thread = threading.Thread(target=run_loop, args=(monitor, settings, stop), daemon=True)
    try:
        with stack.paused("prefect"):
            stopped = time.monotonic()
            thread.start()
            # The species' windows are judged while nobody can start a retrain: each alarm is
            # kept in the monitor's queue, and no request has gone out.
            wait_for(lambda: len(verdicts) >= 4, 120, "the unseen species' windows judged")
            assert thread.is_alive()
            gates = [v.gate_of(unseen) for v in verdicts if v.window.start >= arrival]
            assert gates
            assert all(g is not None and g.state is GateState.QUEUED for g in gates), gates
            assert all("kept until" in g.why for g in gates if g is not None)
            assert not any(v.triggered for v in verdicts)
            assert unseen in monitor.incidents.queue
            assert retrain_requests(settings) == []

        back = time.monotonic()
        # Prefect is back: the kept alarm starts its retrain.
        wait_for(lambda: len(new_runs()) == 1, 60, "the kept retrain to start")
        started = time.monotonic()
        [run] = new_runs()
        assert unseen.tag in run.tags
        assert monitor.incidents.queue == {}
        # The same incident alarms again in later windows: its run (in flight, then cooling
        # down) holds them back.
        judged = len(verdicts)
        later = arrival + timedelta(seconds=6)
        produce(settings, scored_fish(model, "1", "walleye", 2, later, settings, species=species))
        wait_for(lambda: len(verdicts) >= judged + 2, 120, "two more windows judged")
        repeats = [v.gate_of(unseen) for v in verdicts[judged:]]
        assert all(g is not None and g.state is GateState.HELD for g in repeats), repeats
        # The retrain runs to its end on the deployment's runner.
        wait_for(lambda: [r.state for r in new_runs()] == ["COMPLETED"], 120, "the retrain run")
        assert thread.is_alive()
        print(
            f"Prefect healthy again after {back - stopped:.0f} s of outage;",
            f"retrain started {started - back:.0f} s later, completed",
            f"{time.monotonic() - started:.0f} s after that",
        )
    finally:
        stop.set()
        thread.join(timeout=30)
        monitor.close()
    assert [r.id for r in new_runs()] == [run.id]
    [request] = retrain_requests(settings)
    assert request.window_start == arrival
