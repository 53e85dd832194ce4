"""A stream service's process: signals, metrics port, its loop, and a restart when Kafka or
MongoDB fail under it."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, start_http_server
from pymongo.errors import PyMongoError

from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.stream.handler import Handler
from tidemark.stream.loop import run_loop

log = get_logger("service")

# Pause between two attempts after Kafka or MongoDB failed under a running service.
RESTART_PAUSE_S = 2.0


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


def run_service(
    name: str,
    handler: Handler[Any, Any],
    settings: Settings,
    metrics_port: int,
    registry: CollectorRegistry,
) -> None:
    """Run ``handler``'s loop until SIGTERM or SIGINT, and start it afresh when Kafka or MongoDB
    fail; the contract's topics are created first, and its metrics served meanwhile.

    Starting afresh is what a restart would do: offsets and pending state come back from Kafka
    and MongoDB, where they were made durable before each commit (the handler's ``start`` drops
    what it held in memory of the partitions).
    """
    kafka_io.ensure_topics(settings.kafka)
    stop = stop_on_signals()
    serve_metrics(name, metrics_port, registry)
    while not stop.is_set():
        try:
            run_loop(handler, settings, stop)
        except (KafkaError, PyMongoError) as error:
            log.warning(
                "service failed; starting it again",
                service=name,
                error=f"{type(error).__name__}: {error}"[:300],
            )
            stop.wait(RESTART_PAUSE_S)
