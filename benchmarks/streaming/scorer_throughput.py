"""How fast one scorer process turns measurements into acknowledged predictions, and how soon.

Three consumers read the same pre-filled ``measurements`` topic, each in its own group and
process, writing to their own output topic:

- passthrough: bare kafka-python consume → produce → flush → commit, no parsing, no model (the
  ceiling a Python consumer can reach here);
- batch scorer: ``streaming.scorer.Scorer`` itself, one ``predict`` per polled batch;
- batch scorer with a challenger in shadow: the same, plus the challenger's ``predict`` of the
  same batch and its answer in every prediction (the target: at least 90 % of the scorer alone);
- the scorer as ``tidemark score`` runs it, for the fish alone and for the fish with a second
  project (penguin-mass) in the same process and group (:class:`tidemark.stream.dispatch.Dispatch`),
  the second project's inputs arriving meanwhile at ``--second-rate`` (the stack's simulator
  rate by default); only the fish count (issue 23: with the second project, at least 90 % of the
  fish alone, in the same run);
- per-event HTTP: one POST per measurement to a FastAPI model server of the same scikit-learn
  model (the original tutorial's pattern), run on fewer events because it is slow.

Throughput is measured from the output side: the CreateTime stamps of the first and last output
records (set by the producer when each is sent). Latency is measured at a fixed rate against a
running scorer and a running passthrough, from ``measured_at`` to the moment the broker appended
the output record (its LogAppendTime), alternated over the rounds; the round of median p99
counts.

Scaling: 1, 2 and 3 scorer processes in one group on the same 3-partition topic. They start on
an empty topic; once the group is stable with all of them, the measurements are written as fast
as one producer can, and the rate counts from the first prediction to the last (the fill rate
is reported beside it, since it can bound the result).

Usage: ``python -m benchmarks.streaming.scorer_throughput [--bootstrap-servers HOST:PORT]``;
without a broker it starts a private Kafka on free ports under a temporary folder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import uvicorn
from fastapi import FastAPI, Request
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from rich.console import Console
from rich.table import Table

from benchmarks.fish import FISH, fish_scenario
from benchmarks.stack.stream_rate import encoded_inputs
from infra.local import components
from infra.local.supervisor import Supervisor
from streaming.models import ProjectModel
from streaming.scorer import Scorer
from streaming.simulator import scenario_rows
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.modelling.default import known_segments
from tidemark.modelling.training import predict, train
from tidemark.project.contracts import Contracts, Prediction
from tidemark.project.spec import load_project
from tidemark.registry.watcher import ServedModel
from tidemark.schemas import utc_now
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario
from tidemark.stream.dispatch import Dispatch, Route
from tidemark.stream.loop import run_loop, settle_heap
from tidemark.stream.records import next_offsets
from tidemark.stream.service import stop_on_signals

FISH_CONTRACTS = Contracts(FISH)
# Issue 23's second project, served beside the fish by one scorer process.
SECOND = load_project(Path(__file__).resolve().parents[2] / "projects" / "penguin-mass.toml")
# Issue 23: the fish scorer with a second project keeps at least this share of its throughput.
THROUGHPUT_KEPT = 0.90


def _input(key: str, features: Mapping[str, Any], at: datetime) -> bytes:
    """A fish's input record, as the line sends it (the fish project's fields)."""
    fields = {FISH.key: key, **features, FISH.times.input: at}
    return orjson.dumps(fields, option=orjson.OPT_UTC_Z)


RESULTS = Path(__file__).resolve().parents[1] / "results" / "streaming_scorer.json"
# Issue 15: the scorer's p99 at 1,000 events/s, beside the passthrough's in the same run.
LATENCY_TARGET_MS = 50.0


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextmanager
def private_kafka() -> Iterator[str]:
    """A one-node Kafka of the benchmark's own, from the local stack's component definition."""
    kafka_port, controller_port = _free_ports(2)
    with tempfile.TemporaryDirectory(prefix="tidemark-bench-") as state_dir:
        settings = Settings(
            kafka_bootstrap_servers=f"127.0.0.1:{kafka_port}",
            stack_kafka_controller_port=controller_port,
            stack_state_dir=Path(state_dir),
        )
        (broker,) = components.kafka(settings, Path(state_dir))
        broker.prepare()
        supervisor = Supervisor(Path(state_dir))
        supervisor.write_config([broker])
        supervisor.start()
        try:
            deadline = time.monotonic() + settings.stack.start_timeout_s
            while True:
                try:
                    broker.check()
                    break
                except Exception:  # not up yet: the check raises until the broker answers
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            yield settings.kafka.bootstrap_servers
        finally:
            supervisor.stop()


def _settings(bootstrap: str, run: str, name: str) -> Settings:
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        kafka_session_timeout_ms=6_000,
        kafka_topics_input=f"bench-{run}.measurements",
        kafka_topics_truth=f"bench-{run}.weights",
        kafka_topics_predictions=f"bench-{run}.{name}.out",
        kafka_topics_scored=f"bench-{run}.scored",
        kafka_topics_retrain_requests=f"bench-{run}.retrain",
        kafka_topics_dead_letter=f"bench-{run}.{name}.dead",
        stream_scorer_group_id=f"bench-{run}-{name}",
    )


def _served_model(version: str = "1") -> ServedModel:
    frame = generate_frame(fish_scenario(), seed=int(version), phases=["salmon", "walleye"])
    fitted = train(FISH, frame, seed=0).model
    return ServedModel(
        name="fish-weight",
        version=version,
        run_id="benchmark",
        model=fitted,
        project=FISH,
        segments=known_segments(FISH, fitted),
        loaded_at=utc_now(),
    )


def _served_second() -> ServedModel:
    """The second project's model, trained on its default scenario's items."""
    frame = generate_frame(load_scenario(SECOND), seed=1)
    fitted = train(SECOND, frame, seed=0).model
    return ServedModel(
        name=SECOND.name,
        version="1",
        run_id="benchmark",
        model=fitted,
        project=SECOND,
        segments=known_segments(SECOND, fitted),
        loaded_at=utc_now(),
    )


def _second_settings(settings: Settings) -> Settings:
    """The second project's topics beside the fish's of ``settings`` (same broker and group),
    named after the round's output topic: each round's second project starts empty."""
    round_topic = settings.kafka.topics.predictions
    return settings.override(
        **{
            f"kafka_topics_{role}": f"{round_topic}.{SECOND.name}.{role}"
            for role in ("input", "truth", "predictions", "scored", "dead_letter")
        }
    )


def _fill(settings: Settings, count: int, topic: str | None = None) -> None:
    producer = kafka_io.producer(settings.kafka, linger_ms=20, batch_size=256 * 1024)
    fish = scenario_rows(fish_scenario(), seed=7, loop=True)
    now = utc_now()
    for _, record in zip(range(count), fish, strict=False):
        value = _input(record.key, record.features, now)
        producer.send(topic or settings.kafka.topics.input, key=record.key.encode(), value=value)
    producer.flush()
    producer.close()


def _encoded_fish(count: int) -> list[tuple[bytes, bytes]]:
    fish = scenario_rows(fish_scenario(), seed=5, loop=True)
    now = utc_now()
    return [
        (
            record.key.encode(),
            _input(record.key, record.features, now),
        )
        for _, record in zip(range(count), fish, strict=False)
    ]


def _group_stable(settings: Settings, members: int) -> bool:
    client = kafka_io.admin(settings.kafka)
    try:
        group = client.describe_groups([settings.stream.scorer_group_id])[
            settings.stream.scorer_group_id
        ]
    finally:
        client.close()
    return bool(group.get("group_state") == "Stable" and len(group["members"]) == members)


def _reader(settings: Settings, topic: str) -> tuple[KafkaConsumer, list[TopicPartition]]:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(partitions)
    return consumer, partitions


def _count(settings: Settings, topic: str) -> int:
    consumer, partitions = _reader(settings, topic)
    try:
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def _timestamps(settings: Settings, topic: str, limit: int) -> list[int]:
    """CreateTime (ms) of every record of the topic, up to ``limit`` records."""
    consumer, partitions = _reader(settings, topic)
    try:
        ends = consumer.end_offsets(partitions)
        stamps: list[int] = []
        while any(consumer.position(p) < ends[p] for p in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                stamps.extend(r.timestamp for r in batch)
        return sorted(stamps)[:limit]
    finally:
        consumer.close()


# --- the three consumers, each run in a child process -------------------------------------


def _passthrough(settings: Settings) -> None:
    stop = stop_on_signals()
    consumer = kafka_io.consumer(
        settings.kafka,
        settings.stream.scorer_group_id,
        settings.kafka.topics.input,
        max_poll_records=settings.stream.max_batch,
    )
    # The same producer and heap as the scorer's, so that the ceiling is the best bare loop.
    producer = kafka_io.batch_producer(settings.kafka)
    settle_heap()
    while not stop.is_set():
        batch = consumer.poll(timeout_ms=500)
        if not batch:
            continue
        for records in batch.values():
            for record in records:
                producer.send(settings.kafka.topics.predictions, key=record.key, value=record.value)
        producer.flush()
        consumer.commit(next_offsets(batch))
    consumer.close(autocommit=False)
    producer.close()


def _batch_scorer(settings: Settings) -> None:
    stop = stop_on_signals()
    served = _served_model()
    contracts = Contracts(fish_scenario().project)
    model = ProjectModel.of(contracts.project, served)
    run_loop(Scorer(settings, contracts, lambda: model), settings, stop)


def _shadow_scorer(settings: Settings) -> None:
    stop = stop_on_signals()
    served, challenger = _served_model("1"), _served_model("2")
    contracts = Contracts(fish_scenario().project)
    model = ProjectModel.of(contracts.project, served)
    shadow = ProjectModel.of(contracts.project, challenger)
    run_loop(Scorer(settings, contracts, lambda: model, lambda: shadow), settings, stop)


def _dispatched_scorer(settings: Settings, second: Settings | None) -> None:
    """The scorer as ``tidemark score`` runs it: a dispatch of the fish's route and, given
    ``second``'s settings, the second project's, in one group."""
    stop = stop_on_signals()
    fish = ProjectModel.of(FISH, _served_model())
    routes = [Route(FISH.name, Scorer(settings, FISH_CONTRACTS, lambda: fish), settings.kafka)]
    if second is not None:
        other = ProjectModel.of(SECOND, _served_second())
        scorer = Scorer(second, Contracts(SECOND), lambda: other)
        routes.append(Route(SECOND.name, scorer, second.kafka))
    run_loop(Dispatch(settings.stream.scorer_group_id, routes), settings, stop)


@contextmanager
def _second_stream(settings: Settings, rate: float) -> Iterator[None]:
    """The second project's inputs sent at ``rate`` per second while the block runs."""
    values = encoded_inputs(SECOND, 10_000, seed=3)
    stop = threading.Event()

    def send() -> None:
        if rate <= 0:
            return
        producer = kafka_io.producer(settings.kafka)
        try:
            for key, value in itertools.cycle(values):
                if stop.wait(1 / rate):
                    break
                producer.send(settings.kafka.topics.input, key=key, value=value)
        finally:
            producer.close()

    sender = threading.Thread(target=send, name="second-project-stream")
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join()


