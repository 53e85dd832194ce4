"""The monitor's decisions window after window, with Prefect and the registry played by fakes.

The real monitor on the real stack is in tests/integration/monitoring; here the fakes keep the
runs in memory so that each rule (one retrain per incident, the queue, closing and reopening,
accumulating evidence) can be walked through window by window.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest
from kafka.structs import OffsetAndMetadata, TopicPartition

from monitoring.drift import DriftDetector
from monitoring.judgement import WindowJudgement
from monitoring.monitor import Monitor
from monitoring.policy import (
    Alarm,
    GateState,
    IncidentKey,
    IncidentKind,
    IncidentRun,
    RunOutcome,
)
from monitoring.production import Production
from monitoring.reports import SavedReport
from monitoring.windows import ClosedWindow
from tests.unit.monitoring.scored import FISH, T0, WHOLE_FISH, scored
from tests.unit.tidemark.stream.raw import Record
from tidemark.config import Settings
from tidemark.judging.decisions import Decision
from tidemark.judging.scored import WHOLE
from tidemark.project.contracts import Contracts, Prediction, Scored
from tidemark.project.spec import ErrorKind
from tidemark.schemas import RetrainRequest, utc_now
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario
from tidemark.stream.loop import clock_of
from tidemark.stream.records import Batch, Clock, Decoding, decode

SALMON_ERROR = IncidentKey(IncidentKind.ERROR, "salmon")
PIKE_UNSEEN = IncidentKey(IncidentKind.UNSEEN, "pike")


class FakeTrigger:
    """The retrain deployment's runs, kept in memory, most recent last."""

    def __init__(self) -> None:
        self.runs: list[IncidentRun] = []
        self.requests: list[RetrainRequest] = []
        self.segment_starts: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def publish(self, request: RetrainRequest) -> None:
        self.requests.append(request)

    def start_run(
        self,
        request: RetrainRequest,
        training_start: datetime,
        incidents: Any = (),
        segment_starts: Any = None,
    ) -> str:
        self.segment_starts.append(dict(segment_starts or {}))
        run = IncidentRun(
            flow_run_id=f"run-{next(self._ids)}",
            created_at=utc_now(),
            state="SCHEDULED",
            final=False,
            incidents=frozenset(incidents),
            data_start=min(training_start, request.window_start),
            model_version=request.model_version,
            segment_starts={k: v.start for k, v in (segment_starts or {}).items()},
        )
        self.runs.append(run)
        return run.flow_run_id

    def last_run(self, incident: IncidentKey | None = None) -> IncidentRun | None:
        mine = [r for r in self.runs if incident is None or incident in r.incidents]
        return mine[-1] if mine else None

    def in_flight(self) -> IncidentRun | None:
        going = [r for r in self.runs if not r.final]
        return going[-1] if going else None

    def end(self, flow_run_id: str, age_s: float = 0) -> None:
        """The run ends (COMPLETED), created ``age_s`` seconds ago."""
        self.runs = [
            replace(
                r, state="COMPLETED", final=True, created_at=utc_now() - timedelta(seconds=age_s)
            )
            if r.flow_run_id == flow_run_id
            else r
            for r in self.runs
        ]


class FakeFollower:
    """Production v1, trained on salmon only, without a drift reference."""

    current = Production("1", "run", None, frozenset({"salmon"}))

    def refresh(self) -> Production:
        return self.current


class FakeReports:
    def save_pages(self, **_: Any) -> SavedReport:
        return SavedReport(pages=(), workspace=Path("."))

    def record(self, _: Any) -> None:
        return None


def monitor(
    outcomes: dict[str, RunOutcome] | None = None,
    follower: FakeFollower | None = None,
    on_judgement: Callable[[WindowJudgement], None] | None = None,
    contracts: Contracts = FISH,
) -> tuple[Monitor, FakeTrigger]:
    trigger = FakeTrigger()
    settings = Settings().override(
        monitor_min_window_count=30,
        monitor_cooldown_s=300.0,
        monitor_evidence_windows=10,
        monitor_error_threshold=0.10,
    )
    found = outcomes if outcomes is not None else {}
    watched = Monitor(
        settings,
        contracts,
        cast(Any, follower or FakeFollower()),
        cast(Any, trigger),
        cast(Any, FakeReports()),
        cast(Any, None),
        on_judgement,
        run_outcome=found.get,
    )
    return watched, trigger


