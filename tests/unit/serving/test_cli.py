"""``tidemark serve``: one process, or N workers on one port that meet their metrics in a folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi import FastAPI
from typer.testing import CliRunner

from serving import cli
from tidemark.config import get_settings

MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """What ``serve`` would have run uvicorn with, and the metrics folder at that moment."""
    calls: list[dict[str, Any]] = []

    def run_uvicorn(app: Any, host: str, port: int, workers: int, *, factory: bool = False) -> None:
        folder = os.environ.get(MULTIPROC)
        calls.append(
            {
                "app": app,
                "workers": workers,
                "factory": factory,
                "folder": folder,
                "files": sorted(p.name for p in Path(folder).iterdir()) if folder else None,
            }
        )

    monkeypatch.setattr(cli, "run_uvicorn", run_uvicorn)
    monkeypatch.delenv(MULTIPROC, raising=False)
    monkeypatch.delenv("TIDEMARK_SERVING_WORKERS", raising=False)
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def _serve(*args: str) -> None:
    app = typer.Typer()
    app.command()(cli.serve)
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def test_one_worker_runs_the_app_in_process_with_its_metrics_in_memory(
    runs: list[dict[str, Any]],
) -> None:
    _serve()
    (run,) = runs
    assert isinstance(run["app"], FastAPI)
    assert (run["workers"], run["factory"], run["folder"]) == (1, False, None)


def test_workers_build_their_own_app_and_share_a_temporary_metrics_folder(
    runs: list[dict[str, Any]],
) -> None:
    _serve("--workers", "2")
    (run,) = runs
    assert (run["app"], run["workers"], run["factory"]) == ("serving.app:create_app", 2, True)
    assert run["folder"] is not None
    assert run["files"] == []
    assert not Path(run["folder"]).exists()
    assert MULTIPROC not in os.environ


def test_the_setting_gives_the_workers(
    runs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEMARK_SERVING_WORKERS", "3")
    _serve()
    assert runs[0]["workers"] == 3


def test_a_given_metrics_folder_is_emptied_of_an_earlier_runs_files(
    runs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "serving-metrics"
    folder.mkdir()
    (folder / "counter_4242.db").write_bytes(b"stale")
    (folder / "notes.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC, str(folder))
    _serve("--workers", "2")
    assert runs[0]["folder"] == str(folder)
    assert runs[0]["files"] == ["notes.txt"]
