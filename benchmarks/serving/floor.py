"""``tidemark serve`` against the framework's floor, and one worker against several.

    .venv/bin/python -m benchmarks.serving.floor [--rounds 9] [--requests 4000] [--workers 2]

The floor (benchmarks/serving/floor_app.py) is a FastAPI app under the same uvicorn options
that only reads the body and answers a constant: what the framework itself allows. This starts
a private MLflow server (temporary folder, free port), registers a fish model as @production,
and starts side by side

- the floor and ``tidemark serve``, one worker each, and
- the floor and ``tidemark serve`` with ``--workers N`` (N = ``--workers``, 2 by default),

then loads them in rounds, alternating which server goes first, with one client
(benchmarks/serving/load.py, a process of its own, keep-alive connections) in four ways:

- one fish per request, one connection, one request at a time (the API's common case);
- a batch of 100 fish per request, one connection;
- one fish, and a batch of 100, per request over 8 connections at once: the loads more workers
  can help with, measured with one worker and with N.

It prints, per server and load, the median over rounds of requests/s, p50 and p99 (with the
spread over rounds), Tidemark's share of the floor's requests/s and its p99 against the
floor's (medians of the per-round ratios), N workers against one, and the verdict against the
targets: one fish at ≥ 85 % of the floor's requests/s with a p99 within 1.5x the floor's, and
N workers serving more than one. It also gives the CPU time the server's processes spent per
request, steadier than the wall clock when other work shares the machine, and the client's own
(``client busy``), to show the client was not the bottleneck. Results go to
benchmarks/results/serving_floor.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated

import httpx
import typer

from benchmarks.serving.harness import (
    MODEL_NAME,
    RESULTS,
    cpu_seconds,
    fish,
    free_ports,
    private_registry,
    register_production_model,
    running,
    venv_env,
)
from benchmarks.serving.load import Load, LoadProcess, Outcome
from infra.local.components import venv_bin

REPORT = RESULTS / "serving_floor.json"
ONE_FISH = "1 fish, 1 client"
BATCH = "100 fish, 1 client"
CONCURRENT = "1 fish, 8 clients"
CONCURRENT_BATCH = "100 fish, 8 clients"
# The loads more workers can help with, measured with one worker and with N.
CONCURRENT_LOADS = (CONCURRENT, CONCURRENT_BATCH)
BATCH_SIZE = 100
CONCURRENT_CLIENTS = 8
TARGET_SHARE = 0.85
TARGET_P99_RATIO = 1.5
FLOOR, TIDEMARK = "floor", "tidemark serve"


@dataclass(frozen=True)
class Server:
    """One running server: which (floor or Tidemark), how many workers, its port and pid."""

    kind: str
    workers: int
    port: int
    pid: int = 0

    @property
    def name(self) -> str:
        """The server and its workers, as the table shows it."""
        return f"{self.kind} x{self.workers}"


@dataclass(frozen=True)
class Run:
    """One load on one server in one round."""

    server: str
    load: str
    round: int
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    failures: int
    client_busy: float
    client_cpu_us_per_request: float
    # The server's processes, workers included: steadier than the wall clock on a busy machine.
    server_cpu_us_per_request: float


@dataclass(frozen=True)
class Summary:
    """The runs of one server under one load, over every round: medians and spread."""

    server: str
    load: str
    rounds: int
    requests_per_s: float
    requests_per_s_min: float
    requests_per_s_max: float
    p50_ms: float
    p99_ms: float
    p99_ms_min: float
    p99_ms_max: float
    server_cpu_us_per_request: float
    failures: int


@dataclass(frozen=True)
class Ratio:
    """``of`` against ``to`` under one load: medians of the per-round ratios, and their spread."""

    of: str
    to: str
    load: str
    requests_per_s: float
    requests_per_s_min: float
    requests_per_s_max: float
    p99: float
    p99_min: float
    p99_max: float


def _run(server: Server, load: str, round_: int, outcome: Outcome, cpu_s: float) -> Run:
    latencies = sorted(outcome.latencies_ns)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    count = len(latencies)
    return Run(
        server=server.name,
        load=load,
        round=round_,
        requests=count,
        requests_per_s=round(count / outcome.seconds, 1),
        p50_ms=round(statistics.median(latencies) / 1e6, 3),
        p99_ms=round(cuts[98] / 1e6, 3),
        failures=outcome.failures,
        client_busy=round(outcome.client_busy, 3),
        client_cpu_us_per_request=round(outcome.client_cpu_seconds / count * 1e6, 1),
        server_cpu_us_per_request=round(cpu_s / count * 1e6, 1),
    )


def _summary(runs: list[Run]) -> Summary:
    rates = [r.requests_per_s for r in runs]
    p99s = [r.p99_ms for r in runs]
    return Summary(
        server=runs[0].server,
        load=runs[0].load,
        rounds=len(runs),
        requests_per_s=round(statistics.median(rates), 1),
        requests_per_s_min=min(rates),
        requests_per_s_max=max(rates),
        p50_ms=round(statistics.median(r.p50_ms for r in runs), 3),
        p99_ms=round(statistics.median(p99s), 3),
        p99_ms_min=min(p99s),
        p99_ms_max=max(p99s),
        server_cpu_us_per_request=round(
            statistics.median(r.server_cpu_us_per_request for r in runs), 1
        ),
        failures=sum(r.failures for r in runs),
    )


def _ratio(of: list[Run], to: list[Run]) -> Ratio:
    """Per-round ratios (each pair ran in the same round, one right after the other)."""
    pairs = list(zip(of, to, strict=True))
    rates = [a.requests_per_s / b.requests_per_s for a, b in pairs]
    p99s = [a.p99_ms / b.p99_ms for a, b in pairs]
    return Ratio(
        of=of[0].server,
        to=to[0].server,
        load=of[0].load,
        requests_per_s=round(statistics.median(rates), 3),
        requests_per_s_min=round(min(rates), 3),
        requests_per_s_max=round(max(rates), 3),
        p99=round(statistics.median(p99s), 3),
        p99_min=round(min(p99s), 3),
        p99_max=round(max(p99s), 3),
    )


def _workers_ready(server: Server) -> bool:
    """Every worker of a Tidemark server has its model (one ``model_loaded`` sample each)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=2.0).text
    except httpx.HTTPError:
        return False
    loaded = [
        line
        for line in text.splitlines()
        if line.startswith("tidemark_serving_model_loaded") and line.endswith(" 1.0")
    ]
    return len(loaded) == server.workers