def window(index: int, **species: tuple[int, float]) -> ClosedWindow:
    """Window ``index`` (60 s each from T0) with ``count`` fish of each species at ``error``."""
    records: list[Scored] = []
    for name, (count, error) in species.items():
        known = name == "salmon"
        records += [
            scored(60 * index + i * 0.1, species=name, rel_error=error, known=known)
            for i in range(count)
        ]
    start = T0 + timedelta(seconds=60 * index)
    return ClosedWindow.of(start, start + timedelta(seconds=60), records, ErrorKind.RELATIVE)


def states(verdict: WindowJudgement) -> dict[str, GateState]:
    return {str(g.alarm.incident): g.gate.state for g in verdict.alarms}


def test_ten_stationary_windows_trigger_nothing() -> None:
    watched, trigger = monitor()
    verdicts = [watched.judge(window(i, salmon=(60, 0.05))) for i in range(10)]
    assert all(v.alarms == () and not v.triggered for v in verdicts)
    assert trigger.runs == []
    assert trigger.requests == []


def test_a_project_without_a_segment_has_one_incident_for_all_its_items() -> None:
    whole = Contracts(WHOLE_FISH)
    follower = FakeFollower()
    follower.current = Production("1", "run", None, frozenset())
    watched, trigger = monitor(follower=follower, contracts=whole)
    calm = [
        scored(i * 0.5, species=s, rel_error=0.05, contracts=whole)
        for i, s in enumerate(["salmon", "walleye"] * 40)
    ]
    assert (
        watched.judge(
            ClosedWindow.of(T0, T0 + timedelta(seconds=60), calm, ErrorKind.RELATIVE)
        ).alarms
        == ()
    )
    worse = [
        scored(60 + i * 0.5, species=s, rel_error=0.3, contracts=whole)
        for i, s in enumerate(["salmon", "walleye"] * 40)
    ]
    start = T0 + timedelta(seconds=60)
    fired = watched.judge(
        ClosedWindow.of(start, start + timedelta(seconds=60), worse, ErrorKind.RELATIVE)
    )
    assert states(fired) == {f"error:{WHOLE}": GateState.FIRED}
    [run] = trigger.runs
    assert run.incidents == {IncidentKey(IncidentKind.ERROR, WHOLE)}
    assert trigger.requests[0].metric == "mean_relative_error"
    assert trigger.requests[0].metric_value == pytest.approx(0.3)


def test_one_retrain_per_incident_and_a_new_species_gets_its_own_during_the_cooldown() -> None:
    watched, trigger = monitor()
    fired = watched.judge(window(0, salmon=(60, 0.2)))
    assert states(fired) == {"error:salmon": GateState.FIRED}
    assert fired.triggered
    trigger.end("run-1")  # ended a moment ago: salmon cools down
    repeats = [watched.judge(window(i, salmon=(60, 0.2))) for i in (1, 2)]
    assert all(states(v) == {"error:salmon": GateState.HELD} for v in repeats)
    assert not any(v.triggered for v in repeats)

    pike = watched.judge(window(3, salmon=(60, 0.2), pike=(60, 1.65)))
    assert states(pike) == {"error:salmon": GateState.HELD, "unseen:pike": GateState.FIRED}
    assert [r.incidents for r in trigger.runs] == [{SALMON_ERROR}, {PIKE_UNSEEN}]
    assert trigger.requests[-1].reason.value == "error"
    assert trigger.requests[-1].metric_value == pytest.approx(1.65)
    trigger.end("run-2")
    again = watched.judge(window(4, pike=(40, 1.6)))
    assert states(again) == {"unseen:pike": GateState.HELD}
    assert len(trigger.runs) == 2


def test_a_new_incident_waits_for_another_incidents_run_in_flight_and_then_fires() -> None:
    watched, trigger = monitor()
    watched.judge(window(0, salmon=(60, 0.2)))
    queued = watched.judge(window(1, salmon=(60, 0.2), pike=(40, 1.65)))
    assert states(queued) == {"error:salmon": GateState.HELD, "unseen:pike": GateState.QUEUED}
    assert watched.incidents.drain(force=True) is None  # salmon's run still in flight
    again = watched.judge(window(2, pike=(40, 1.6)))
    assert states(again) == {"unseen:pike": GateState.QUEUED}
    assert len(watched.incidents.queue) == 1

    trigger.end("run-1")
    assert watched.incidents.drain(force=True) == "run-2"
    [_, pike_run] = trigger.runs
    assert pike_run.incidents == {PIKE_UNSEEN}
    # The retrain reads both windows that raised the pike alarm while it waited.
    assert trigger.requests[-1].window_start == T0 + timedelta(seconds=60)
    assert trigger.requests[-1].window_end == T0 + timedelta(seconds=180)
    assert watched.incidents.queue == {}


