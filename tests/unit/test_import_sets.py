"""Each command imports what it runs: the import set of the light commands is pinned.

Every case runs one command in a fresh interpreter, through typer's test runner, and reads
``sys.modules`` afterwards. The streaming commands run for real against a broker that is not
there (port 1), so their whole body runs up to the first Kafka call, which fails at once: what
they import is what they would import in service. ``stack status`` reads a stack that is not
running. Each goes through the ``tidemark`` dispatcher itself, so the test pins what a person's
command line really loads.
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
from tidemark.cli import app

result = CliRunner().invoke(app, {args!r})
print(json.dumps({{
    "modules": sorted(sys.modules),
    "exit_code": result.exit_code,
    "exception": type(result.exception).__name__ if result.exception else None,
    "output": result.output[-2000:],
}}))
"""

# The commands run in a temporary folder: the projects are the repository's.
PROJECTS = str(Path(__file__).resolve().parents[2] / "projects")
MODEL_STACK = ("mlflow", "sklearn", "scipy")
DATA_STACK = (*MODEL_STACK, "pandas", "pyarrow")
SERVICES = ("prefect", "evidently", "matplotlib")

# (arguments of `tidemark`, packages the command must not import, what stops it)
CASES = [
    (["simulate", "--limit", "1", "--no-progress", "--projects", PROJECTS],
     (*DATA_STACK, *SERVICES), "KafkaTimeoutError"),
    (["simulate", "--project", "fish-weight", "--project", "penguin-mass", "--limit", "1",
      "--no-progress", "--projects", PROJECTS], (*DATA_STACK, *SERVICES), "KafkaTimeoutError"),
    (["join"], (*DATA_STACK, *SERVICES), "KafkaTimeoutError"),
    (["score"], ("mlflow", *SERVICES), "KafkaTimeoutError"),
    (["serve", "--help"], (*DATA_STACK, *SERVICES), None),
    (["monitor", "--help"], (*DATA_STACK, *SERVICES), None),
    (["stack", "status"], (*DATA_STACK, *SERVICES), "SystemExit"),
    (["train", "--help"], (*DATA_STACK, *SERVICES), None),
]  # fmt: skip


def _run(args: list[str], state: Path) -> dict[str, object]:
    env = {
        **os.environ,
        "TIDEMARK_STACK_STATE_DIR": str(state),
        "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "TIDEMARK_KAFKA_CLIENT_TIMEOUT_MS": "1000",
        "TIDEMARK_REGISTRY_TRACKING_URI": "http://127.0.0.1:1",
        "TIDEMARK_PROJECTS_DIR": str(Path(__file__).resolve().parents[2] / "projects"),
    }
    done = subprocess.run(
        [sys.executable, "-c", _RUN.format(args=args)],
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
    ("args", "forbidden", "stopped_by"),
    [pytest.param(*case, id=" ".join(case[0][:2])) for case in CASES],
)
def test_a_command_imports_only_what_it_runs(
    tmp_path: Path,
    args: list[str],
    forbidden: tuple[str, ...],
    stopped_by: str | None,
) -> None:
    result = _run(args, tmp_path)
    # The command ran as far as it should (its body up to Kafka, or its help or status).
    assert result["exception"] == stopped_by, result["output"]
    modules = result["modules"]
    assert isinstance(modules, list)
    roots = {m.split(".")[0] for m in modules}
    assert not roots & set(forbidden), f"imports {sorted(roots & set(forbidden))}"