def _http_per_event(settings: Settings, url: str) -> None:
    stop = stop_on_signals()
    consumer = kafka_io.consumer(
        settings.kafka,
        settings.stream.scorer_group_id,
        settings.kafka.topics.input,
        max_poll_records=100,
    )
    producer = kafka_io.batch_producer(settings.kafka)
    settle_heap()
    with httpx.Client(base_url=url, timeout=10.0) as client:
        while not stop.is_set():
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    item = FISH_CONTRACTS.decode_input(record.value)
                    response = client.post("/predict", content=record.value)
                    answer = response.raise_for_status().json()
                    prediction = Prediction(
                        item=item,
                        value=answer["value"],
                        segment_known=answer["segment_known"],
                        model_name=FISH.name,
                        model_version="1",
                        predicted_at=utc_now(),
                    )
                    producer.send(
                        settings.kafka.topics.predictions,
                        key=record.key,
                        value=FISH_CONTRACTS.encode_prediction(prediction),
                    )
            if batch:
                producer.flush()
                consumer.commit(next_offsets(batch))
    consumer.close(autocommit=False)
    producer.close()


def _model_server(port: int) -> None:
    """A minimal FastAPI server of the same model: one measurement in, one weight out."""
    served = _served_model()
    app = FastAPI()

    @app.post("/predict")
    async def predict_one(request: Request) -> dict[str, Any]:
        item = FISH_CONTRACTS.decode_input(await request.body())
        frame = pd.DataFrame([{f.name: item.feature(f.name) for f in FISH.features}])
        result = predict(FISH, served.model, frame, segments=served.segments)
        return {
            "value": float(result.values[0]),
            "segment_known": bool(result.segment_known[0]),
        }

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _run_child(target: Any, args: tuple[Any, ...]) -> multiprocessing.process.BaseProcess:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    return process


