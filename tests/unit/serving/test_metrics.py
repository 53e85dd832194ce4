"""The server's metrics: tallies flushed in bulk read as if observed one by one, and with several
workers (prometheus-client's multiprocess mode) every worker's counts and version show."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from bisect import bisect_left
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from serving.metrics import LATENCY_BUCKETS, add_observations


def test_observations_added_in_bulk_read_as_if_observed_one_by_one() -> None:
    seconds = [0.0001, 0.0003, 0.0003, 0.004, 0.2, 7.0]
    one_by_one, in_bulk = CollectorRegistry(), CollectorRegistry()
    observed = Histogram("latency", "d", ["v"], buckets=LATENCY_BUCKETS, registry=one_by_one)
    added = Histogram("latency", "d", ["v"], buckets=LATENCY_BUCKETS, registry=in_bulk)
    for value in seconds:
        observed.labels("1").observe(value)
    bounds = (*LATENCY_BUCKETS, math.inf)
    buckets = [0] * len(bounds)
    for value in seconds:
        buckets[bisect_left(bounds, value)] += 1
    add_observations(added.labels("1"), buckets, sum(seconds))

    def samples(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        return [line for line in text.splitlines() if not line.startswith("latency_created")]

    assert samples(in_bulk) == samples(one_by_one)


# One worker process: a model holder's stand-in at ``version``, ``requests`` predict requests.
_PREDICTIONS = (
    'tidemark_serving_predictions_total{{model_version="{version}",project="fish-weight",'
    'segment="salmon"}}'
)
_WORKER = """
import sys
from types import SimpleNamespace
from serving.metrics import ServingMetrics

version, requests, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "stop"
served = SimpleNamespace(name="fish-weight", version=version, run_id="run-" + version)
source = SimpleNamespace(registry_ok=True, add_listener=lambda listener: None)
holder = SimpleNamespace(active=SimpleNamespace(served=served), swaps=1, source=source)
metrics = ServingMetrics(holder, shared_dir=sys.argv[4])
for _ in range(requests):
    metrics.count_request("/predict", "POST", 200, version, 0.0003)
    metrics.count_prediction("fish-weight", "salmon", version)
metrics.flush()
if stop:
    metrics.close()
print(metrics.exposition().decode())
"""


def _worker(folder: Path, version: str, requests: int, stop: bool = False) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    args = [version, str(requests), "stop" if stop else "run", str(folder)]
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_WORKER), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout


def test_workers_counts_are_summed_and_each_workers_version_shows(tmp_path: Path) -> None:
    _worker(tmp_path, "1", 3)
    text = _worker(tmp_path, "2", 4)
    lines = text.splitlines()
    assert f"{_PREDICTIONS.format(version='1')} 3.0" in lines
    assert f"{_PREDICTIONS.format(version='2')} 4.0" in lines
    assert any(
        line.startswith('tidemark_serving_request_duration_seconds_count{endpoint="/predict"')
        and line.endswith(" 4.0")
        for line in lines
    )
    # One sample per worker (pid), each naming the version that worker serves.
    info = [line for line in lines if line.startswith("tidemark_serving_model_info{")]
    assert len(info) == 2
    assert {'model_version="1"' in line for line in info} == {True, False}
    assert all(line.endswith(" 1.0") and 'pid="' in line for line in info)
    assert "tidemark_serving_model_swaps_total 2.0" in lines


def test_a_stopped_worker_leaves_its_counts_but_not_its_version(tmp_path: Path) -> None:
    _worker(tmp_path, "1", 3, stop=True)
    text = _worker(tmp_path, "2", 1)
    info = [line for line in text.splitlines() if line.startswith("tidemark_serving_model_info{")]
    assert len(info) == 1
    assert 'model_version="2"' in info[0]
    assert f"{_PREDICTIONS.format(version='1')} 3.0" in text
