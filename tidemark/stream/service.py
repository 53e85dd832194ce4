"""What every stream service does around its loop: signals, metrics port, restarts."""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable
from types import FrameType

from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, start_http_server
from pymongo.errors import PyMongoError

from tidemark.logs import get_logger

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


def settle_heap() -> None:
    """Put every object alive now (modules, settings, the model) beyond the cyclic collector.

    A full collection walks every tracked object, and after importing mlflow, pandas and
    scikit-learn there are over a million; a loop that allocates per record starts one every few
    batches, which took a third of the scorer's CPU (benchmarks/streaming). Objects made later
    are collected as usual, and frozen ones are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()


def serve(
    name: str,
    run: Callable[[threading.Event], None],
    stop: threading.Event,
    metrics_port: int,
    registry: CollectorRegistry,
) -> None:
    """Expose ``registry`` (the service's own metrics), then run ``run`` until ``stop``; start
    it afresh when Kafka or MongoDB fail.

    Starting afresh is what a restart would do: offsets and pending state come back from Kafka
    and MongoDB, where they were made durable before each commit.
    """
    start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
    log.info("metrics served", service=name, port=metrics_port)
    while not stop.is_set():
        try:
            run(stop)
        except (KafkaError, PyMongoError) as error:
            log.warning(
                "service failed; starting it again",
                service=name,
                error=f"{type(error).__name__}: {error}"[:300],
            )
            stop.wait(RESTART_PAUSE_S)