@contextmanager
def _servers(state: Path, tracking_uri: str, workers: list[int]) -> Iterator[list[Server]]:
    ports = iter(free_ports(4 * len(workers)))
    started: list[Server] = []
    with ExitStack() as stack:
        for count in workers:
            floor = Server(FLOOR, count, next(ports))
            floor_process = stack.enter_context(
                running(
                    [venv_bin("python"), "-m", "benchmarks.serving.floor_app",
                     "--port", str(floor.port), "--workers", str(count)],
                    venv_env(),
                    state / f"floor-{count}.log",
                    f"http://127.0.0.1:{floor.port}/ready",
                    floor.name,
                )
            )  # fmt: skip
            ours = Server(TIDEMARK, count, next(ports))
            floor = replace(floor, pid=floor_process.pid)
            env = {
                **venv_env(),
                "TIDEMARK_REGISTRY_TRACKING_URI": tracking_uri,
                "TIDEMARK_REGISTRY_MODEL_NAME": MODEL_NAME,
                "TIDEMARK_SERVING_PORT": str(ours.port),
            }
            ours_process = stack.enter_context(
                running(
                    [venv_bin("tidemark"), "serve", "--workers", str(count)],
                    env,
                    state / f"tidemark-{count}.log",
                    f"http://127.0.0.1:{ours.port}/ready",
                    ours.name,
                )
            )
            deadline = time.monotonic() + 120
            while not _workers_ready(ours):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{ours.name}: not every worker loaded the model")
                time.sleep(0.5)
            started += [floor, replace(ours, pid=ours_process.pid)]
        yield started


