"""What the serving benchmarks share: free ports, a private MLflow registry with a promoted fish
model, server processes started and stopped around a load, and fish to send."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import mlflow
from mlflow import MlflowClient

from benchmarks.fish import FISH, fish_scenario
from infra.local.components import mlflow as mlflow_component
from tidemark.config import Settings
from tidemark.modelling.training import train
from tidemark.simulation.generate import generate_frame

MODEL_NAME = "fish-weight"
# The model's inputs, as the fish project file names them.
FEATURES = tuple(feature.name for feature in FISH.features)
RESULTS = Path(__file__).resolve().parents[1] / "results"


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (held open together so they differ)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def venv_env() -> dict[str, str]:
    """This environment with the venv's bin first on PATH (``mlflow models serve`` needs it)."""
    venv = str(Path(sys.executable).parent)
    # The servers run in temporary folders: they read the repository's projects.
    projects = str(Path(__file__).resolve().parents[2] / "projects")
    return {
        "TIDEMARK_PROJECTS_DIR": projects,
        **os.environ,
        "PATH": f"{venv}:{os.environ.get('PATH', '')}",
    }


def _wait_for(url: str, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited; see {log}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {url} within 180 s; see {log}")


@contextmanager
def running(
    command: list[str], env: dict[str, str], log: Path, ready_url: str, what: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A process, its output in ``log``, once ``ready_url`` answers 200; stopped afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out, cwd=log.parent)
        try:
            _wait_for(ready_url, process, what, log)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def private_registry(state: Path) -> Iterator[str]:
    """A private MLflow server under ``state`` on a free port; yields its tracking URI."""
    (port,) = free_ports(1)
    tracking_uri = f"http://127.0.0.1:{port}"
    registry = mlflow_component(Settings(mlflow_tracking_uri=tracking_uri), state)
    registry.prepare()
    with running(
        registry.command,
        {**venv_env(), **registry.env},
        state / "mlflow.log",
        f"{tracking_uri}/health",
        "mlflow server",
    ):
        yield tracking_uri


def register_production_model(tracking_uri: str) -> str:
    """Train on the default scenario, register the model, point @production at it: its version."""
    frame = generate_frame(fish_scenario(), seed=7)
    fitted = train(FISH, frame, seed=0).model
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("serving-benchmark")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            fitted,
            name="model",
            registered_model_name=MODEL_NAME,
            input_example=frame.loc[:5, list(FEATURES)],
            pip_requirements=["scikit-learn"],
        )
    version = str(info.registered_model_version)
    MlflowClient(tracking_uri).set_registered_model_alias(MODEL_NAME, "production", version)
    return version


def _process_tree(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread or the process ended meanwhile
            continue
        for child in children:
            found += _process_tree(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) used so far by a process and its descendants (Linux)."""
    ticks = 0
    for member in _process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
        fields = stat.rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def fish(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` fish of the default scenario, as the API takes them."""
    frame = generate_frame(fish_scenario(), seed=seed).sample(count, random_state=seed)
    return [
        {"species": s, "length_cm": float(length), "height_cm": float(height)}
        for s, length, height in frame.loc[:, list(FEATURES)].itertuples(index=False)
    ]