def _stop_child(process: multiprocessing.process.BaseProcess) -> None:
    process.terminate()
    process.join(30)
    if process.is_alive():
        process.kill()
        process.join()


def throughput(
    settings: Settings, target: Any, events: int, extra: tuple[Any, ...] = ()
) -> dict[str, float]:
    """Run one consumer until ``events`` outputs exist; events/s from their CreateTime stamps."""
    kafka_io.ensure_topics(settings.kafka)
    child = _run_child(target, (settings, *extra))
    try:
        deadline = time.monotonic() + 600
        while _count(settings, settings.kafka.topics.predictions) < events:
            if not child.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{target.__name__} stopped before {events} outputs")
            time.sleep(0.5)
    finally:
        _stop_child(child)
    stamps = _timestamps(settings, settings.kafka.topics.predictions, events)
    seconds = max((stamps[-1] - stamps[0]) / 1000, 1e-3)
    return {"events": events, "seconds": seconds, "events_per_s": (events - 1) / seconds}


def projects_throughput(
    settings: Settings, events: int, second_rate: float, with_second: bool
) -> dict[str, float]:
    """The fish's throughput through the scorer as ``tidemark score`` runs it: the fish alone,
    or with the second project served in the same process, its inputs coming at
    ``second_rate`` meanwhile."""
    if not with_second:
        return throughput(settings, _dispatched_scorer, events, (None,))
    second = _second_settings(settings)
    kafka_io.ensure_topics(second.kafka)
    with _second_stream(second, second_rate):
        return throughput(settings, _dispatched_scorer, events, (second,))