def test_alarms_of_one_window_share_one_retrain() -> None:
    watched, trigger = monitor()
    fired = watched.judge(window(0, salmon=(60, 0.2), pike=(60, 1.65)))
    assert states(fired) == {"error:salmon": GateState.FIRED, "unseen:pike": GateState.FIRED}
    assert [r.incidents for r in trigger.runs] == [{SALMON_ERROR, PIKE_UNSEEN}]
    # The unseen species speaks for the run: the strongest evidence.
    assert trigger.requests[0].metric_value == pytest.approx(1.65)


def test_a_rejected_retrain_closes_the_incident_until_the_error_grows_beyond_it() -> None:
    outcomes = {"run-1": RunOutcome(Decision.REJECTED, {"salmon": 0.097})}
    watched, trigger = monitor(outcomes)
    assert watched.judge(window(0, salmon=(60, 0.104))).triggered
    trigger.end("run-1", age_s=900)
    floor = [watched.judge(window(i, salmon=(60, e))) for i, e in enumerate([0.11, 0.115], 1)]
    assert all(states(v) == {"error:salmon": GateState.CLOSED} for v in floor)
    grown = watched.judge(window(3, salmon=(60, 0.2)))
    assert states(grown) == {"error:salmon": GateState.FIRED}
    assert grown.triggered
    assert len(trigger.runs) == 2


def test_a_short_species_accumulates_and_its_retrain_reads_every_window() -> None:
    watched, trigger = monitor()
    short = [watched.judge(window(i, salmon=(60, 0.05), pike=(12, 1.6))) for i in range(2)]
    assert not any(v.alarms for v in short)
    # Judged on 36 pooled fish, and 60 labelled pike are needed to train and judge a retrain.
    assert watched.incidents.items_needed == 60
    gathering = watched.judge(window(2, salmon=(60, 0.05), pike=(12, 1.6)))
    assert states(gathering) == {"unseen:pike": GateState.GATHERING}
    assert "36 of the 60 labelled pike" in gathering.alarms[0].gate.why
    # The next windows add their pike, whether they raise the alarm again or not.
    watched.judge(window(3, salmon=(60, 0.05), pike=(12, 1.6)))
    assert trigger.runs == []
    watched.judge(window(4, salmon=(60, 0.05), pike=(12, 1.6)))
    [run] = trigger.runs
    assert run.incidents == {PIKE_UNSEEN}
    assert run.data_start == T0
    assert watched.incidents.gathering == {}


def test_an_alarm_on_too_few_fish_of_its_species_gathers_then_fires_once() -> None:
    watched, trigger = monitor()
    first = watched.judge(window(0, pike=(40, 1.6)))
    assert states(first) == {"unseen:pike": GateState.GATHERING}
    assert not first.triggered
    second = watched.judge(window(1, pike=(40, 1.6)))
    assert states(second) == {"unseen:pike": GateState.FIRED}
    [run] = trigger.runs
    assert run.data_start == T0
    assert trigger.requests[0].window_start == T0
    held = watched.judge(window(2, pike=(40, 1.6)))
    assert states(held) == {"unseen:pike": GateState.HELD}
    assert len(trigger.runs) == 1


def test_a_retrain_without_a_verdict_is_followed_by_one_that_reads_its_data_again() -> None:
    outcomes = {"run-1": RunOutcome(Decision.INSUFFICIENT_EVIDENCE)}
    watched, trigger = monitor(outcomes)
    watched.judge(window(5, pike=(60, 1.6)))
    trigger.end("run-1", age_s=400)
    again = watched.judge(window(11, pike=(40, 1.6)))
    assert states(again) == {"unseen:pike": GateState.FIRED}
    assert trigger.runs[-1].data_start == T0 + timedelta(seconds=300)


def test_a_queued_incident_that_fires_again_keeps_the_windows_it_waited_through() -> None:
    watched, trigger = monitor()
    watched.judge(window(0, salmon=(60, 0.2)))
    queued = watched.judge(window(1, salmon=(60, 0.2), pike=(40, 1.65)))
    assert states(queued)["unseen:pike"] is GateState.QUEUED
    trigger.end("run-1")
    fired = watched.judge(window(2, pike=(40, 1.6)))
    assert states(fired) == {"unseen:pike": GateState.FIRED}
    assert trigger.requests[-1].window_start == T0 + timedelta(seconds=60)
    assert trigger.runs[-1].incidents == {PIKE_UNSEEN}
    assert watched.incidents.queue == {}


