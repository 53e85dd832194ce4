"""A stream service's health is its progress: restarts in a row and input left uncommitted."""

from __future__ import annotations

import sys
import threading
import time

from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry

from tidemark.stream.health import HEALTHY, UNCOMMITTED_SECONDS, LoopHealth
from tidemark.stream.service import restart_pause_s

P0 = TopicPartition("t", 0)
P1 = TopicPartition("t", 1)


def at(offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, "", -1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_restarts_in_a_row_make_a_service_unhealthy_until_a_round_finishes() -> None:
    registry = CollectorRegistry()
    health = LoopHealth(registry, max_restarts=3, max_uncommitted_s=60)
    for _ in range(2):
        health.restarted()
    assert health.problem() is None
    health.restarted()
    assert health.problem() == "its loop started again 3 times in a row"
    assert registry.get_sample_value(HEALTHY) == 0.0
    assert registry.get_sample_value("tidemark_stream_loop_restarts_total") == 3.0
    health.round_done()
    assert registry.get_sample_value(HEALTHY) == 1.0


def test_input_left_uncommitted_too_long_makes_a_service_unhealthy() -> None:
    clock = Clock()
    registry = CollectorRegistry()
    health = LoopHealth(registry, max_restarts=3, max_uncommitted_s=60, clock=clock)
    health.backlog.polled({P0: at(10), P1: at(4)})
    clock.now += 30
    health.backlog.polled({P0: at(20)})
    clock.now += 40
    assert registry.get_sample_value(UNCOMMITTED_SECONDS) == 70.0
    assert health.problem() == "input polled 70 s ago is still not committed"
    health.backlog.committed({P0: at(10)})
    health.backlog.forget([P1])
    assert registry.get_sample_value(UNCOMMITTED_SECONDS) == 40.0
    assert health.problem() is None
    health.backlog.committed({P0: at(20)})
    assert registry.get_sample_value(UNCOMMITTED_SECONDS) == 0.0


def test_the_pause_between_restarts_doubles_up_to_its_cap() -> None:
    assert [restart_pause_s(n) for n in (1, 2, 3, 4, 5, 9)] == [2, 4, 8, 16, 30, 30]


def test_a_scrape_reads_the_backlog_while_the_loop_changes_it() -> None:
    """The metrics endpoint's thread computes the backlog's age as the loop polls, commits and
    loses partitions: the read never meets the partitions half changed."""
    registry = CollectorRegistry()
    health = LoopHealth(registry, max_restarts=3, max_uncommitted_s=60)
    # Many partitions, so that a read takes long enough for the loop to change them under it.
    many = {TopicPartition("t", p): at(1) for p in range(2_000)}
    health.backlog.polled(many)
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        partition = 2_000
        while not stop.is_set():
            joined = TopicPartition("t", partition)
            health.backlog.polled({joined: at(1)})
            health.backlog.committed({joined: at(1)})
            health.backlog.forget([joined])
            partition += 1

    def scrape() -> None:
        deadline = time.monotonic() + 1.0
        try:
            while time.monotonic() < deadline:
                registry.get_sample_value(UNCOMMITTED_SECONDS)
        except BaseException as error:  # the scrape's failure is the test's finding
            errors.append(error)
        finally:
            stop.set()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=loop), threading.Thread(target=scrape)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        sys.setswitchinterval(switch)
    assert errors == []
