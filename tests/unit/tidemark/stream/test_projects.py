"""One process, one loop per project: a failing project's loop restarts alone, and its health is
its project's."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tidemark.config import Settings
from tidemark.stream import projects, service
from tidemark.stream.handler import Commits, Handler, Output
from tidemark.stream.health import HEALTHY, LoopHealth, export_per_project
from tidemark.stream.projects import (
    LoopEndedError,
    ProjectLoop,
    check_loops,
    start_project_loops,
    watch_loops,
)
from tidemark.stream.records import Batch


class Marked(Handler[str, None]):
    """A project's handler that commits at its own mark, in its own group."""

    commits = Commits.AT_MARK

    def __init__(self, group_id: str) -> None:
        super().__init__(group_id, {f"{group_id}.scored": _Text()})

    def process(self, batch: Batch[str], out: Output) -> None:
        return None


class _Text:
    def from_json(self, raw: bytes) -> str:
        return raw.decode()


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_failing_projects_loop_restarts_alone_and_its_health_is_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each project's loop stands in for run_loop: "fish" finishes rounds, "penguins" fails.
    rounds: Counter[str] = Counter()
    threads_of: dict[str, set[str]] = {"fish": set(), "penguins": set()}

    def run_loop(
        handler: Handler[Any, Any],
        settings: Settings,
        stop: threading.Event,
        suspects: Any,
        backlog: Any,
        round_done: Callable[[], None],
    ) -> None:
        project = handler.group_id
        threads_of[project].add(threading.current_thread().name)
        if project == "penguins":
            rounds[project] += 1
            raise RuntimeError("a hook's fault")
        while not stop.is_set():
            rounds[project] += 1
            round_done()
            stop.wait(0.01)

    monkeypatch.setattr(service, "run_loop", run_loop)
    monkeypatch.setattr(service, "RESTART_PAUSE_S", 0.01)
    registry = CollectorRegistry()
    healths = {p: LoopHealth(None, max_restarts=3, max_uncommitted_s=60) for p in threads_of}
    export_per_project(registry, healths)
    loops = [ProjectLoop(p, Marked(p), Settings()) for p in threads_of]
    stop = threading.Event()
    threads = start_project_loops("monitor", loops, stop, healths)
    try:
        wait_until(
            lambda: healths["penguins"].restarts_in_a_row >= 3,
            "penguins' loop to restart three times in a row",
        )
        before = rounds["fish"]
        wait_until(lambda: rounds["fish"] > before + 10, "fish's loop to go on meanwhile")

        def healthy(project: str) -> float | None:
            return registry.get_sample_value(HEALTHY, {"project": project})

        assert healthy("fish") == 1.0
        assert healthy("penguins") == 0.0
        assert healths["fish"].restarts == 0
        assert healths["penguins"].restarts >= 3
    finally:
        stop.set()
        watch_loops(threads, stop)
    # Each project's loop ran on a thread of its own, named after it, and every thread ended.
    assert threads_of == {"fish": {"monitor:fish"}, "penguins": {"monitor:penguins"}}
    assert not any(thread.is_alive() for thread in threads)


def test_a_loop_that_ends_without_a_stop_stops_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def keep_running(name: str, handler: Handler[Any, Any], *args: Any) -> None:
        if handler.group_id == "penguins":
            return  # as a thread does when something beyond an Exception escapes
        args[1].wait()

    monkeypatch.setattr(projects, "keep_running", keep_running)
    monkeypatch.setattr(projects, "WATCH_S", 0.01)
    healths = {p: LoopHealth(None, 3, 60) for p in ("fish", "penguins")}
    loops = [ProjectLoop(p, Marked(p), Settings()) for p in healths]
    stop = threading.Event()
    threads = start_project_loops("monitor", loops, stop, healths)
    with pytest.raises(LoopEndedError, match="monitor:penguins"):
        watch_loops(threads, stop)
    assert stop.is_set()
    assert not any(thread.is_alive() for thread in threads)


def test_projects_loops_never_share_a_project_or_a_group() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="at least one project"):
        check_loops([])
    with pytest.raises(ValueError, match="a project has two loops"):
        check_loops([ProjectLoop("fish", Marked("a"), settings)] * 2)
    with pytest.raises(ValueError, match="a consumer group each"):
        check_loops(
            [
                ProjectLoop("fish", Marked("monitor"), settings),
                ProjectLoop("penguins", Marked("monitor"), settings),
            ]
        )
    check_loops(
        [
            ProjectLoop("fish", Marked("monitor"), settings),
            ProjectLoop("penguins", Marked("monitor.penguins"), settings),
        ]
    )
