"""Only the stream runtime polls Kafka: no other module of a service or the kernel writes a loop.

Every ``.py`` file of the kernel, the services and infra is parsed with ``ast``. Outside
``tidemark/stream/`` none may name ``KafkaConsumer`` (but ``tidemark/kafka_io.py``, whose
``consumer`` makes the runtime's consumers), call ``kafka_io.consumer``, or call ``.poll(...)``
with an argument (a subprocess's ``poll()`` takes none; a consumer's always gets a timeout
here). A service that reads a topic is a handler of the runtime
(``tidemark.stream.handler.Handler``). The demo, the benchmarks and the tests read topics to
watch them or to measure a bare loop, and are no services.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("tidemark", "flows", "serving", "streaming", "monitoring", "infra")
RUNTIME = ROOT / "tidemark" / "stream"
# The factory of every consumer: the runtime's, and the readers' of tests and the demo.
FACTORY = ROOT / "tidemark" / "kafka_io.py"


def _names_kafka_consumer(node: ast.AST) -> bool:
    return (
        (isinstance(node, ast.Name) and node.id == "KafkaConsumer")
        or (isinstance(node, ast.Attribute) and node.attr == "KafkaConsumer")
        or (isinstance(node, ast.alias) and node.name == "KafkaConsumer")
    )


def _makes_or_polls_a_consumer(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom) and node.module == "tidemark.kafka_io":
        return any(alias.name == "consumer" for alias in node.names)
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    receiver = node.func.value
    if node.func.attr == "consumer":
        return isinstance(receiver, ast.Name) and receiver.id == "kafka_io"
    return node.func.attr == "poll" and bool(node.args or node.keywords)


def own_poll_loops(source: str, may_name_consumer: bool = False) -> list[str]:
    """``line: code`` of each sign in ``source`` of a module that consumes Kafka by itself."""
    lines = source.splitlines()
    return [
        f"{node.lineno}: {lines[node.lineno - 1].strip()}"
        for node in ast.walk(ast.parse(source))
        if hasattr(node, "lineno")
        and (
            _makes_or_polls_a_consumer(node)
            or (_names_kafka_consumer(node) and not may_name_consumer)
        )
    ]


def _modules() -> list[Path]:
    return sorted(
        path
        for package in CHECKED
        for path in (ROOT / package).rglob("*.py")
        if not path.is_relative_to(RUNTIME)
    )


@pytest.mark.parametrize(
    "source",
    [
        "from kafka import KafkaConsumer",
        "import kafka\nc = kafka.KafkaConsumer('t')",
        "from tidemark import kafka_io\nc = kafka_io.consumer(k, 'g', 't')",
        "from tidemark.kafka_io import consumer",
        "def run(c):\n    while True:\n        batch = c.poll(timeout_ms=500)",
        "def run(c):\n    for _ in range(3):\n        c.poll(100)",
    ],
)
def test_a_services_own_poll_loop_is_found(source: str) -> None:
    assert own_poll_loops(source)


@pytest.mark.parametrize(
    "source",
    [
        "from tidemark.stream.service import run_service",
        "import subprocess\np = subprocess.Popen(['x'])\nalive = p.poll() is None",
        "from tidemark import kafka_io\nkafka_io.ensure_topics(k)",
    ],
)
def test_a_handler_of_the_runtime_passes(source: str) -> None:
    assert own_poll_loops(source) == []


def test_every_checked_package_is_walked_and_the_runtime_is_not() -> None:
    walked = {path.relative_to(ROOT).parts[0] for path in _modules()}
    assert walked == set(CHECKED)
    assert not any(path.is_relative_to(RUNTIME) for path in _modules())


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_but_the_runtime_polls_kafka(path: Path) -> None:
    assert own_poll_loops(path.read_text(), may_name_consumer=path == FACTORY) == []
