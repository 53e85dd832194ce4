"""One process, one loop per project: for handlers whose state spans a project's partitions.

A stack runs one process of each service however many projects it has (processes do not
multiply with projects). The scorer and the joiner handle each record alone, so one loop in one
group dispatches every project's records (:mod:`tidemark.stream.dispatch`). A handler that
commits at its own mark (``Commits.AT_MARK``: the monitor, whose windows need every partition
of its project's topic and whose commit metadata carries its window clock) cannot share a loop
or a group with another project's: :func:`run_project_loops` gives each project its own loop,
consumer group and clients, on a thread of its own, in one process with one metrics endpoint.

The loops are independent: each restarts alone when it fails (Kafka or MongoDB failing under it,
a hook's fault), with its own pause and count (:func:`tidemark.stream.service.keep_running`),
and its health is its project's series of the endpoint (``project`` label,
:class:`tidemark.stream.health.LoopHealth`). A thread that ends although no stop was asked for
(something beyond an ``Exception`` escaped) stops the process, so that its supervisor starts it
again rather than leave that project unserved.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.stream.handler import Handler
from tidemark.stream.health import LoopHealth, export_per_project
from tidemark.stream.service import keep_running, serve_metrics, stop_on_signals

log = get_logger("projects")

# How often (seconds) the main thread looks whether every project's loop still runs.
WATCH_S = 1.0


@dataclass(frozen=True, eq=False)
class ProjectLoop:
    """A project's handler and the settings its loop runs with (its topics, its group)."""

    project: str
    handler: Handler[Any, Any]
    settings: Settings


class LoopEndedError(RuntimeError):
    """A project's loop ended without a stop: the process stops for its supervisor to restart."""


def check_loops(loops: Sequence[ProjectLoop]) -> None:
    """Refuse loops that would share a project or a consumer group (a group's windows and commit
    metadata belong to one project), or no loop at all."""
    if not loops:
        raise ValueError("a process of project loops needs at least one project")
    projects = [loop.project for loop in loops]
    if len(set(projects)) != len(projects):
        raise ValueError(f"a project has two loops: {projects}")
    groups = [loop.handler.group_id for loop in loops]
    if len(set(groups)) != len(groups):
        raise ValueError(f"the projects' loops must have a consumer group each: {groups}")


def start_project_loops(
    name: str,
    loops: Sequence[ProjectLoop],
    stop: threading.Event,
    healths: dict[str, LoopHealth],
) -> list[threading.Thread]:
    """Start each project's loop on a thread of its own until ``stop`` is set; the threads."""
    threads = []
    for loop in loops:
        # Its logs name the project: a restart of one loop is told apart from the others'.
        thread_name = f"{name}:{loop.project}"
        thread = threading.Thread(
            target=keep_running,
            args=(thread_name, loop.handler, loop.settings, stop, healths[loop.project]),
            name=thread_name,
        )
        thread.start()
        threads.append(thread)
        log.info("project loop started", service=name, project=loop.project)
    return threads


def watch_loops(threads: Sequence[threading.Thread], stop: threading.Event) -> None:
    """Wait until ``stop`` is set, then for every loop to finish its batch and close.

    Raises :class:`LoopEndedError` (after stopping the others) when a loop's thread ended first.
    """
    ended: list[str] = []
    while not stop.wait(WATCH_S):
        ended = [thread.name for thread in threads if not thread.is_alive()]
        if ended:
            log.error("a project's loop ended; stopping the process", loops=ended)
            stop.set()
    for thread in threads:
        thread.join()
    if ended:
        raise LoopEndedError(f"loops ended without a stop: {', '.join(ended)}")


def run_project_loops(
    name: str,
    loops: Sequence[ProjectLoop],
    metrics_port: int,
    registry: CollectorRegistry,
) -> None:
    """Run every project's loop until SIGTERM or SIGINT, each on its own thread and restarted
    alone whenever it fails; each project's topics are created first, and the metrics (every
    project's health, by its ``project`` label) served on one port."""
    check_loops(loops)
    for loop in loops:
        kafka_io.ensure_topics(loop.settings.kafka)
    stop = stop_on_signals()
    healths = {
        loop.project: LoopHealth(
            None, loop.settings.stream.max_loop_restarts, loop.settings.stream.max_uncommitted_s
        )
        for loop in loops
    }
    export_per_project(registry, healths)
    serve_metrics(name, metrics_port, registry)
    watch_loops(start_project_loops(name, loops, stop, healths), stop)
