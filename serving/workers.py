"""Several uvicorn servers on one port, each listening on a socket of its own (``SO_REUSEPORT``).

uvicorn's own workers share the one socket their parent bound, and the first worker to wake
accepts every connection waiting: eight keep-alive connections opened together went to one of
two workers in three runs out of four (benchmarks/serving/floor.py), the other worker idle.
With a socket per worker the kernel spreads connections over the workers by their addresses
(Linux). uvicorn has no such option yet (encode/uvicorn#2472), so this runs one
``uvicorn.Server`` per process itself: each binds its socket, starts the app (the model loads),
and only then listens, so no connection waits on a worker that is still starting.

The parent keeps the port bound (never listening: it takes no connection), which refuses a port
already in use before any worker starts; it replaces a worker that dies, stops when one cannot
start (uvicorn's startup-failure exit), and stops every worker on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from tidemark.logs import configure, get_logger

log = get_logger("serving.workers")

# How often the parent looks for workers that died.
_WATCH_INTERVAL_S = 0.5
_STOP_TIMEOUT_S = 30.0


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` beside others bound with ``SO_REUSEPORT``, not yet
    listening. (The protocol is given, so that accepted sockets get TCP_NODELAY from asyncio.)"""
    if port == 0:
        raise ValueError("several workers need a fixed port: port 0 would give each its own")
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def serve_workers(
    app: str, host: str, port: int, workers: int, factory: bool, options: dict[str, Any]
) -> None:
    """Run ``workers`` processes serving ``app`` (``module:attribute``) on ``host:port`` until
    SIGTERM or SIGINT; ``options`` are uvicorn's (the same for every worker)."""
    reserved = reuse_port_socket(host, port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    spawn = multiprocessing.get_context("spawn")
    level = logging.getLevelName(logging.getLogger().level)

    def start() -> BaseProcess:
        process = spawn.Process(
            target=_serve_one,
            args=(app, host, port, factory, options, level),
            name="tidemark-serving-worker",
        )
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    log.info("workers started", workers=workers, pids=[p.pid for p in processes], port=port)
    failed = False
    try:
        while not stop.wait(_WATCH_INTERVAL_S):
            for index, process in enumerate(processes):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    # It would fail the same way again (the app, the port): stop them all.
                    log.error("a worker could not start; stopping", pid=process.pid)
                    failed = True
                    stop.set()
                    break
                log.warning("worker died; starting another", pid=process.pid, code=process.exitcode)
                processes[index] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(_STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
        reserved.close()
    if failed:
        raise SystemExit(STARTUP_FAILURE)


def _serve_one(
    app: str, host: str, port: int, factory: bool, options: dict[str, Any], level: str
) -> None:
    # A spawned process starts afresh: logging as the parent's.
    configure(level)
    try:
        sock = reuse_port_socket(host, port)
    except OSError as error:
        log.error("a worker could not bind its socket", host=host, port=port, error=str(error))
        raise SystemExit(STARTUP_FAILURE) from error
    config = uvicorn.Config(app, host=host, port=port, factory=factory, **options)
    uvicorn.Server(config).run(sockets=[sock])
