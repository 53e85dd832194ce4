"""Downloads and builds of the stack's binaries happen once per cache, however many stacks ask."""

from __future__ import annotations

import threading
import time
from importlib.metadata import requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from infra.local import provision
from tidemark.config import StackSettings


def test_concurrent_stacks_fetch_the_kafka_jars_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetches: list[Path] = []

    def fake_mvn(what: str, command: list[str], cwd: Path, env: object = None) -> str:
        fetches.append(cwd)
        time.sleep(0.2)  # long enough for the other stack to reach the lock meanwhile
        (cwd / "libs").mkdir()
        (cwd / "libs" / "kafka.jar").write_text("jar")
        return ""

    monkeypatch.setattr(provision, "_run", fake_mvn)
    stack = StackSettings(cache_dir=tmp_path / "cache")
    found: list[Path] = []
    stacks = [
        threading.Thread(target=lambda: found.append(provision.kafka_libs(stack))) for _ in range(3)
    ]
    for thread in stacks:
        thread.start()
    for thread in stacks:
        thread.join(10)

    target = provision.kafka_libs_dir(stack)
    assert found == [target] * 3
    assert len(fetches) == 1
    assert (target / "kafka.jar").read_text() == "jar"
    assert not fetches[0].exists()  # the scratch folder is gone
    assert provision.kafka_libs(stack) == target
    assert len(fetches) == 1


def _pins(lock: Path) -> dict[str, str]:
    rows = (line.split("==") for line in lock.read_text().splitlines() if "==" in line)
    return {name.strip().lower(): version.strip() for name, version in rows}


def test_the_prefect_server_runs_the_client_s_release_with_its_declared_pins() -> None:
    server = _pins(provision.PREFECT_SERVER_LOCK)
    ours = _pins(Path(__file__).parents[3] / "requirements.lock")
    assert server["prefect"] == ours["prefect"] == version("prefect")
    # Prefect's own bound on FastAPI holds in the server's environment, whatever ours overrides.
    declared = next(
        Requirement(r) for r in requires("prefect") or [] if Requirement(r).name == "fastapi"
    )
    assert declared.specifier.contains(server["fastapi"])


def test_a_new_prefect_server_lock_builds_a_new_environment(tmp_path: Path) -> None:
    stack = StackSettings(cache_dir=tmp_path / "cache")
    first, second = tmp_path / "a.lock", tmp_path / "b.lock"
    first.write_text("prefect==3.9.1\nfastapi==0.150.0\n")
    second.write_text("prefect==3.9.1\nfastapi==0.150.1\n")
    assert provision.prefect_server_dir(stack, first) == provision.prefect_server_dir(stack, first)
    assert provision.prefect_server_dir(stack, first) != provision.prefect_server_dir(stack, second)
    assert provision.prefect_server_dir(stack, first).parent == stack.cache_dir