def test_a_window_judged_while_the_alias_moved_raises_no_retrain() -> None:
    class Moved(FakeFollower):
        """v1 when the window is judged, v2 by the time its alarms are gated."""

        asked = 0

        def refresh(self) -> Production:
            self.asked += 1
            return self.current if self.asked == 1 else replace(self.current, version="2")

    watched, trigger = monitor(follower=Moved())
    stale = watched.judge(window(0, salmon=(60, 0.2)))
    assert states(stale) == {"error:salmon": GateState.HELD}
    assert "judged on v1, but production is now v2" in stale.alarms[0].gate.why
    assert trigger.runs == []


def polled(*fish: tuple[int, Scored | bytes], clock: Clock | None = None) -> Batch[Scored]:
    """A batch of ``fish.scored`` on partition 0: (offset, record or raw bytes) each."""
    topic = Settings().kafka.topics.scored
    records = [
        Record(
            topic, 0, offset, b"k", value if isinstance(value, bytes) else FISH.encode_scored(value)
        )
        for offset, value in fish
    ]
    return decode(
        {TopicPartition(topic, 0): records}, {topic: Decoding(FISH.decode_scored)}, 10_000, clock
    )


def test_a_monitor_resumed_from_the_committed_mark_judges_no_window_twice() -> None:
    judged: list[WindowJudgement] = []
    first, _ = monitor(on_judgement=judged.append)
    first.resume({})
    # A minute of salmon, a record that is no scored fish, then one that closes the minute.
    first.process(polled(*((i, scored(i)) for i in range(60)), (60, b"{}")), cast(Any, None))
    first.process(polled((61, scored(130))), cast(Any, None))
    first.tick()
    assert [j.window.start for j in judged] == [T0]
    [(partition, committed)] = first.mark().items()
    assert committed.offset == 61  # the first record still in an open window

    again: list[WindowJudgement] = []
    restarted, _ = monitor(on_judgement=again.append)
    restarted.resume({partition: committed})
    # Kafka hands the records from the committed offset again, and an older one replayed.
    restarted.process(polled((59, scored(59)), (61, scored(130))), cast(Any, None))
    restarted.tick()
    assert again == []
    assert restarted.windows is not None
    assert restarted.windows.open_windows == 1
    assert restarted.mark()[partition].offset == 61


