"""Each command imports what it runs: the import set of the light commands is pinned.

Every case runs one command in a fresh interpreter, through typer's test runner, and reads
``sys.modules`` afterwards. The streaming commands run for real against a broker that is not
there (port 1), so their whole body runs up to the first Kafka call, which fails at once: what
they import is what they would import in service. ``stack status`` reads a stack that is not
running. The commands are taken from their own modules, whatever the ``tidemark`` dispatcher
does, so the test pins the commands and not the dispatcher.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_RUN = """
import json, sys
import typer
from typer.testing import CliRunner
from {module} import {name} as target

if isinstance(target, typer.Typer):
    app = target
else:
    app = typer.Typer()
    app.command()(target)
result = CliRunner().invoke(app, {args!r})
print(json.dumps({{
    "modules": sorted(sys.modules),
    "exit_code": result.exit_code,
    "exception": type(result.exception).__name__ if result.exception else None,
    "output": result.output[-2000:],
}}))
"""

MODEL_STACK = ("mlflow", "sklearn", "scipy")
DATA_STACK = (*MODEL_STACK, "pandas", "pyarrow")
SERVICES = ("prefect", "evidently", "matplotlib")

# (command, module, attribute, arguments, packages it must not import, what stops it)
CASES = [
    ("simulate", "streaming.cli", "simulate", ["--limit", "1", "--no-progress"],
     (*DATA_STACK, *SERVICES), "KafkaTimeoutError"),
    ("join", "streaming.cli", "join", [], (*DATA_STACK, *SERVICES), "KafkaTimeoutError"),
    ("score", "streaming.cli", "score", [], ("mlflow", *SERVICES), "KafkaTimeoutError"),
    ("serve --help", "serving.cli", "serve", ["--help"], (*DATA_STACK, *SERVICES), None),
    ("monitor --help", "monitoring.cli", "monitor", ["--help"], (*DATA_STACK, *SERVICES), None),
    ("stack status", "infra.local.cli", "app", ["status"], (*DATA_STACK, *SERVICES), "SystemExit"),
    ("train --help", "flows.cli", "app", ["train", "--help"], (*DATA_STACK, *SERVICES), None),
]  # fmt: skip


def _run(module: str, name: str, args: list[str], state: Path) -> dict[str, object]:
    env = {
        **os.environ,
        "TIDEMARK_STATE_DIR": str(state),
        "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "TIDEMARK_KAFKA_CLIENT_TIMEOUT_MS": "1000",
        "TIDEMARK_MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
    }
    done = subprocess.run(
        [sys.executable, "-c", _RUN.format(module=module, name=name, args=args)],
        env=env,
        cwd=state,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("module", "name", "args", "forbidden", "stopped_by"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_a_command_imports_only_what_it_runs(
    tmp_path: Path,
    module: str,
    name: str,
    args: list[str],
    forbidden: tuple[str, ...],
    stopped_by: str | None,
) -> None:
    result = _run(module, name, args, tmp_path)
    # The command ran as far as it should (its body up to Kafka, or its help or status).
    assert result["exception"] == stopped_by, result["output"]
    modules = result["modules"]
    assert isinstance(modules, list)
    roots = {m.split(".")[0] for m in modules}
    assert not roots & set(forbidden), f"imports {sorted(roots & set(forbidden))}"
