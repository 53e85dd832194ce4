"""The whole loop on the real stack, on the default scenario (salmon → walleye → salmon).

Real processes: the flow deployments (``tidemark serve-flows``), a scorer, the joiner and the
monitor; the bootstrap model comes from the ``train`` deployment. The simulator plays the
default scenario's fish in simulated event time (one fish per second of line time, windows of
60 s as in production), quickly through the stationary salmon and slowly through the walleye,
so that the loop has time to react while walleye still arrive. The test asserts on what the loop
published: the first model's error crosses the threshold after the shift, one retrain is
triggered for the incident, a new version is promoted, and the windows scored by it are back
under the threshold. It prints the timings and draws the picture.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from demo.incident import Incident, observed_incident
from demo.observer import LoopObserver
from demo.player import PhaseStart, play
from demo.run import wait_out_cooldown
from demo.timeline import draw_timeline
from infra.local.stack import Stack
from tests.integration.conftest import Processes
from tests.integration.projects import fish_on
from tidemark.config import Settings
from tidemark.orchestration import RETRAIN_FLOW, TRAIN_DEPLOYMENT, deployments_ready, prefect_api
from tidemark.registry import writer as registry
from tidemark.simulation.library import load_scenario

# Fish per wall-clock second in each phase of the default scenario.
RATES = (40.0, 8.0, 40.0)
EVENT_INTERVAL_S = 1.0


def _wait(condition: Callable[[], bool], timeout_s: float, what: str, processes: Processes) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        processes.check_alive()
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s: {what}"
        time.sleep(1)


def _ready(check: Callable[[], None]) -> bool:
    try:
        check()
    except Exception:
        return False
    return True


def retrain_runs(settings: Settings) -> list[str]:
    with (
        prefect_api(settings.orchestration),
        get_client(sync_client=True) as client,
    ):
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[RETRAIN_FLOW]))
        )
    return [str(run.id) for run in runs]


def test_the_loop_recovers_from_the_shift_with_one_retrain(
    loop: tuple[Settings, Processes], stack: Stack
) -> None:
    settings, processes = loop
    runs_before = set(retrain_runs(settings))
    processes.start("serve-flows")
    _wait(
        lambda: _ready(lambda: deployments_ready(settings.orchestration)),
        180,
        "deployments",
        processes,
    )
    with prefect_api(settings.orchestration):
        bootstrap: FlowRun = run_deployment(  # type: ignore[assignment]  # sync caller
            TRAIN_DEPLOYMENT, parameters={}, timeout=300, poll_interval=2
        )
    assert bootstrap.state is not None
    assert bootstrap.state.is_completed(), bootstrap.state
    first_version = registry.production_version(settings.registry)
    assert first_version is not None

    processes.start("score", "--metrics-port", str(settings.stream.scorer_metrics_port))
    processes.start("join", "--metrics-port", str(settings.stream.joiner_metrics_port))
    processes.start("monitor", "--metrics-port", str(settings.monitor.metrics_port))
    for port in (
        settings.stream.scorer_metrics_port,
        settings.stream.joiner_metrics_port,
        settings.monitor.metrics_port,
    ):
        _wait(partial(_port_open, port), 120, f"metrics port {port}", processes)

    # Runs of the retrain deployment by earlier tests of the session count for the cooldown.
    wait_out_cooldown(settings, print)
    scenario = load_scenario(fish_on(settings))
    observer = LoopObserver(settings)
    phases: list[PhaseStart] = []
    # Line time well in the past, whole minutes, so that the shift starts a window.
    event_start = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    player = threading.Thread(
        target=lambda: phases.extend(
            play(
                settings,
                scenario,
                RATES,
                event_time_start=event_start,
                event_interval_s=EVENT_INTERVAL_S,
                label_delay_s=5.0,
            )
        ),
        daemon=True,
    )
    player.start()
    try:
        deadline = time.monotonic() + 900
        # Every fish is measured and weighed; allow for the last windows to be joined.
        while len(observer.scored) < scenario.count:
            processes.check_alive()
            assert time.monotonic() < deadline, f"only {len(observer.scored)} fish scored"
            observer.poll(0.5)
        player.join(timeout=60)
        # The monitor closes windows a little later; a promoted request is all that may follow.
        settle = time.monotonic() + 15
        while time.monotonic() < settle:
            observer.poll(0.5)
    finally:
        observer.close()

    shift, after = phases[1], phases[2]
    incident = observed_incident(
        observer, settings, old_version=first_version, shift=shift, end=after
    )
    _report(incident, observer, settings, stack)

    # The first model's error rises above the threshold after the shift.
    assert incident.before is not None
    assert incident.before.mean_relative_error < settings.monitor.error_threshold
    assert incident.crossed is not None
    assert incident.during is not None
    assert incident.during.mean_relative_error > settings.monitor.error_threshold
    # Exactly one retrain for the incident, started through Prefect.
    assert len(incident.requests) == 1
    assert incident.requests[0].model_version == first_version
    new_runs = set(retrain_runs(settings)) - runs_before
    assert len(new_runs) == len(observer.requests)
    # A new version is promoted, and its first prediction follows.
    assert incident.promoted is not None
    assert incident.promoted.version != first_version
    assert incident.first_prediction is not None
    # The windows scored by the new version are back under the threshold.
    assert len(incident.recovered) >= 2
    for window in incident.recovered:
        assert window.overall.mean_relative_error < settings.monitor.error_threshold, window.start
    assert incident.after is not None
    assert incident.after.mean_relative_error < settings.monitor.error_threshold


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _report(incident: Incident, observer: LoopObserver, settings: Settings, stack: Stack) -> None:
    """Print the story and the timings, and draw the picture beside the stack's state."""
    picture = draw_timeline(
        observer.scored,
        observer.requests,
        threshold=settings.monitor.error_threshold,
        window_s=settings.monitor.window_s,
        path=stack.state / "closed-loop.png",
        title="Closed loop on the default scenario (end-to-end test)",
    )
    print("\n".join(["", *incident.lines(), f"all retrain requests: {len(observer.requests)}"]))
    detected = incident.requests[0].requested_at if incident.requests else None
    promoted = incident.promoted.seen_at if incident.promoted else None
    print(
        f"seconds from the shift: detection {incident.since_shift(detected)}, "
        f"promotion {incident.since_shift(promoted)}, "
        f"first prediction by the new version {incident.since_shift(incident.first_prediction)}"
    )
    print(f"picture: {picture}")
