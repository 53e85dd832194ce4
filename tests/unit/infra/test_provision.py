"""Downloads and builds of the stack's binaries happen once per cache, however many stacks ask."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

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