def _half_and_half(index: int, before: float, after: float, count: int = 30) -> ClosedWindow:
    """Window ``index`` of ``count`` salmon: the first half at error ``before``, the rest at
    ``after`` (the law changed in the middle)."""
    records = [
        scored(60 * index + i * 2.0, rel_error=before if i < count // 2 else after)
        for i in range(count)
    ]
    start = T0 + timedelta(seconds=60 * index)
    return ClosedWindow.of(start, start + timedelta(seconds=60), records, ErrorKind.RELATIVE)


def test_a_retrain_reads_the_changed_species_only_from_the_change_inside_its_window() -> None:
    """Issue 26: three calm windows, then the salmon law changes half-way through a window.
    The retrain's window reaches back to a calm window (for the species it must not forget),
    but the salmon are read only from the first fish of the new law, and it gathers until
    enough of THOSE are in (the 15 of the old law in the changed window count for nothing)."""
    watched, trigger = monitor()
    for i in range(3):
        watched.judge(window(i, salmon=(30, 0.03)))
    changed = watched.judge(_half_and_half(3, 0.03, 0.30))
    assert states(changed) == {"error:salmon": GateState.GATHERING}
    [held] = changed.alarms
    assert "15 of the 60" in held.gate.why
    change = T0 + timedelta(seconds=180 + 15 * 2.0)
    assert held.alarm.data_start == change
    more = watched.judge(window(4, salmon=(30, 0.30)))
    fired = watched.judge(window(5, salmon=(30, 0.30)))
    assert states(more) == {"error:salmon": GateState.GATHERING}
    assert fired.triggered or watched.incidents.queue
    watched.incidents.drain(force=True)
    [run] = trigger.runs
    [starts] = trigger.segment_starts
    assert set(starts) == {"salmon"}
    assert starts["salmon"].start == change
    assert "change-point" in starts["salmon"].reason
    # The other species reach back: the retrain's window starts before the change.
    assert run.data_start is not None
    assert run.data_start < change


def test_a_drift_retrain_reads_a_gathering_species_only_from_its_change() -> None:
    """Issue 26, seen on a replay after `make up`'s gentle line: the salmon law changed, the
    salmon's incident gathered evidence, and a drift alarm fired first; its retrain read the
    salmon from before the change and blended both laws. It must start them at the change."""
    watched, trigger = monitor()
    watched.incidents.thresholds = watched.thresholds
    for i in range(3):
        watched.judge(window(i, salmon=(30, 0.03)))
    changed = watched.judge(_half_and_half(3, 0.03, 0.30))
    assert states(changed) == {"error:salmon": GateState.GATHERING}
    change = T0 + timedelta(seconds=180 + 15 * 2.0)
    closed = window(4, salmon=(30, 0.03), pike=(60, 0.03))
    drift = Alarm(
        IncidentKey(IncidentKind.DRIFT, "pike"), "drift_share", 1.0, 0.5, 60, closed.start
    )
    judgement = WindowJudgement(window=closed, version="1", judged=None, drift=None)
    watched.incidents.answer(judgement, [drift])
    [starts] = trigger.segment_starts
    assert starts["salmon"].start == change
    assert "change-point" in starts["salmon"].reason
    assert starts["pike"].start == closed.start


def test_after_a_promotion_an_incident_of_the_new_version_is_not_held_by_the_old_ones() -> None:
    """Issue 26: v2 was promoted by salmon's retrain (asked on v1) a moment ago; salmon's
    error under v2 is still above the threshold: a new incident of v2, which fires at once
    (not held by v1's cooldown) and reads the salmon only from the first fish v2 scored."""
    follower = FakeFollower()
    watched, trigger = monitor(follower=follower)
    watched.judge(window(0, salmon=(60, 0.2)))
    trigger.end("run-1")
    follower.current = Production("2", "run", None, frozenset({"salmon"}))
    mixed = [
        *(scored(60 + i * 0.5, rel_error=0.03) for i in range(20)),
        *(scored(70 + i * 0.5, rel_error=0.2, version="2") for i in range(60)),
    ]
    start = T0 + timedelta(seconds=60)
    again = watched.judge(
        ClosedWindow.of(start, start + timedelta(seconds=60), mixed, ErrorKind.RELATIVE)
    )
    assert states(again) == {"error:salmon": GateState.FIRED}, again.alarms
    assert "on v2" in again.alarms[0].gate.why
    assert [r.model_version for r in trigger.runs] == ["1", "2"]
    assert trigger.segment_starts[-1]["salmon"].start == T0 + timedelta(seconds=70)


def test_a_record_from_the_future_is_dead_lettered_and_moves_no_window_clock() -> None:
    """Issue 21: a scored record dated ten years ahead would close every real window as late;
    it leaves as a dead letter and the minute of salmon is judged as usual."""
    judged: list[WindowJudgement] = []
    watched, _ = monitor(on_judgement=judged.append)
    watched.resume({})
    decade = (utc_now() - T0).total_seconds() + 10 * 365 * 86_400
    # The stack's skew; a horizon that lets these fish of a fixed past day through.
    stack = clock_of(watched, watched.settings)
    assert stack is not None
    clock = replace(stack, horizon=timedelta(days=3650))
    batch = polled((0, scored(decade)), *((i + 1, scored(i)) for i in range(60)), clock=clock)
    watched.process(batch, cast(Any, None))
    [letter] = batch.dead
    assert "ahead of the clock" in letter.error
    assert watched.windows is not None
    assert watched.windows.closed_until is None
    watched.process(polled((61, scored(130)), clock=clock), cast(Any, None))
    watched.tick()
    assert [j.window.start for j in judged] == [T0]
    assert judged[0].window.overall.n == 60
    # The dead letter is accounted for: the commit passes it.
    assert watched.windows.commit_offsets()[0] == 61


def test_a_bad_prediction_is_skipped_and_left_to_the_joiner_to_dead_letter() -> None:
    """The joiner reads the predictions too and dead-letters a bad one: the monitor skips it, so
    that a bad record leaves one dead letter, not two. A bad scored record is its own."""
    watched, _ = monitor()
    watched.resume({})
    topics = watched.settings.kafka.topics
    bad = b'{"not": "a record'
    batch = decode(
        {
            TopicPartition(topics.predictions, 0): [Record(topics.predictions, 0, 7, b"k", bad)],
            TopicPartition(topics.scored, 0): [Record(topics.scored, 0, 3, b"k", bad)],
        },
        watched.decoders,
        10_000,
    )
    assert {letter.source_topic for letter in batch.dead} == {topics.predictions, topics.scored}
    watched.process(batch, cast(Any, None))
    assert [(letter.source_topic, letter.offset) for letter in batch.dead] == [(topics.scored, 3)]


def test_a_window_clock_committed_in_the_future_is_not_resumed() -> None:
    watched, _ = monitor()
    future = utc_now() + timedelta(days=3650)
    meta = f'{{"closed_until": "{future.isoformat()}", "seen_until": 5}}'
    topic = Settings().kafka.topics.scored
    watched.resume({TopicPartition(topic, 0): OffsetAndMetadata(5, meta, -1)})
    assert watched.windows is not None
    assert watched.windows.closed_until is None


def test_a_new_production_version_closes_the_old_versions_waiting_incidents() -> None:
    """Issue 22's last point: salmon gather evidence on v1; v2 is promoted; the v1 incident
    is closed, and v2's windows start their own."""
    follower = FakeFollower()
    watched, trigger = monitor(follower=follower)
    gathering = watched.judge(window(0, salmon=(30, 0.3)))
    assert states(gathering) == {"error:salmon": GateState.GATHERING}
    follower.current = Production("2", "run", None, frozenset({"salmon"}))
    calm = watched.judge(
        ClosedWindow.of(
            T0 + timedelta(seconds=60),
            T0 + timedelta(seconds=120),
            [scored(60 + i, rel_error=0.02, version="2") for i in range(30)],
            ErrorKind.RELATIVE,
        )
    )
    assert calm.alarms == ()
    assert watched.incidents.gathering == {}
    assert trigger.runs == []


def test_a_queued_incident_of_a_version_replaced_meanwhile_starts_no_retrain() -> None:
    """Pike wait for salmon's run in flight, which promotes v2: the pike incident was measured
    on v1 and is closed before the queue starts anything (v2's windows judge pike anew)."""
    follower = FakeFollower()
    watched, trigger = monitor(follower=follower)
    watched.judge(window(0, salmon=(60, 0.2)))
    queued = watched.judge(window(1, salmon=(60, 0.2), pike=(40, 1.65)))
    assert states(queued) == {"error:salmon": GateState.HELD, "unseen:pike": GateState.QUEUED}
    trigger.end("run-1")
    follower.current = Production("2", "run-1", None, frozenset({"salmon", "pike"}))
    assert watched.incidents.drain(force=True) is None
    assert watched.incidents.queue == {}
    assert [r.incidents for r in trigger.runs] == [{IncidentKey(IncidentKind.ERROR, "salmon")}]


# Spring salmon (the growth scenario's first phase) train the drift references below; grown
# salmon are its autumn ones, longer by about three of spring's standard deviations.
GROWTH = load_scenario(FISH.project, "growth")
SPRING = generate_frame(GROWTH, 1, ["spring"])
GROWN = generate_frame(GROWTH, 2, ["autumn"])


def on_reference(version: str, reference: pd.DataFrame) -> Production:
    """Production ``version``, trained on the salmon of ``reference``, with its drift test."""
    detector = DriftDetector(reference, FISH.project, p_value=0.001, drift_share=0.5)
    return Production(version, "run", detector, frozenset({"salmon"}))


def sized(index: int, sizes: pd.DataFrame, version: str, error: float = 0.04) -> ClosedWindow:
    """Window ``index`` (60 s each from T0) of salmon of these sizes, scored by ``version``."""
    records = [
        scored(
            60 * index + i * 0.5,
            rel_error=error,
            version=version,
            length_cm=float(fish.length_cm),
            height_cm=float(fish.height_cm),
        )
        for i, fish in enumerate(sizes.itertuples())
    ]
    start = T0 + timedelta(seconds=60 * index)
    return ClosedWindow.of(start, start + timedelta(seconds=60), records, ErrorKind.RELATIVE)


def test_drift_is_an_incident_of_its_segment_that_gathers_and_reads_it_from_its_start() -> None:
    """Issue 22: grown salmon drift from v1's training data while their error stays under the
    threshold. The incident is drift:salmon, judged on the salmon's own evidence; it gathers
    like an error incident, and its retrain judges the salmon and reads them only from the
    first grown salmon, never the spring ones before."""
    follower = FakeFollower()
    follower.current = on_reference("1", SPRING)
    watched, trigger = monitor(follower=follower)
    calm = watched.judge(sized(0, SPRING.iloc[:40], "1"))
    assert calm.alarms == ()
    assert not calm.segment_drift["salmon"].detected
    first = watched.judge(sized(1, GROWN.iloc[:40], "1", error=0.07))
    assert states(first) == {"drift:salmon": GateState.GATHERING}
    assert first.segment_drift["salmon"].detected
    assert "40 of the 60 labelled salmon" in first.alarms[0].gate.why
    fired = watched.judge(sized(2, GROWN.iloc[40:80], "1", error=0.07))
    assert states(fired) == {"drift:salmon": GateState.FIRED}
    [run] = trigger.runs
    assert run.incidents == {IncidentKey(IncidentKind.DRIFT, "salmon")}
    assert trigger.requests[0].reason.value == "drift"
    [starts] = trigger.segment_starts
    assert starts["salmon"].start == T0 + timedelta(seconds=60)
    # The spring salmon of the calm window are before it (the others' memory reaches them).
    assert run.data_start is not None
    assert run.data_start <= T0 + timedelta(seconds=60)


def test_a_drift_against_the_new_versions_data_is_a_new_incident_in_the_old_ones_cooldown() -> None:
    """Issue 22's story: the salmon's drift incident on v1 started a retrain a moment ago
    (cooldown 300 s), and v2, trained on grown salmon, was promoted. Salmon grown back to
    spring's sizes drift from v2's data: a new incident of v2 that fires at once."""
    follower = FakeFollower()
    follower.current = on_reference("1", SPRING)
    watched, trigger = monitor(follower=follower)
    watched.judge(sized(0, GROWN.iloc[:60], "1"))
    assert [r.incidents for r in trigger.runs] == [{IncidentKey(IncidentKind.DRIFT, "salmon")}]
    trigger.end("run-1")
    # Still v1: the incident is in its cooldown.
    held = watched.judge(sized(1, GROWN.iloc[60:120], "1"))
    assert states(held) == {"drift:salmon": GateState.HELD}
    assert "cooldown" in held.alarms[0].gate.why
    follower.current = on_reference("2", GROWN)
    grown = watched.judge(sized(2, GROWN.iloc[120:180], "2"))
    assert grown.alarms == ()
    back = watched.judge(sized(3, SPRING.iloc[:60], "2"))
    assert states(back) == {"drift:salmon": GateState.FIRED}, back.alarms
    assert "on v2" in back.alarms[0].gate.why
    assert [r.model_version for r in trigger.runs] == ["1", "2"]
    assert trigger.segment_starts[-1]["salmon"].start == T0 + timedelta(seconds=180)


def test_each_segment_is_tested_for_drift_against_its_own_training_rows() -> None:
    """Salmon grown a third larger and walleye as they were, in one window: salmon drifted,
    walleye did not (the window as a whole did: its test is for the reports)."""
    default = load_scenario(FISH.project, "default")
    reference = generate_frame(default, 1, ["salmon", "walleye"])
    fresh = generate_frame(default, 2, ["salmon", "walleye"])
    detector = DriftDetector(reference, FISH.project, p_value=0.001, drift_share=0.5)
    follower = FakeFollower()
    follower.current = Production("1", "run", detector, frozenset({"salmon", "walleye"}))
    watched, _ = monitor(follower=follower)
    salmon = fresh[fresh.species == "salmon"].iloc[:40]
    walleye = fresh[fresh.species == "walleye"].iloc[:40]
    records = [
        scored(i * 0.5, length_cm=f.length_cm * 1.3, height_cm=f.height_cm * 1.3)
        for i, f in enumerate(salmon.itertuples())
    ] + [
        scored(30 + i * 0.5, species="walleye", length_cm=f.length_cm, height_cm=f.height_cm)
        for i, f in enumerate(walleye.itertuples())
    ]
    both = watched.judge(
        ClosedWindow.of(T0, T0 + timedelta(seconds=60), records, ErrorKind.RELATIVE)
    )
    assert both.drift is not None
    assert both.drift.detected
    assert {s: d.detected for s, d in both.segment_drift.items()} == {
        "salmon": True,
        "walleye": False,
    }
    assert states(both) == {"drift:salmon": GateState.GATHERING}


def test_a_rollback_closes_the_incidents_of_the_version_it_left() -> None:
    """v2 is production; its grown salmon gather evidence for drift:salmon. v2 is rolled back
    to v1: v2's incident is closed, its items count for nothing, and v1's own drift incident
    gathers from its own first items."""
    follower = FakeFollower()
    follower.current = on_reference("2", SPRING)
    watched, trigger = monitor(follower=follower)
    gathering = watched.judge(sized(0, GROWN.iloc[:40], "2"))
    assert states(gathering) == {"drift:salmon": GateState.GATHERING}
    follower.current = on_reference("1", SPRING)
    again = watched.judge(sized(1, GROWN.iloc[40:80], "1"))
    assert states(again) == {"drift:salmon": GateState.GATHERING}
    assert "40 of the 60" in again.alarms[0].gate.why
    assert trigger.runs == []


class DownTrigger(FakeTrigger):
    """Prefect that may be down (every call fails), or may lose its answer to a start."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.lose_answer = False

    def _answer(self) -> None:
        if self.down:
            raise ConnectionError("Prefect is down")

    def start_run(self, request: RetrainRequest, training_start: datetime, *rest: Any) -> str:
        self._answer()
        run_id = super().start_run(request, training_start, *rest)
        if self.lose_answer:
            raise ConnectionError("the answer to the start was lost")
        return run_id

    def last_run(self, incident: IncidentKey | None = None) -> IncidentRun | None:
        self._answer()
        return super().last_run(incident)

    def in_flight(self) -> IncidentRun | None:
        self._answer()
        return super().in_flight()


def down_monitor() -> tuple[Monitor, DownTrigger]:
    watched, _ = monitor()
    trigger = DownTrigger()
    watched.incidents.trigger = cast(Any, trigger)
    return watched, trigger


def test_an_alarm_while_prefect_is_down_is_kept_and_retrains_once_when_it_answers() -> None:
    watched, trigger = down_monitor()
    trigger.down = True
    kept = [watched.judge(window(i, salmon=(60, 0.2))) for i in (0, 1)]
    assert all(states(v) == {"error:salmon": GateState.QUEUED} for v in kept)
    assert "kept until" in kept[0].alarms[0].gate.why
    assert watched.incidents.drain(force=True) is None
    assert trigger.runs == []
    assert trigger.requests == []

    trigger.down = False
    assert watched.incidents.drain(force=True) == "run-1"
    # One request for both windows that raised the alarm while Prefect was away.
    [request] = trigger.requests
    assert (request.window_start, request.window_end) == (T0, T0 + timedelta(seconds=120))
    assert watched.incidents.queue == {}
    trigger.end("run-1")
    again = watched.judge(window(2, salmon=(60, 0.2)))
    assert states(again) == {"error:salmon": GateState.HELD}
    assert watched.incidents.drain(force=True) is None
    assert len(trigger.runs) == 1


def test_a_start_whose_answer_was_lost_is_kept_and_not_started_again() -> None:
    watched, trigger = down_monitor()
    trigger.lose_answer = True
    fired = watched.judge(window(0, salmon=(60, 0.2)))
    assert not fired.triggered
    assert SALMON_ERROR in watched.incidents.queue
    trigger.lose_answer = False
    # Prefect did start it: while it runs the kept alarm waits, and once it ended (a moment
    # ago) the incident's own cooldown drops the alarm instead of starting a second run.
    assert watched.incidents.drain(force=True) is None
    trigger.end("run-1")
    assert watched.incidents.drain(force=True) is None
    assert watched.incidents.queue == {}
    assert len(trigger.runs) == 1


def predicted(*fish: tuple[int, Scored]) -> Batch[Scored | Prediction]:
    """A batch of the predictions topic on partition 0: (offset, the scored item's prediction)."""
    topic = Settings().kafka.topics.predictions
    records = [
        Record(topic, 0, offset, b"k", FISH.encode_prediction(item.prediction))
        for offset, item in fish
    ]
    return decode(
        {TopicPartition(topic, 0): records}, {topic: Decoding(FISH.decode_prediction)}, 10_000
    )


def test_a_window_half_without_truth_is_not_judged_and_the_silent_segment_opens_an_incident() -> (
    None
):
    judged: list[WindowJudgement] = []
    watched, trigger = monitor(on_judgement=judged.append)
    watched.resume({})
    # Three minutes of salmon and walleye predicted; only the salmon's truth comes.
    salmon = [scored(i, rel_error=0.02) for i in range(0, 180, 2)]
    walleye = [scored(i + 1, species="walleye", known=False) for i in range(0, 180, 2)]
    watched.process(predicted(*enumerate(salmon + walleye)), cast(Any, None))
    watched.process(polled(*enumerate(salmon)), cast(Any, None))
    watched.tick()
    first = judged[0]
    assert first.window.start == T0
    assert first.alarms == ()
    assert first.verdict.value == "not-judged"
    assert first.coverage_note == "not judged: coverage 50 % (walleye 0 %)"
    assert first.coverage is not None
    assert first.coverage.by_segment["salmon"].joined == 30
    assert trigger.runs == []
    # The walleye predictions are more than two minutes ahead of their last truth (none).
    watched.process(predicted((500, scored(300.0))), cast(Any, None))
    watched.tick()
    assert watched.truth.silence.silent == {"walleye"}
    # The predictions are committed up to the first one of a window still open.
    topic = Settings().kafka.topics.predictions
    assert watched.mark()[TopicPartition(topic, 0)].offset == 60