def scaling(settings: Settings, processes: int, events: int) -> dict[str, float]:
    """``processes`` scorers in one group: events/s once all of them consume."""
    kafka_io.ensure_topics(settings.kafka)
    values = _encoded_fish(events)
    children = [_run_child(_batch_scorer, (settings,)) for _ in range(processes)]
    try:
        deadline = time.monotonic() + 600
        while not _group_stable(settings, processes):
            if not all(c.is_alive() for c in children) or time.monotonic() > deadline:
                raise RuntimeError(f"{processes} scorers did not form a stable group")
            time.sleep(0.5)
        producer = kafka_io.batch_producer(settings.kafka)
        started = time.monotonic()
        for key, value in values:
            producer.send(settings.kafka.topics.input, key=key, value=value)
        producer.flush()
        fill_s = time.monotonic() - started
        producer.close()
        while _count(settings, settings.kafka.topics.predictions) < events:
            if not all(c.is_alive() for c in children) or time.monotonic() > deadline:
                raise RuntimeError(f"{processes} scorers stopped before {events} outputs")
            time.sleep(0.5)
    finally:
        for child in children:
            _stop_child(child)
    stamps = _timestamps(settings, settings.kafka.topics.predictions, events)
    seconds = max((stamps[-1] - stamps[0]) / 1000, 1e-3)
    return {
        "processes": processes,
        "events": events,
        "seconds": seconds,
        "events_per_s": (events - 1) / seconds,
        "fill_events_per_s": events / fill_s,
    }


