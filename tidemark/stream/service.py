"""A stream service's process: signals, metrics port, its loop, and a restart whenever the loop
fails, whatever failed.

The loop does not die of a record (:mod:`tidemark.stream.loop`): what ends it is Kafka or
MongoDB failing under it, or a hook's fault. Either way the process stays up and starts the loop
afresh from the last commit, pausing longer after each failure in a row (2 s, doubling, at most
30 s); :class:`tidemark.stream.health.LoopHealth` counts the restarts and says when the service
stopped making progress.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any

from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, start_http_server
from pymongo.errors import PyMongoError

from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.stream.handler import Handler
from tidemark.stream.health import LoopHealth
from tidemark.stream.loop import Suspects, run_loop

log = get_logger("service")

# Pause after the first failure of a running loop; it doubles with each failure in a row.
RESTART_PAUSE_S = 2.0
MAX_RESTART_PAUSE_S = 30.0


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so that a service finishes its batch and stops."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def serve_metrics(name: str, port: int, registry: CollectorRegistry) -> None:
    """Expose ``registry`` (the service's own metrics) on ``127.0.0.1:port``, in the background."""
    start_http_server(port, addr="127.0.0.1", registry=registry)
    log.info("metrics served", service=name, port=port)


def restart_pause_s(in_a_row: int) -> float:
    """How long to wait before the loop starts again after ``in_a_row`` failures in a row."""
    return min(RESTART_PAUSE_S * 2.0 ** max(in_a_row - 1, 0), MAX_RESTART_PAUSE_S)


def keep_running(
    name: str,
    handler: Handler[Any, Any],
    settings: Settings,
    stop: threading.Event,
    health: LoopHealth,
) -> None:
    """Run ``handler``'s loop until ``stop`` is set, starting it afresh whenever it fails.

    Starting afresh is what a restart would do: offsets and pending state come back from Kafka
    and MongoDB, where they were made durable before each commit (the handler's ``start`` drops
    what it held in memory of the partitions).
    """
    suspects = Suspects(settings.stream.max_record_failures)
    while not stop.is_set():
        try:
            run_loop(handler, settings, stop, suspects, health.backlog, health.round_done)
        except (KafkaError, PyMongoError) as error:
            _restart(name, health, stop, error, "Kafka or MongoDB failed under the service")
        except Exception as error:  # a hook's fault: the process stays, the loop starts again
            log.exception("service loop failed", service=name)
            _restart(name, health, stop, error, "the service's loop failed")


def _restart(
    name: str, health: LoopHealth, stop: threading.Event, error: Exception, what: str
) -> None:
    health.restarted()
    pause = restart_pause_s(health.restarts_in_a_row)
    log.warning(
        f"{what}; starting it again",
        service=name,
        error=f"{type(error).__name__}: {error}"[:300],
        in_a_row=health.restarts_in_a_row,
        pause_s=pause,
    )
    stop.wait(pause)


def run_service(
    name: str,
    handler: Handler[Any, Any],
    settings: Settings,
    metrics_port: int,
    registry: CollectorRegistry,
    topics: Iterable[str] | None = None,
) -> None:
    """Run ``handler``'s loop until SIGTERM or SIGINT, starting it afresh whenever it fails;
    its ``topics`` (the settings' contract's by default) are created first, and its metrics
    (health included) served."""
    kafka_io.ensure_topics(settings.kafka, topics)
    stop = stop_on_signals()
    health = LoopHealth(
        registry, settings.stream.max_loop_restarts, settings.stream.max_uncommitted_s
    )
    serve_metrics(name, metrics_port, registry)
    keep_running(name, handler, settings, stop, health)
