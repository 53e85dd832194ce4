"""Where worker processes meet their metrics: prometheus-client's ``PROMETHEUS_MULTIPROC_DIR``.

The variable must be set before prometheus-client is imported (it then makes every metric a
file there), so this module imports nothing of it: ``tidemark serve`` prepares the folder here
before any worker starts, and serving.metrics reads it back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def shared_metrics_dir() -> str | None:
    """The folder where this process writes its metrics, or None for in-memory ones."""
    return os.environ.get(MULTIPROC_DIR_ENV) or None


@contextmanager
def metrics_dir_for(workers: int) -> Iterator[None]:
    """The folder where the workers write their metrics, emptied of an earlier run's.

    ``PROMETHEUS_MULTIPROC_DIR`` if set (``make up`` gives each stack its own); otherwise, with
    several workers, a temporary folder removed at exit; one worker alone keeps its metrics in
    memory.
    """
    given = shared_metrics_dir()
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        # Files of processes that are gone would add their counts to this run's.
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield
    elif workers > 1:
        with tempfile.TemporaryDirectory(prefix="tidemark-serving-metrics-") as folder_name:
            os.environ[MULTIPROC_DIR_ENV] = folder_name
            try:
                yield
            finally:
                del os.environ[MULTIPROC_DIR_ENV]
    else:
        yield