def latency(settings: Settings, target: Any, rate: float, seconds: float) -> dict[str, float]:
    """Measurement → output latency of a running consumer fed at a fixed rate.

    The output topic stamps each record with the broker's clock when it appends it
    (``LogAppendTime``): the figure includes the producer's batching and the trip to the broker,
    up to the moment the prediction is written and can be acknowledged.
    """
    client = kafka_io.admin(settings.kafka)
    try:
        client.create_topics(
            {
                settings.kafka.topics.predictions: {
                    "num_partitions": settings.kafka.partitions,
                    "replication_factor": settings.kafka.replication_factor,
                    "configs": kafka_io.topic_configs(settings.kafka)
                    | {"message.timestamp.type": "LogAppendTime"},
                }
            },
            wait_for_metadata=True,
        )
    finally:
        client.close()
    kafka_io.ensure_topics(settings.kafka)
    child = _run_child(target, (settings,))
    try:
        # One warm-up fish proves the consumer has joined its group (and loaded its model).
        _fill(settings, 1)
        while _count(settings, settings.kafka.topics.predictions) < 1:
            time.sleep(0.2)
        producer = kafka_io.producer(settings.kafka)
        fish = scenario_rows(fish_scenario(), seed=9, loop=True)
        total = int(rate * seconds)
        timed_from = utc_now().timestamp() * 1000
        started = time.monotonic()
        for index, record in zip(range(total), fish, strict=False):
            wait = started + index / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            value = _input(record.key, record.features, utc_now())
            producer.send(settings.kafka.topics.input, key=record.key.encode(), value=value)
        producer.flush()
        producer.close()
        achieved = total / (time.monotonic() - started)
        while _count(settings, settings.kafka.topics.predictions) < total + 1:
            time.sleep(0.2)
    finally:
        _stop_child(child)
    consumer, partitions = _reader(settings, settings.kafka.topics.predictions)
    lags: list[float] = []
    try:
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(p) < ends[p] for p in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                for record in batch:
                    measured = orjson.loads(record.value)["measured_at"]
                    measured_ms = datetime.fromisoformat(measured).timestamp() * 1000
                    # The warm-up fish waited for the group to form: it is not a latency.
                    if measured_ms >= timed_from:
                        lags.append(record.timestamp - measured_ms)
    finally:
        consumer.close()
    return {
        "rate_target": rate,
        "rate_achieved": achieved,
        "events": len(lags),
        "p50_ms": float(np.percentile(lags, 50)),
        "p99_ms": float(np.percentile(lags, 99)),
        "max_ms": max(lags),
        "mean_ms": statistics.fmean(lags),
    }


def _median(rounds: list[dict[str, float]]) -> dict[str, float]:
    return sorted(rounds, key=lambda r: r["events_per_s"])[len(rounds) // 2]


def _http_throughput(bootstrap: str, run_id: str, events: int) -> dict[str, float]:
    """Throughput of one HTTP call per event to a model server of the same model."""
    (port,) = _free_ports(1)
    server = _run_child(_model_server, (port,))
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1.0).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        return throughput(_settings(bootstrap, run_id, "http"), _http_per_event, events, (url,))
    finally:
        _stop_child(server)


