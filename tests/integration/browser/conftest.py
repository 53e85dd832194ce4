"""What a person sees: the platform's pages in headless Chromium, against the session's stack.

The module trains the first version with the platform's own flow (so the registry holds a
production version with its decision), serves the four Prefect deployments, the model server
and an Evidently UI on a workspace of judged windows, and opens each page in Debian's Chromium
through Playwright (no browser download: ``make test`` installs the system package).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from flows.train import train
from infra.local.components import venv_bin
from infra.local.stack import Stack
from monitoring.coverage import CoverageBook
from monitoring.drift import DriftDetector, features_frame
from monitoring.reports import ReportStore, WindowOutcome, WindowVerdict
from monitoring.windows import ClosedWindow
from tests.integration.monitoring.fish import CONTRACTS, PER_WINDOW, scored_fish
from tests.pictures import assert_picture
from tidemark.config import Settings, get_settings
from tidemark.orchestration import deployments_ready, prefect_api
from tidemark.project.spec import ErrorKind
from tidemark.registry import writer as registry

CHROMIUM = Path("/usr/bin/chromium")
# Short waits: a page that has not shown its content by then is what a person would see.
PAGE_TIMEOUT_MS = 30_000
expect.set_options(timeout=PAGE_TIMEOUT_MS)


def _env(settings: Settings) -> dict[str, str]:
    return {
        "TIDEMARK_STORE_URI": settings.store.uri,
        "TIDEMARK_REGISTRY_TRACKING_URI": settings.registry.tracking_uri,
        "TIDEMARK_ORCHESTRATION_API_URL": settings.orchestration.api_url,
        "TIDEMARK_REGISTRY_MODEL_NAME": settings.registry.model_name,
        "TIDEMARK_STORE_COLLECTION": settings.store.collection,
        "TIDEMARK_REGISTRY_EXPERIMENT": settings.registry.experiment,
        "TIDEMARK_SERVING_HOST": settings.serving.host,
        "TIDEMARK_SERVING_PORT": str(settings.serving.port),
    }


# A guard against a process that never comes up, not a timing: a busy machine takes minutes.
START_TIMEOUT_S = 600


def _wait(condition: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{process.args!r} never became ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def _ready(settings: Settings) -> Callable[[], bool]:
    def check() -> bool:
        try:
            deployments_ready(settings.orchestration)
        except Exception:  # not registered or not polled yet
            return False
        return True

    return check


@pytest.fixture(scope="module")
def settings(stack: Stack) -> Iterator[Settings]:
    """The stack's settings with a model, collection and experiment of this module's own."""
    mine = stack.settings.override(
        registry_model_name="fish-weight-browser",
        store_collection="training_data_browser",
        registry_experiment="browser",
    )
    with pytest.MonkeyPatch.context() as patch:
        for key, value in _env(mine).items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        with prefect_api(mine.orchestration):
            yield mine
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def production(settings: Settings) -> str:
    """Version 1, trained and promoted by the platform's train flow (what `make up` runs)."""
    outcome = train(seed=42)
    assert outcome.decision == "promoted"
    assert outcome.version is not None
    return outcome.version


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Path]]:
    """Start a process with a log of its own; every one is stopped at the end of the module."""
    started: list[subprocess.Popen[bytes]] = []
    folder = tmp_path_factory.mktemp("browser-processes")

    def start(
        name: str, command: list[str], env: dict[str, str], ready: Callable[[], bool]
    ) -> Path:
        log = folder / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, env=os.environ | env, cwd=folder, stdout=out, stderr=subprocess.STDOUT
            )
        started.append(process)
        _wait(ready, process, log)
        return log

    yield start
    for process in reversed(started):
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def flows_served(
    settings: Settings, processes: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``tidemark serve-flows``: the four deployments, registered and polled."""
    processes(
        "serve-flows",
        [sys.executable, "-m", "tidemark", "serve-flows"],
        _env(settings)
        | {
            "PREFECT_API_URL": settings.orchestration.api_url,
            "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        },
        _ready(settings),
    )


@pytest.fixture(scope="module")
def api(settings: Settings, production: str, processes: Callable[..., Path]) -> str:
    """``tidemark serve`` on the production version; its base URL."""
    url = settings.serving.url
    processes("serve", [venv_bin("tidemark"), "serve"], _env(settings), _answers(f"{url}/ready"))
    return url


@pytest.fixture(scope="module")
def evidently_ui(
    settings: Settings,
    production: str,
    processes: Callable[..., Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """``evidently ui`` on a workspace where the monitor's store recorded a few judged windows."""
    workspace = tmp_path_factory.mktemp("evidently")
    store = ReportStore(settings.override(monitor_evidently_workspace=workspace), CONTRACTS.project)
    model = registry.load_model(settings.registry, production)
    detector = DriftDetector(
        registry.load_reference(settings.registry, production),
        CONTRACTS.project,
        p_value=settings.monitor.drift_p_value,
        drift_share=settings.monitor.drift_share,
    )
    size = timedelta(seconds=settings.monitor.window_s)
    first = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    fish = scored_fish(model, production, "salmon", 3, first, settings) + scored_fish(
        model, production, "walleye", 3, first + 3 * size, settings
    )
    # Every fish predicted; the truth of a quarter of the last two windows' fish never came.
    book = CoverageBook(settings.monitor.window_s, settings.stream.join_window_s)
    for item in fish:
        book.predicted(item.prediction)
    for i in range(6):
        start = first + i * size
        records = fish[i * PER_WINDOW : (i + 1) * PER_WINDOW]
        for n, item in enumerate(records):
            if i < 4 or n % 4:
                book.joined(item)
        coverage = book.close(start)
        window = ClosedWindow.of(start, start + size, records, ErrorKind.RELATIVE)
        # Walleye windows hold no species of the salmon model's training data: no drift test.
        features = features_frame(records, CONTRACTS.project)
        comparable = detector.comparable(features)
        drift = None if comparable.empty else detector.check(features, timestamp=window.end)
        error = window.overall.judged
        ok = error <= settings.monitor.error_threshold
        note = coverage.note(settings.monitor.coverage_floor)
        verdict = (
            WindowVerdict.HELD_BACK
            if not ok
            else (WindowVerdict.NOT_JUDGED if note else WindowVerdict.OK)
        )
        reason = note if ok and note else f"error {error:.3f}"
        store.record(WindowOutcome(window, production, verdict, reason, drift, coverage))
    url = f"http://127.0.0.1:{settings.stack.evidently_ui_port}"
    processes(
        "evidently",
        [venv_bin("evidently"), "ui", "--host", "127.0.0.1", "--port",
         str(settings.stack.evidently_ui_port), "--workspace", str(workspace)],
        {},
        _answers(f"{url}/api/projects"),
    )  # fmt: skip
    return url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    assert CHROMIUM.exists(), "no /usr/bin/chromium: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page of a laptop's size."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


class Screenshot(Protocol):
    """The ``screenshot`` fixture: saves what a page shows now as ``NAME.png``."""

    def __call__(self, page: Page, name: str, *, full_page: bool = False) -> Path: ...


@pytest.fixture(scope="session")
def screenshot(pytestconfig: pytest.Config) -> Screenshot:
    """Save what the page shows now as NAME.png in the ``--screenshots`` folder (git-ignored
    build/screenshots unless `make screenshots` asks for docs/screenshots, the README's), and
    check that the picture shows something: a page's size, and not one colour."""
    folder: Path = pytestconfig.getoption("screenshots")

    def take(page: Page, name: str, *, full_page: bool = False) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        assert_picture(path, min_width=page.viewport_size["width"] if page.viewport_size else 1)
        return path

    return take
