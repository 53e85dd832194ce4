"""A keep-alive HTTP/1.1 load client lean enough not to be what it measures.

Each connection has one request in flight: send it, read the answer, send the next. The
requests are built as bytes once, and an answer is only read as far as its status and length,
so a request costs the client a few tens of microseconds of CPU (the loopback's kernel work
included) against the server's hundred and more. It runs in a process of its own
(:class:`LoadProcess`, ``python -m benchmarks.serving.load`` reading loads from its stdin), so
it never shares a GIL with the benchmark, and it imports nothing but the standard library. It
reports its own CPU time: ``client_busy`` near 1 would mean the client, not the server, set the
pace.
"""

from __future__ import annotations

import base64
import json
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from types import TracebackType

_HEADER_END = b"\r\n\r\n"
_LENGTH = b"content-length:"


@dataclass(frozen=True)
class Load:
    """What to send: ``requests`` answers in all over ``connections`` connections."""

    port: int
    path: str
    bodies: tuple[bytes, ...]
    connections: int
    requests: int
    warmup: int = 200


@dataclass(frozen=True)
class Outcome:
    """Latencies (ns, in the order answered), the wall time, failures and the client's CPU."""

    latencies_ns: list[int]
    seconds: float
    failures: int
    client_cpu_seconds: float
    first_failure: str | None

    @property
    def client_busy(self) -> float:
        """The share of the wall time the client spent on the CPU."""
        return self.client_cpu_seconds / self.seconds


def request_bytes(port: int, path: str, body: bytes) -> bytes:
    """One POST with a JSON body, as it goes on the wire."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _complete(buffer: bytes | bytearray) -> int:
    """The length of the first whole answer in ``buffer``, or 0 while it is incomplete."""
    end = buffer.find(_HEADER_END)
    if end < 0:
        return 0
    head = bytes(buffer[:end]).lower()
    at = head.find(_LENGTH)
    if at < 0:
        raise ValueError(f"an answer without content-length: {head[:200]!r}")
    stop = head.find(b"\r\n", at)
    length = int(head[at + len(_LENGTH) : stop if stop >= 0 else None])
    total = end + len(_HEADER_END) + length
    return total if len(buffer) >= total else 0


def run(load: Load) -> Outcome:
    """Send the load and wait for every answer (in the calling process)."""
    wires = [request_bytes(load.port, load.path, body) for body in load.bodies]
    selector = selectors.DefaultSelector()
    sockets = []
    for index in range(load.connections):
        sock = socket.create_connection(("127.0.0.1", load.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sockets.append(sock)
        selector.register(sock, selectors.EVENT_READ, index)
    buffers = [bytearray() for _ in sockets]
    sent_at = [0] * len(sockets)
    next_body = list(range(len(sockets)))
    latencies: list[int] = []
    failures, first_failure = 0, None
    total = load.warmup + load.requests
    issued = 0
    started = cpu_started = 0.0

    def send(index: int) -> None:
        nonlocal issued, started, cpu_started
        if issued == load.warmup:
            started, cpu_started = time.perf_counter(), time.process_time()
        issued += 1
        wire = wires[next_body[index] % len(wires)]
        next_body[index] += len(sockets)
        sent_at[index] = time.perf_counter_ns()
        sockets[index].sendall(wire)

    for index in range(len(sockets)):
        send(index)
    answered = 0
    while answered < total:
        for key, _ in selector.select():
            index = key.data
            chunk = sockets[index].recv(262_144)
            if not chunk:
                raise ConnectionError(f"connection {index} closed by the server")
            buffer = buffers[index]
            buffer += chunk
            size = _complete(buffer)
            if not size:
                continue
            took = time.perf_counter_ns() - sent_at[index]
            if buffer[9:12] != b"200":
                failures += 1
                first_failure = first_failure or bytes(buffer[:size]).decode(errors="replace")
            del buffer[:size]
            if answered >= load.warmup:
                latencies.append(took)
            answered += 1
            if issued < total:
                send(index)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    for sock in sockets:
        selector.unregister(sock)
        sock.close()
    selector.close()
    return Outcome(latencies, seconds, failures, cpu, first_failure)


class LoadProcess:
    """The client process: started once, it runs one load at a time for every round."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.serving.load"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def run(self, load: Load) -> Outcome:
        """Run ``load`` in the client process and return its outcome."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(_encode(load) + b"\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the load client exited with {self._process.wait()}")
        return Outcome(**json.loads(line))

    def __enter__(self) -> LoadProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)


def _encode(load: Load) -> bytes:
    fields = asdict(load)
    fields["bodies"] = [base64.b64encode(body).decode() for body in load.bodies]
    return json.dumps(fields).encode()


def _decode(line: bytes) -> Load:
    fields = json.loads(line)
    fields["bodies"] = tuple(base64.b64decode(body) for body in fields["bodies"])
    return Load(**fields)


def serve_loads() -> None:
    """Read one load a line from stdin, run it, write its outcome as a line to stdout."""
    for line in sys.stdin.buffer:
        outcome = run(_decode(line))
        sys.stdout.write(json.dumps(asdict(outcome)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve_loads()