def run(
    bootstrap: str,
    events: int,
    http_events: int,
    rate: float,
    seconds: float,
    rounds: int,
    scorers: list[int],
    second_rate: float,
) -> dict[str, Any]:
    """Every measurement of the benchmark, on the broker at ``bootstrap``."""
    run_id = f"{int(time.time())}"
    base = _settings(bootstrap, run_id, "fill")
    kafka_io.ensure_topics(base.kafka)
    _fill(base, events)
    # A fresh broker is slower until its JIT has compiled the hot paths: one pass not counted.
    throughput(_settings(bootstrap, run_id, "warm-up"), _passthrough, events)
    results: dict[str, Any] = {
        "events": events,
        "http_events": http_events,
        "rounds": rounds,
        "second_rate": second_rate,
    }
    compared = {"passthrough": _passthrough, "batch_scorer": _batch_scorer}
    alternated = {**compared, "shadow_scorer": _shadow_scorer}
    # The fish alone and with a second project, each through the scorer as `tidemark score`.
    projects = {"fish_alone": False, "fish_with_second": True}
    measured: dict[str, list[dict[str, float]]] = {name: [] for name in [*alternated, *projects]}
    # Alternate them, so that the broker's state and the machine's load weigh on all alike.
    for index in range(rounds):
        for name, target in alternated.items():
            settings = _settings(bootstrap, run_id, f"{name}-{index}")
            measured[name].append(throughput(settings, target, events))
        for name, with_second in projects.items():
            settings = _settings(bootstrap, run_id, f"{name}-{index}")
            measured[name].append(projects_throughput(settings, events, second_rate, with_second))
    for name, rounds_of_it in measured.items():
        results[name] = _median(rounds_of_it) | {
            "rounds_events_per_s": [r["events_per_s"] for r in rounds_of_it]
        }
    if http_events:
        results["http_per_event"] = _http_throughput(bootstrap, run_id, http_events)
    results["scaling"] = [
        scaling(_settings(bootstrap, f"{run_id}-scale-{n}", f"scorers-{n}"), n, events)
        for n in scorers
    ]
    # The bare loop's latency too: it is the floor this machine's Kafka client and broker allow.
    # Alternated over the rounds like throughput: one broker pause or burst of load from
    # elsewhere moves a single 1 % tail by tens of milliseconds.
    timed: dict[str, list[dict[str, float]]] = {name: [] for name in compared}
    for index in range(rounds):
        for name, target in compared.items():
            settings = _settings(bootstrap, f"{run_id}-lat-{name}-{index}", name)
            timed[name].append(latency(settings, target, rate, seconds))
    results["latency"] = {
        name: sorted(rounds_of_it, key=lambda r: r["p99_ms"])[len(rounds_of_it) // 2]
        | {"rounds_p99_ms": [r["p99_ms"] for r in rounds_of_it]}
        for name, rounds_of_it in timed.items()
    }
    return results


def report(results: dict[str, Any]) -> None:
    """Print the table."""
    ceiling = results["passthrough"]["events_per_s"]
    scorer = results["batch_scorer"]["events_per_s"]
    http = results.get("http_per_event", {}).get("events_per_s", 0.0)
    table = Table(title="One scorer process: measurements → acknowledged predictions")
    for column in ("consumer", "events", "events/s", "vs ceiling", "vs HTTP per event"):
        table.add_column(column, justify="right" if column != "consumer" else "left")
    rows = [
        ("passthrough (ceiling)", results["passthrough"]),
        ("batch scorer", results["batch_scorer"]),
        ("batch scorer + challenger in shadow", results["shadow_scorer"]),
    ]
    if http:
        rows.append(("HTTP call per event", results["http_per_event"]))
    for name, row in rows:
        table.add_row(
            name,
            f"{row['events']:,}",
            f"{row['events_per_s']:,.0f}",
            f"{row['events_per_s'] / ceiling:.0%}",
            f"{row['events_per_s'] / http:.0f}x" if http else "-",
        )
    console = Console()
    console.print(table)
    latencies = Table(
        title="Latency measured_at → output appended by the broker, at a fixed rate "
        "(the round of median p99)"
    )
    for column in ("consumer", "events/s", "events", "p50 ms", "p99 ms", "max ms", "p99 rounds"):
        latencies.add_column(column, justify="right" if column != "consumer" else "left")
    for name, lat in results["latency"].items():
        latencies.add_row(
            name.replace("_", " "),
            f"{lat['rate_achieved']:,.0f}",
            f"{lat['events']:,}",
            f"{lat['p50_ms']:.1f}",
            f"{lat['p99_ms']:.1f}",
            f"{lat['max_ms']:.1f}",
            " ".join(f"{p99:.1f}" for p99 in lat["rounds_p99_ms"]),
        )
    console.print(latencies)
    p99 = results["latency"]["batch_scorer"]["p99_ms"]
    verdict = "within" if p99 < LATENCY_TARGET_MS else "above"
    console.print(
        f"scorer p99 {p99:.1f} ms at {results['latency']['batch_scorer']['rate_target']:,.0f} "
        f"events/s: {verdict} the target of {LATENCY_TARGET_MS:.0f} ms (passthrough "
        f"{results['latency']['passthrough']['p99_ms']:.1f} ms)"
    )
    scaled = Table(title="Scorer processes in one group on one 3-partition topic")
    for column in ("scorers", "events", "events/s", "vs one scorer", "fill events/s"):
        scaled.add_column(column, justify="right")
    one = next((r["events_per_s"] for r in results["scaling"] if r["processes"] == 1), None)
    for row in results["scaling"]:
        scaled.add_row(
            str(row["processes"]),
            f"{row['events']:,}",
            f"{row['events_per_s']:,.0f}",
            f"{row['events_per_s'] / one:.2f}x" if one else "-",
            f"{row['fill_events_per_s']:,.0f}",
        )
    console.print(scaled)
    console.print(f"scorer / ceiling {scorer / ceiling:.0%}")
    shadow = results["shadow_scorer"]["events_per_s"]
    console.print(f"scorer with a challenger in shadow / scorer alone {shadow / scorer:.0%}")
    report_projects(results, console)


def report_projects(results: dict[str, Any], console: Console) -> None:
    """The fish's throughput alone and with the second project, side by side, per round."""
    alone, beside = results["fish_alone"], results["fish_with_second"]
    table = Table(
        title=f"The fish through `tidemark score`: alone, and with {SECOND.name} in the same "
        f"process ({results['second_rate']:g} of its inputs/s meanwhile)"
    )
    for column in ("projects", "fish/s (median)", "rounds", "vs fish alone"):
        table.add_column(column, justify="right" if column != "projects" else "left")
    for name, row in (("fish-weight", alone), (f"fish-weight + {SECOND.name}", beside)):
        table.add_row(
            name,
            f"{row['events_per_s']:,.0f}",
            " ".join(f"{r:,.0f}" for r in row["rounds_events_per_s"]),
            f"{row['events_per_s'] / alone['events_per_s']:.1%}",
        )
    console.print(table)
    kept = beside["events_per_s"] / alone["events_per_s"]
    console.print(
        f"the fish scorer keeps {kept:.1%} of its single-project throughput with a second project "
        f"(goal ≥ {THROUGHPUT_KEPT:.0%}: {'met' if kept >= THROUGHPUT_KEPT else 'NOT met'})"
    )


def main() -> None:
    """Parse arguments, run, print, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap-servers", help="an existing broker (default: a private one)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--http-events", type=int, default=3_000, help="0: skip the HTTP run")
    parser.add_argument("--rate", type=float, default=1_000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, the median counts")
    parser.add_argument(
        "--scorers", default="1,2,3", help="scorer processes in one group, one run per count"
    )
    parser.add_argument(
        "--second-rate",
        type=float,
        default=Settings().stack.simulator_rate,
        help="inputs/s of the second project while the fish are measured beside it",
    )
    args = parser.parse_args()
    scorers = [int(n) for n in args.scorers.split(",") if n]
    options = (
        args.events,
        args.http_events,
        args.rate,
        args.seconds,
        args.rounds,
        scorers,
        args.second_rate,
    )
    if args.bootstrap_servers:
        results = run(args.bootstrap_servers, *options)
    else:
        with private_kafka() as bootstrap:
            results = run(bootstrap, *options)
    report(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
