"""Fixtures shared by every kind of test."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.leftovers import kill_leftovers, mark_run


@pytest.fixture
def measurement() -> dict[str, Any]:
    """A typical salmon, as the line measures it: the fields of an input of the fish project
    (projects/fish-weight.toml), as JSON has them."""
    return {
        "fish_id": "fish-0001",
        "species": "salmon",
        "length_cm": 70.0,
        "height_cm": 17.0,
        "measured_at": "2026-11-25T12:00:00Z",
    }


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """A command run through typer's test runner configures logging onto the runner's own
    stream, which is closed afterwards: later tests must not log into it."""
    handlers = logging.getLogger().handlers[:]
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = handlers


# Where the browser tests save their screenshots: git ignores it, so that a checkout stays clean
# after its tests; `make screenshots` passes docs/screenshots to refresh the README's pictures.
DEFAULT_SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--screenshots DIR``: the folder the browser tests write their pictures to."""
    parser.addoption(
        "--screenshots",
        type=Path,
        default=DEFAULT_SCREENSHOTS,
        help="folder for the browser tests' screenshots (default: build/screenshots)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the real stack, and is marked so."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """The run's own mark (tests/leftovers.py), before it starts any process; an xdist worker
    keeps its controller's, so that the controller finds what the worker left."""
    if not _is_xdist_worker(config):
        mark_run()


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Iterator[None]:
    """Once the fixtures are torn down and xdist's workers are gone: kill and name whatever
    process of the run still runs (an interrupted run's stack, say)."""
    result = yield
    if not _is_xdist_worker(session.config):
        killed = kill_leftovers()
        if killed:
            sys.stderr.write(
                f"\nkilled {len(killed)} processes that this test run left behind:\n  "
                + "\n  ".join(killed)
                + "\n"
            )
    return result