def _check_answer(server: Server, version: str) -> None:
    """Tidemark answers a fish with a weight, naming the promoted version (body and header)."""
    one = {"species": "salmon", "length_cm": 70.0, "height_cm": 17.0}
    answer = httpx.post(f"http://127.0.0.1:{server.port}/predict", json=one, timeout=10.0)
    answer.raise_for_status()
    body = answer.json()
    if not (
        body["model_version"] == version == answer.headers["x-model-version"]
        and body["predicted_weight_kg"] > 0
    ):
        raise RuntimeError(f"{server.name} answered {answer.headers} {body}")


def main(
    rounds: Annotated[int, typer.Option(min=1, help="Alternated rounds of every load.")] = 9,
    requests: Annotated[
        int, typer.Option(min=200, help="One-fish requests per run (a tenth as many batches).")
    ] = 4000,
    workers: Annotated[
        int, typer.Option(min=2, help="Workers of the servers measured against one worker.")
    ] = 2,
) -> None:
    """Start the servers on one promoted model, load them in alternated rounds, report."""
    loads = {
        ONE_FISH: (1, 1, requests),
        BATCH: (BATCH_SIZE, 1, max(requests // 10, 100)),
        CONCURRENT: (1, CONCURRENT_CLIENTS, 2 * requests),
        CONCURRENT_BATCH: (BATCH_SIZE, CONCURRENT_CLIENTS, max(requests // 5, 200)),
    }
    sample = fish(2000, seed=11)
    bodies = {
        size: tuple(
            json.dumps(sample[i] if size == 1 else sample[i : i + size]).encode()
            for i in range(0, len(sample) - size + 1, size)
        )
        for size in (1, BATCH_SIZE)
    }
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="tidemark-floor-") as tmp,
        private_registry(Path(tmp)) as tracking_uri,
        LoadProcess() as client,
    ):
        version = register_production_model(tracking_uri)
        typer.echo(f"registered {MODEL_NAME} version {version} as @production")
        with _servers(Path(tmp), tracking_uri, [1, workers]) as servers:
            for server in servers:
                if server.kind == TIDEMARK:
                    _check_answer(server, version)

            def load_of(server: Server, name: str) -> Load:
                size, connections, count = loads[name]
                return Load(server.port, "/predict", bodies[size], connections, count)

            # Which server of each pair goes first alternates by round.
            plan = [
                (name, [s for s in servers if s.workers == count])
                for name in loads
                for count in ([1, workers] if name in CONCURRENT_LOADS else [1])
            ]
            for name, pair in plan:  # warm-up: every worker has answered before round 0
                for server in pair:
                    client.run(load_of(server, name))
            for round_ in range(rounds):
                for name, pair in plan:
                    for server in pair if round_ % 2 == 0 else pair[::-1]:
                        cpu_before = cpu_seconds(server.pid)
                        outcome = client.run(load_of(server, name))
                        cpu_s = cpu_seconds(server.pid) - cpu_before
                        runs.append(_run(server, name, round_, outcome, cpu_s))
                typer.echo(f"round {round_ + 1}/{rounds} done")
    _report(runs, version, workers, rounds)


def _cpu_pressure() -> str | None:
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None


def _runs_of(runs: list[Run], server: str, load: str) -> list[Run]:
    return sorted((r for r in runs if r.server == server and r.load == load), key=lambda r: r.round)


def _report(runs: list[Run], version: str, workers: int, rounds: int) -> None:
    groups = list(dict.fromkeys((r.server, r.load) for r in runs))
    summaries = [_summary(_runs_of(runs, server, load)) for server, load in groups]
    header = (
        f"{'server':<18} {'load':<20} {'req/s':>8} {'(min-max)':>15} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'(min-max)':>13} {'CPU us/req':>10}"
    )
    typer.echo(header)
    typer.echo("-" * len(header))
    for s in summaries:
        typer.echo(
            f"{s.server:<18} {s.load:<20} {s.requests_per_s:>8.0f} "
            f"{f'({s.requests_per_s_min:.0f}-{s.requests_per_s_max:.0f})':>15} "
            f"{s.p50_ms:>7.3f} {s.p99_ms:>7.3f} {f'({s.p99_ms_min:.2f}-{s.p99_ms_max:.2f})':>13} "
            f"{s.server_cpu_us_per_request:>10.0f}"
            + (f"  {s.failures} failed" if s.failures else "")
        )
    ours_1, floor_1, ours_n = f"{TIDEMARK} x1", f"{FLOOR} x1", f"{TIDEMARK} x{workers}"
    floor_n = f"{FLOOR} x{workers}"
    ratios = [
        _ratio(_runs_of(runs, ours_1, load), _runs_of(runs, floor_1, load))
        for load in (ONE_FISH, BATCH, *CONCURRENT_LOADS)
    ]
    ratios += [
        _ratio(_runs_of(runs, ours_n, load), _runs_of(runs, floor_n, load))
        for load in CONCURRENT_LOADS
    ]
    scaling = [
        _ratio(_runs_of(runs, ours_n, load), _runs_of(runs, ours_1, load))
        for load in CONCURRENT_LOADS
    ]
    ratios += scaling
    typer.echo("")
    for r in ratios:
        typer.echo(
            f"{r.of} / {r.to}, {r.load}: requests/s {r.requests_per_s:.1%} "
            f"({r.requests_per_s_min:.1%}-{r.requests_per_s_max:.1%}), "
            f"p99 {r.p99:.2f}x ({r.p99_min:.2f}-{r.p99_max:.2f})"
        )
    one_fish = ratios[0]
    verdict: dict[str, object] = {
        "one_fish_share_of_floor": one_fish.requests_per_s,
        "one_fish_share_met": one_fish.requests_per_s >= TARGET_SHARE,
        "one_fish_p99_ratio": one_fish.p99,
        "one_fish_p99_met": one_fish.p99 <= TARGET_P99_RATIO,
        f"{workers}_workers_over_1": {r.load: r.requests_per_s for r in scaling},
        f"{workers}_workers_serve_more": {r.load: r.requests_per_s > 1.0 for r in scaling},
        "failures": sum(r.failures for r in runs),
    }
    busiest = max(runs, key=lambda r: r.client_busy)
    typer.echo(
        f"\nverdict: one fish at {one_fish.requests_per_s:.1%} of the floor's requests/s "
        f"(target ≥ {TARGET_SHARE:.0%}: {'met' if verdict['one_fish_share_met'] else 'NOT met'}), "
        f"p99 {one_fish.p99:.2f}x the floor's (target ≤ {TARGET_P99_RATIO}x: "
        f"{'met' if verdict['one_fish_p99_met'] else 'NOT met'}); {workers} workers serve "
        + ", ".join(
            f"{r.requests_per_s:.2f}x one ({r.load}: "
            f"{'more' if r.requests_per_s > 1 else 'NOT more'})"
            for r in scaling
        )
    )
    typer.echo(
        f"client: busiest at {busiest.client_busy:.0%} of the wall time "
        f"({busiest.server}, {busiest.load}); "
        f"{statistics.median(r.client_cpu_us_per_request for r in runs):.0f} µs of client CPU "
        "per request (median)"
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "serving_floor",
        "model_version": version,
        "rounds": rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
            # The share of time some task waited for a CPU (Linux PSI): how shared the run was.
            "cpu_pressure": _cpu_pressure(),
        },
        "summaries": [asdict(s) for s in summaries],
        "ratios": [asdict(r) for r in ratios],
        "verdict": verdict,
        "runs": [asdict(r) for r in runs],
    }
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    typer.echo(f"wrote {REPORT}")


if __name__ == "__main__":
    typer.run(main)
