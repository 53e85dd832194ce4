"""The monitor sees its own blind spots (issue 24, points 3 and 4), on the real stack.

One story, one monitor run in this process on Kafka, MLflow and Prefect: a production version
trained on salmon and walleye; synthetic predictions and scored items of both (2-s windows,
simulated event time), the scored items standing for the truths the joiner joined.

1. Three windows of both species with their truth: judged ok.
2. The walleye truth stops, their predictions go on: a "truth feed silent" incident for walleye
   opens within two windows (the monitor's metric), the windows are reported "not judged:
   coverage 50 %", and no error incident opens meanwhile.
3. The walleye truth is back: the incident closes.
4. Plaice, which the version never saw, arrive beside salmon, and every truth now comes three
   windows late: the early warning opens a provisional incident for plaice before the first
   plaice truth is joined, and the truth confirms it (the unseen-segment incident). The test
   prints the seconds from the plaice's arrival to each, and the estimated against the measured
   error of the windows compared.

The story waits on the monitor's metrics and judgements, never on fixed sleeps.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline

from infra.local.stack import Stack
from monitoring.early_warning import Provisional
from monitoring.judgement import WindowJudgement
from monitoring.metrics import REGISTRY
from monitoring.monitor import Monitor
from monitoring.reports import WindowVerdict
from tests.integration.conftest import private_settings
from tests.integration.monitoring.conftest import registered_model
from tests.integration.monitoring.fish import CONTRACTS, scored_fish, window_aligned_start
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.project.contracts import Scored
from tidemark.stream.loop import run_loop

pytestmark = pytest.mark.integration

WINDOW_S = 2.0
# The monitor's metrics carry the project it judges.
PROJECT = CONTRACTS.project.name
# Of event time: a segment is silent once five of its predictions are one window overdue.
SILENCE_S = WINDOW_S


@pytest.fixture(scope="module")
def two_species_model(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Pipeline]:
    return registered_model(stack.settings, tmp_path_factory, ["salmon", "walleye"])


def predictions_read() -> float:
    return (
        REGISTRY.get_sample_value("tidemark_monitor_predictions_total", {"project": PROJECT}) or 0.0
    )


@dataclass
class Watched:
    """A monitor running on its own thread, and what it judged."""

    settings: Settings
    monitor: Monitor
    judged: list[WindowJudgement] = field(default_factory=list)
    thread: threading.Thread | None = None

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float = 60) -> float:
        """Until ``condition`` holds; the seconds it took."""
        started = time.monotonic()
        while not condition():
            assert self.thread is not None
            assert self.thread.is_alive(), "the monitor stopped"
            assert time.monotonic() - started < timeout_s, f"no {what} in {timeout_s} s"
            time.sleep(0.1)
        return time.monotonic() - started

    def judged_until(self, end: datetime) -> bool:
        return any(j.window.end >= end for j in self.judged)

    def send(self, predicted: list[Scored], joined: list[Scored]) -> None:
        """The predictions of ``predicted``, then, once the monitor read them (as on a real
        line, where the truth comes later), the scored items ``joined``."""
        producer = kafka_io.producer(self.settings.kafka)
        topics = self.settings.kafka.topics
        read = predictions_read()
        for item in predicted:
            producer.send(
                topics.predictions,
                key=item.key.encode(),
                value=CONTRACTS.encode_prediction(item.prediction),
            )
        producer.flush(30)
        self.wait(lambda: predictions_read() >= read + len(predicted), "predictions read")
        for item in joined:
            producer.send(topics.scored, key=item.key.encode(), value=CONTRACTS.encode_scored(item))
        producer.flush(30)
        producer.close()


@pytest.fixture(scope="module")
def watched(
    stack: Stack, two_species_model: tuple[str, Pipeline], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Watched]:
    settings = private_settings(
        stack.settings,
        uuid.uuid4().hex[:8],
        registry_model_name=two_species_model[0],
        monitor_window_s=WINDOW_S,
        monitor_allowed_lateness_s=0.5,
        monitor_truth_silence_s=SILENCE_S,
        stack_state_dir=Path(tmp_path_factory.mktemp("truth")),
    )
    story = Watched(settings, Monitor.create(settings, CONTRACTS))
    story.monitor._on_judgement = story.judged.append
    stop = threading.Event()
    story.thread = threading.Thread(
        target=run_loop, args=(story.monitor, settings, stop), daemon=True
    )
    story.thread.start()
    try:
        yield story
    finally:
        stop.set()
        story.thread.join(timeout=30)
        story.monitor.close()


def silent(segment: str) -> float | None:
    return REGISTRY.get_sample_value(
        "tidemark_monitor_truth_silent", {"project": PROJECT, "segment": segment}
    )


def test_a_segment_without_truth_is_not_judged_opens_a_silence_incident_and_closes_it(
    watched: Watched, two_species_model: tuple[str, Pipeline]
) -> None:
    settings, model = watched.settings, two_species_model[1]
    first = window_aligned_start(settings)
    size = timedelta(seconds=WINDOW_S)
    salmon = scored_fish(model, "1", "salmon", 8, first, settings)
    walleye = scored_fish(model, "1", "walleye", 8, first, settings)

    def play(window: int, walleye_truth: bool) -> None:
        """One window: its predictions, then its truths (the walleye's or not)."""
        start = first + window * size
        now = [r for r in salmon + walleye if start <= r.at < start + size]
        watched.send(now, [r for r in now if walleye_truth or r.segment != "walleye"])

    # 1. Three windows of both with their truth.
    for window in range(3):
        play(window, walleye_truth=True)
    # 2. The walleye truth stops: the incident opens within two windows.
    paused = first + 3 * size
    play(3, walleye_truth=False)
    play(4, walleye_truth=False)
    opened_s = watched.wait(lambda: silent("walleye") == 1.0, "silence incident for walleye")
    assert silent("all") in (None, 0.0)
    play(5, walleye_truth=False)
    # 3. The truth is back.
    back = first + 6 * size
    play(6, walleye_truth=True)
    play(7, walleye_truth=True)
    closed_s = watched.wait(lambda: silent("walleye") == 0.0, "silence incident closed")
    watched.wait(lambda: watched.judged_until(back + size), "windows judged past the return")

    print(f"silence incident open {opened_s:.1f} s after the second paused window was sent")
    print(f"closed {closed_s:.1f} s after the truth came back (wall clock, loaded machine)")
    verdicts = {j.window.start: j for j in watched.judged}
    for start, judgement in sorted(verdicts.items()):
        coverage = judgement.coverage
        assert coverage is not None
        print(
            f"  {start:%H:%M:%S} {judgement.verdict.value:<10} "
            f"coverage {coverage.overall.share:.2f} "
            f"(walleye {coverage.by_segment['walleye'].share:.2f}) {judgement.coverage_note or ''}"
        )
    before = [j for s, j in verdicts.items() if s < paused]
    during = [j for s, j in verdicts.items() if paused <= s < back]
    after = [j for s, j in verdicts.items() if s >= back]
    assert (len(before), len(during)) == (3, 3)
    assert after
    assert all(j.verdict is WindowVerdict.OK for j in before)
    assert all(j.verdict is WindowVerdict.NOT_JUDGED for j in during)
    assert all(j.coverage_note == "not judged: coverage 50 % (walleye 0 %)" for j in during)
    # No error incident, before, during or after.
    assert not any(j.alarms for j in watched.judged)
    assert all(j.coverage and j.coverage.overall.share == 1.0 for j in after)


def provisional(segment: str, change: Provisional) -> float:
    return (
        REGISTRY.get_sample_value(
            "tidemark_monitor_provisional_incidents_total",
            {"project": PROJECT, "segment": segment, "change": change.value},
        )
        or 0.0
    )


DELAY_WINDOWS = 3


def test_a_never_seen_segment_warns_before_its_truth_and_the_truth_confirms_it(
    watched: Watched, two_species_model: tuple[str, Pipeline]
) -> None:
    settings, model = watched.settings, two_species_model[1]
    size = timedelta(seconds=WINDOW_S)
    # After the first story's windows, whatever it left open.
    first = window_aligned_start(settings) + 20 * size
    count = DELAY_WINDOWS + 1
    salmon = scored_fish(model, "1", "salmon", count, first, settings)
    plaice = scored_fish(
        model,
        "1",
        "walleye-and-plaice",
        count,
        first,
        settings,
        scenario="never-seen",
        only="plaice",
    )
    assert plaice
    assert not any(p.prediction.segment_known for p in plaice)

    def of(records: list[Scored], window: int) -> list[Scored]:
        start = first + window * size
        return [r for r in records if start <= r.at < start + size]

    arrival = time.monotonic()
    warned_s = first_truth_sent_s = None
    for window in range(count + DELAY_WINDOWS):
        if window - DELAY_WINDOWS == 0:
            first_truth_sent_s = time.monotonic() - arrival
            assert provisional("plaice", Provisional.OPENED) >= 1, (
                "no early warning before the truth"
            )
        late = window - DELAY_WINDOWS
        truths = of(salmon, late) + of(plaice, late) if late >= 0 else []
        watched.send(of(salmon, window) + of(plaice, window), truths)
        if window == 1:
            # The first plaice window's predictions are all in: its estimate comes now.
            watched.wait(
                lambda: provisional("plaice", Provisional.OPENED) >= 1, "early warning for plaice"
            )
            warned_s = time.monotonic() - arrival
    watched.wait(
        lambda: provisional("plaice", Provisional.CONFIRMED) >= 1, "confirmed plaice incident"
    )
    confirmed_s = time.monotonic() - arrival
    assert warned_s is not None
    assert first_truth_sent_s is not None
    assert warned_s < first_truth_sent_s
    # The truth's incident is the unseen segment's (the judgement is handed on after it).
    watched.wait(
        lambda: any(
            str(g.alarm.incident) == "unseen:plaice"
            for j in watched.judged
            if j.window.start >= first
            for g in j.alarms
        ),
        "the unseen plaice incident judged",
    )
    print(
        f"plaice: early warning {warned_s:.1f} s after their arrival (one window of event time, "
        f"{WINDOW_S:.0f} s, after it), first plaice truth sent at {first_truth_sent_s:.1f} s, "
        f"incident confirmed at {confirmed_s:.1f} s (wall clock, loaded machine)"
    )
    print("estimated against measured error of the windows compared (overall; plaice):")
    for compared in watched.monitor.truth.early.tracking.recent:
        if compared.start < first:
            continue
        estimated, measured = compared.by_segment.get("plaice", (float("nan"), float("nan")))
        print(
            f"  {compared.start:%H:%M:%S} estimated {compared.estimated:.3f} "
            f"measured {compared.measured:.3f}; plaice {estimated:.3f} / {measured:.3f}"
        )
    print(f"mean absolute gap so far: {watched.monitor.truth.early.tracking.mean_gap:.3f}")
