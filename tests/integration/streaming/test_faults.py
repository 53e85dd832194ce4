"""Faults under the real scorer and joiner while fish flow (issue 21): the store (FerretDB)
stopped for a minute, and the joiner SIGKILLed ten times in a burst.

One scorer and one joiner serve every case of the module, on topics and a database of its own;
each case sends fish of its own (their ids carry the case's name) at a steady pace, breaks
something while they flow, and checks its own fish: every one predicted once, every one joined
and stored once, and on the scored topic at most the copies the bound below allows.

The bound. The joiner sends a batch's scored records, and only once the broker acknowledged them
stores the batch (its training rows, then its "joined" markers) and commits its offsets. A
fault between the acknowledgement and the markers (a store that stops answering, a SIGKILL)
makes the next incarnation of the loop replay the batches it had not committed, and the fish of
those whose markers were not stored are joined, and sent, once more. A loop has at most
``stream.max_in_flight`` batches of at most ``stream.max_batch`` records outstanding, so one
fault adds at most ``max_in_flight * max_batch`` scored records, at most one to each fish. While
the store is down the loop cannot read its partitions' join state back, so it sends nothing
until the store answers: a store outage is one fault however long it lasts. A SIGKILL is a fault
only for a process that had been given partitions (its own log says so); one killed while it
starts sent nothing. The module's joiner runs with small batches (50 records, 2 in flight) so
that the bound (100 records a fault) is tight enough to fail: a joiner that replayed more than
its in-flight work would exceed it.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from infra.local.stack import Stack
from tests.integration.conftest import free_ports, private_settings
from tests.integration.streaming.streams import Service, fish_ids, wait_for
from tests.integration.topics import read_topic
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.schemas import utc_now

# Fish per second while a case runs: enough that batches are in flight at any moment.
RATE = 50.0
KILLS = 10


@pytest.fixture(scope="module")
def faulty(stack: Stack, production_model: str) -> Settings:
    """Settings with the module's topics, groups and database, and the joiner's small batches."""
    tag = uuid.uuid4().hex[:8]
    return private_settings(
        stack.settings,
        tag,
        registry_model_name=production_model,
        store_database=f"faults_{tag}",
        stream_max_batch=50,
        stream_max_in_flight=2,
        registry_poll_interval_s=1.0,
        # The scorer and the joiner serve every project named: the fish alone here.
        projects_names="fish-weight",
    )


def per_fault(settings: Settings) -> int:
    """At most how many scored records one fault of the joiner adds (see the module's doc)."""
    return settings.stream.max_in_flight * settings.stream.max_batch


@dataclass
class LineServices:
    """The module's scorer and joiner processes; the joiner may be replaced by a new one."""

    settings: Settings
    logs: Path
    scorer: Service = field(init=False)
    joiner: Service = field(init=False)
    started: list[Service] = field(default_factory=list)

    def start(self, command: str) -> Service:
        """Start a ``tidemark score|join`` process on a free metrics port."""
        (port,) = free_ports(1)
        # A log of each process's own: what it did before a SIGKILL is read back from it.
        log = self.logs / f"{command}-{len(self.started)}.log"
        service = Service(self.settings, command, port, log)
        self.started.append(service)
        return service

    def stop(self) -> None:
        """Stop every process the module started."""
        for service in self.started:
            service.stop()


@pytest.fixture(scope="module")
def services(faulty: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LineServices]:
    """One scorer and one joiner for every case of the module, stopped after the last one."""
    running = LineServices(faulty, tmp_path_factory.mktemp("faults"))
    try:
        running.scorer = running.start("score")
        running.joiner = running.start("join")
        yield running
    finally:
        running.stop()


class SteadyLine:
    """A thread sending fish at ``RATE`` a second until stopped: each one's measurement, then
    its weight (same key, weighed a second later), ids ``<case>-<n>``."""

    def __init__(self, settings: Settings, case: str) -> None:
        self.settings = settings
        self.case = case
        self.sent: list[str] = []
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        topics = self.settings.kafka.topics
        producer = kafka_io.producer(self.settings.kafka)
        try:
            started = time.monotonic()
            while not self._stop.is_set():
                fish_id = f"{self.case}-{len(self.sent)}"
                now = utc_now()
                key = fish_id.encode()
                measured = {
                    "fish_id": fish_id,
                    "species": "salmon",
                    "length_cm": 60.0 + len(self.sent) % 20,
                    "height_cm": 15.0,
                    "measured_at": now.isoformat(),
                }
                weighed = {
                    "fish_id": fish_id,
                    "species": "salmon",
                    "weight_kg": 3.0 + (len(self.sent) % 20) / 10,
                    "weighed_at": (now + timedelta(seconds=1)).isoformat(),
                }
                producer.send(topics.input, key=key, value=json.dumps(measured).encode())
                producer.send(topics.truth, key=key, value=json.dumps(weighed).encode())
                self.sent.append(fish_id)
                # A steady pace by the clock, whatever the sends cost.
                self._stop.wait(max(0.0, started + len(self.sent) / RATE - time.monotonic()))
            producer.flush(60)
        except BaseException as error:
            self._failure = error
        finally:
            producer.close()

    def stop(self) -> list[str]:
        """Stop sending; every fish sent (acknowledged by the broker)."""
        self._stop.set()
        self._thread.join(90)
        assert not self._thread.is_alive(), "the line did not stop"
        assert self._failure is None, self._failure
        return self.sent


def stored(settings: Settings, ids: list[str]) -> list[str]:
    """The ids among ``ids`` that have a training row."""
    client: MongoClient[dict[str, Any]] = MongoClient(settings.store.uri)
    with client:
        collection = client[settings.store.database][settings.store.collection]
        return [str(row["_id"]) for row in collection.find({"_id": {"$in": ids}}, {"_id": 1})]


def of_case(ids: list[str], case: str) -> list[str]:
    return [i for i in ids if i.startswith(f"{case}-")]


@dataclass(frozen=True)
class FaultOutcome:
    """What a case's fish left behind."""

    fish: int
    doubled: int
    extra_scored: int
    most_copies: int


def assert_nothing_lost(
    settings: Settings, case: str, sent: list[str], faults: int
) -> FaultOutcome:
    """Every fish of the case predicted once, joined and stored; on the scored topic each one at
    most ``1 + faults`` times and ``faults * per_fault`` extra records in all."""
    topics = settings.kafka.topics
    assert len(set(sent)) == len(sent)
    wait_stored(settings, sent, 180)
    measured = of_case(fish_ids(read_topic(settings, topics.input)), case)
    assert sorted(measured) == sorted(sent)
    predicted = Counter(of_case(fish_ids(read_topic(settings, topics.predictions)), case))
    # Nothing happened to the scorer: each fish exactly once.
    assert set(predicted) == set(sent)
    assert max(predicted.values()) == 1, predicted.most_common(3)
    scored = Counter(of_case(fish_ids(read_topic(settings, topics.scored)), case))
    assert set(scored) == set(sent)
    most = max(scored.values())
    extra = sum(scored.values()) - len(sent)
    assert most <= 1 + faults, scored.most_common(3)
    assert extra <= faults * per_fault(settings), (extra, faults, per_fault(settings))
    assert sorted(stored(settings, sent)) == sorted(sent)
    assert read_topic(settings, topics.dead_letter) == []
    return FaultOutcome(len(sent), sum(n > 1 for n in scored.values()), extra, most)


def wait_stored(settings: Settings, ids: list[str], timeout_s: float) -> None:
    """Wait until every fish of ``ids`` has its training row; fail naming how many have not."""
    try:
        wait_for(lambda: len(stored(settings, ids)) == len(ids), timeout_s, "every fish stored")
    except AssertionError:
        missing = len(ids) - len(stored(settings, ids))
        raise AssertionError(f"{missing} of {len(ids)} fish never stored") from None


def wait_flowing(settings: Settings, case: str, joined: int) -> None:
    """Wait until the first ``joined`` fish of the case are stored: the whole line flows."""
    wait_stored(settings, [f"{case}-{n}" for n in range(joined)], 240)


def test_the_store_stopped_for_a_minute_loses_nothing_and_the_joiner_resumes_alone(
    stack: Stack, faulty: Settings, services: LineServices
) -> None:
    began = time.monotonic()
    line = SteadyLine(faulty, "store")
    wait_flowing(faulty, "store", 200)
    flowing = time.monotonic()
    joiner = services.joiner
    restarts = joiner.metric("tidemark_stream_loop_restarts_total")
    with stack.paused("ferretdb"):
        before = len(line.sent)
        # The outage itself: a minute, as a store that a host restarts would be away.
        time.sleep(60)
        assert len(line.sent) > before + 40 * RATE, "the line stalled during the outage"
        assert joiner.alive()
        assert services.scorer.alive()
    back = len(line.sent)
    # Fish keep coming once the store is back, and the same process joins them all.
    wait_for(lambda: len(line.sent) > back + 2 * RATE, 30, "fish after the outage")
    sent = line.stop()
    resumed = time.monotonic()
    outcome = assert_nothing_lost(faulty, "store", sent, faults=1)
    print(
        outcome,
        f"restarts: {joiner.metric('tidemark_stream_loop_restarts_total') - restarts:.0f};",
        f"flowing after {flowing - began:.0f} s,",
        f"all stored {time.monotonic() - resumed:.0f} s after the store came back",
    )
    assert joiner.alive()
    assert services.scorer.alive()
    # It rode the outage out by starting its loop again, not its process.
    assert joiner.metric("tidemark_stream_loop_restarts_total") > restarts
    wait_for(lambda: joiner.metric("tidemark_stream_healthy") == 1.0, 60, "a healthy joiner")


def joined(service: Service) -> float:
    """How many items the process has joined (0 while its metrics port does not answer yet)."""
    try:
        return service.metric("tidemark_joiner_joined_total")
    except (httpx.HTTPError, KeyError):
        return 0.0


def test_the_joiner_killed_ten_times_in_a_burst_loses_nothing(
    faulty: Settings, services: LineServices
) -> None:
    began = time.monotonic()
    line = SteadyLine(faulty, "kills")
    wait_flowing(faulty, "kills", 100)
    flowing = time.monotonic()
    killed: list[Service] = []

    def kill_and_replace() -> None:
        killed.append(services.joiner)
        services.joiner.kill()
        services.joiner = services.start("join")

    pace = random.Random(21)
    # The first kill hits the joiner that holds the partitions, mid-stream; the next ones,
    # 1-2 s apart, hit its successors while they start or wait for the group (a crash loop: a
    # killed member keeps its partitions for the 6 s session timeout).
    for _ in range(KILLS - 1):
        kill_and_replace()
        time.sleep(pace.uniform(1.0, 2.0))
    crash_loop_end = time.monotonic()
    # The last one hits the survivor of the crash loop while it catches up with the backlog
    # the loop left, batches in flight: once it has joined something.
    survivor = services.joiner
    wait_for(lambda: joined(survivor) > 0, 120, "the survivor catching up")
    survivor_joined = joined(survivor)
    kill_and_replace()
    sent_during = len(line.sent)
    burst_end = time.monotonic()
    wait_flowing(faulty, "kills", sent_during)
    caught_up = time.monotonic()
    sent = line.stop()
    # Only a process that was given partitions can have sent anything: each of those a fault.
    holders = [s for s in killed if "partitions assigned" in s.log.read_text()]
    assert len(killed) == KILLS
    assert killed[0] in holders
    assert survivor in holders
    outcome = assert_nothing_lost(faulty, "kills", sent, faults=len(holders))
    print(
        outcome,
        f"kills of a joiner holding partitions: {len(holders)} of {KILLS};",
        f"the survivor had joined {survivor_joined:.0f} when killed;",
        f"flowing after {flowing - began:.0f} s, crash loop {crash_loop_end - flowing:.0f} s,",
        f"last kill {burst_end - crash_loop_end:.0f} s later,",
        f"caught up {caught_up - burst_end:.0f} s after it",
    )
    assert services.joiner.alive()
    assert services.scorer.alive()
