"""The ``tidemark`` command offers every sub-command and imports one only when it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tidemark.cli import app, declared_commands

EVERY_COMMAND = {
    "stack", "train", "retrain", "promote", "rollback", "models", "shadow", "serve-flows",
    "worker",
    "simulate", "score", "join", "serve", "monitor", "report", "demo", "topics", "projects",
    "init", "history", "explain",
}  # fmt: skip
runner = CliRunner()


def test_the_installed_package_declares_every_command() -> None:
    # pyproject.toml declares them; an install that missed the entry points would offer none.
    assert set(declared_commands()) | {"topics"} == EVERY_COMMAND


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    listed = {line.split()[1] for line in result.output.splitlines() if line.startswith("│ ")}
    assert listed >= EVERY_COMMAND


@pytest.mark.parametrize("command", sorted(EVERY_COMMAND))
def test_each_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], prog_name="tidemark", terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"Usage: tidemark {command} [OPTIONS]" in result.output


def test_a_renamed_command_still_runs_under_its_old_name_unlisted() -> None:
    listed = runner.invoke(app, ["--help"], terminal_width=200).output
    assert not any(line.split()[1:2] == ["challenge"] for line in listed.splitlines())
    result = runner.invoke(app, ["challenge", "--help"], prog_name="tidemark", terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Usage: tidemark challenge [OPTIONS]" in result.output
    assert "deprecated" in result.output.lower()
    # It runs the shadow command itself: here its refusal of a call with nothing to do.
    refused = runner.invoke(app, ["challenge"], terminal_width=200)
    assert refused.exit_code == 2
    assert "give a VERSION to put in shadow, or --retire" in refused.output


def test_an_unknown_command_is_refused() -> None:
    result = runner.invoke(app, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_a_command_imports_no_other_package_of_ours() -> None:
    probe = (
        "import sys\n"
        "from tidemark.cli import app\n"
        "try:\n"
        "    app(['simulate', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    loaded = set(result.stdout.splitlines()[-1].split())
    assert "streaming" in loaded
    assert loaded.isdisjoint({"flows", "serving", "monitoring", "infra", "demo"})
