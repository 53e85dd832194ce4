"""Tidemark's model server against ``mlflow models serve``, same model, same load, one run.

    .venv/bin/python benchmarks/serving/serving_vs_mlflow.py

It starts a private MLflow server (temporary folder, free port), trains a model on the default
scenario, registers it and points the production alias at it, then starts both model servers
(one worker each) on ``models:/<name>@production`` and measures, with the same plain
``http.client`` keep-alive clients for both:

- sequential one-fish requests (the API's common case: one fish on the line, one answer);
- concurrent batches of 100 fish from several threads.

It checks that both answer the same weights, prints a table, and writes
benchmarks/results/serving_vs_mlflow.json.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from benchmarks.serving.harness import (
    FEATURES,
    MODEL_NAME,
    fish,
    free_ports,
    private_registry,
    register_production_model,
    running,
    venv_env,
)
from benchmarks.serving.harness import RESULTS as RESULTS_DIR
from infra.local.components import venv_bin

RESULTS = RESULTS_DIR / "serving_vs_mlflow.json"
BATCH_SIZE = 100


@dataclass(frozen=True)
class Target:
    """One server and how to ask it for a prediction."""

    name: str
    port: int
    path: str
    body_of: Callable[[list[dict[str, Any]]], bytes]
    weights_of: Callable[[Any], list[float]]


@dataclass(frozen=True)
class Figures:
    """The outcome of one load on one server."""

    server: str
    load: str
    requests: int
    fish_per_request: int
    seconds: float
    requests_per_s: float
    fish_per_s: float
    p50_ms: float
    p99_ms: float
    failures: int


def _tidemark_body(fish: list[dict[str, Any]]) -> bytes:
    return json.dumps(fish[0] if len(fish) == 1 else fish).encode()


def _tidemark_weights(answer: Any) -> list[float]:
    rows = answer.get("predictions", [answer])
    return [row["predicted_weight_kg"] for row in rows]


def _mlflow_body(fish: list[dict[str, Any]]) -> bytes:
    data = [[f[column] for column in FEATURES] for f in fish]
    return json.dumps({"dataframe_split": {"columns": list(FEATURES), "data": data}}).encode()


def _mlflow_weights(answer: Any) -> list[float]:
    return [float(w) for w in answer["predictions"]]


def _post(connection: http.client.HTTPConnection, target: Target, body: bytes) -> Any:
    connection.request("POST", target.path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"{target.name} answered {response.status}: {payload[:300]!r}")
    return json.loads(payload)


def _sequential(target: Target, fish: list[dict[str, Any]], requests: int) -> Figures:
    bodies = [target.body_of([f]) for f in fish]
    connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
    for body in bodies[:100]:  # warm-up: connection, caches, first-call paths
        _post(connection, target, body)
    latencies, failures = [], 0
    started = time.perf_counter()
    for i in range(requests):
        sent = time.perf_counter()
        try:
            _post(connection, target, bodies[i % len(bodies)])
        except (RuntimeError, OSError):
            failures += 1
            connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
        latencies.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - started
    connection.close()
    return _figures(target, "sequential, 1 fish", latencies, elapsed, 1, failures)


def _concurrent(target: Target, fish: list[dict[str, Any]], requests: int, threads: int) -> Figures:
    batches = [
        target.body_of(fish[i : i + BATCH_SIZE])
        for i in range(0, len(fish) - BATCH_SIZE + 1, BATCH_SIZE)
    ]
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    per_thread = requests // threads
    gate = threading.Barrier(threads + 1)

    def worker(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
        _post(connection, target, batches[offset % len(batches)])  # warm-up
        mine, failed = [], 0
        gate.wait()
        for i in range(per_thread):
            sent = time.perf_counter()
            try:
                _post(connection, target, batches[(offset + i) % len(batches)])
            except (RuntimeError, OSError):
                failed += 1
                connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
            mine.append(time.perf_counter() - sent)
        connection.close()
        with lock:
            latencies.extend(mine)
            failures[0] += failed

    pool = [threading.Thread(target=worker, args=(n * 7,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    load = f"{threads} threads, batches of {BATCH_SIZE}"
    return _figures(target, load, latencies, elapsed, BATCH_SIZE, failures[0])


def _figures(
    target: Target, load: str, latencies: list[float], elapsed: float, size: int, failures: int
) -> Figures:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Figures(
        server=target.name,
        load=load,
        requests=len(latencies),
        fish_per_request=size,
        seconds=round(elapsed, 3),
        requests_per_s=round(len(latencies) / elapsed, 1),
        fish_per_s=round(len(latencies) * size / elapsed, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 3),
        p99_ms=round(cuts[98] * 1000, 3),
        failures=failures,
    )


def _max_relative_difference(targets: list[Target], fish: list[dict[str, Any]]) -> float:
    answers = []
    for target in targets:
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
        answers.append(target.weights_of(_post(connection, target, target.body_of(fish))))
        connection.close()
    ours, theirs = answers
    return max(abs(a - b) / b for a, b in zip(ours, theirs, strict=True))


def main(
    sequential_requests: Annotated[int, typer.Option(min=100)] = 3000,
    batch_requests: Annotated[int, typer.Option(min=10)] = 800,
    threads: Annotated[int, typer.Option(min=1)] = 4,
) -> None:
    """Run both servers on one promoted model, load each the same way, print and save figures."""
    tidemark_port, mlflow_serve_port = free_ports(2)
    with tempfile.TemporaryDirectory(prefix="tidemark-bench-") as tmp, ExitStack() as stack:
        state = Path(tmp)
        tracking_uri = stack.enter_context(private_registry(state))
        version = register_production_model(tracking_uri)
        typer.echo(f"registered {MODEL_NAME} version {version} as @production")
        tidemark_env = {
            **venv_env(),
            "TIDEMARK_REGISTRY_TRACKING_URI": tracking_uri,
            "TIDEMARK_REGISTRY_MODEL_NAME": MODEL_NAME,
            "TIDEMARK_SERVING_PORT": str(tidemark_port),
        }
        stack.enter_context(
            running(
                [venv_bin("tidemark"), "serve"],
                tidemark_env,
                state / "tidemark-serve.log",
                f"http://127.0.0.1:{tidemark_port}/ready",
                "tidemark serve",
            )
        )
        mlflow_serve = [
            venv_bin("mlflow"), "models", "serve",
            "-m", f"models:/{MODEL_NAME}@production", "--env-manager", "local",
            "-h", "127.0.0.1", "-p", str(mlflow_serve_port), "-w", "1",
        ]  # fmt: skip
        stack.enter_context(
            running(
                mlflow_serve,
                # MLflow's own server loads the model only with deserialisation allowed, which
                # Tidemark turns off in its processes; this baseline serves a model the
                # benchmark registered itself.
                {
                    **venv_env(),
                    "MLFLOW_TRACKING_URI": tracking_uri,
                    "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
                },
                state / "mlflow-serve.log",
                f"http://127.0.0.1:{mlflow_serve_port}/ping",
                "mlflow models serve",
            )
        )
        targets = [
            Target("tidemark serve", tidemark_port, "/predict", _tidemark_body, _tidemark_weights),
            Target(
                "mlflow models serve",
                mlflow_serve_port,
                "/invocations",
                _mlflow_body,
                _mlflow_weights,
            ),
        ]
        sample = fish(2000, seed=11)
        difference = _max_relative_difference(targets, sample[:BATCH_SIZE])
        results = [_sequential(t, sample, sequential_requests) for t in targets]
        results += [_concurrent(t, sample, batch_requests, threads) for t in targets]
    _report(results, difference, version)


def _report(results: list[Figures], difference: float, version: str) -> None:
    header = f"{'server':<20} {'load':<28} {'req/s':>9} {'fish/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
    typer.echo(header)
    typer.echo("-" * len(header))
    for r in results:
        typer.echo(
            f"{r.server:<20} {r.load:<28} {r.requests_per_s:>9.1f} {r.fish_per_s:>10.1f} "
            f"{r.p50_ms:>8.3f} {r.p99_ms:>8.3f}"
            + (f"  ({r.failures} failed)" if r.failures else "")
        )
    ratios = {}
    for load in dict.fromkeys(r.load for r in results):
        ours, theirs = (r for r in results if r.load == load)
        ratios[load] = round(ours.requests_per_s / theirs.requests_per_s, 2)
        typer.echo(f"ratio tidemark/mlflow, {load}: {ratios[load]:.2f}x requests/s")
    typer.echo(f"largest relative difference between their predictions: {difference:.2e}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "serving_vs_mlflow",
        "model_version": version,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": [asdict(r) for r in results],
        "ratio_requests_per_s": ratios,
        "max_relative_prediction_difference": difference,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    typer.echo(f"wrote {RESULTS}")


if __name__ == "__main__":
    typer.run(main)
