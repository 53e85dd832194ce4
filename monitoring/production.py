"""The production model the monitor judges, and the drift reference that goes with it.

The monitor follows the registry's ``production`` alias with the same
:class:`tidemark.registry.watcher.ModelWatcher` as the scorers, so it switches versions when they
do. Each time the version changes it loads that version's training data (its run's
``reference/training_data.parquet``) and builds a drift detector on it, in the watcher's
thread, off the consuming loop. A version whose reference cannot be read is still judged on its
error; its drift is retried at the next window.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field

from monitoring.drift import DriftDetector
from tidemark.config import Settings
from tidemark.judging.tags import per_segment
from tidemark.logs import get_logger
from tidemark.modelling.metrics import JUDGED_METRIC
from tidemark.project.catalog import stack_catalog
from tidemark.project.spec import Project
from tidemark.registry.reader import RegistryReader, VersionRef
from tidemark.registry.watcher import ModelWatcher, ServedModel

log = get_logger("monitor.production")
# The per-segment tags of a retrained version's own error on its held-out items (named after
# the error its project judges).
HELD_OUT_ERROR_TAGS = tuple(per_segment(f"candidate_{name}", "") for name in JUDGED_METRIC.values())


@dataclass(frozen=True)
class Production:
    """A production version, the segments it was trained on, and its drift detector (None while
    its reference is unreadable)."""

    version: str
    run_id: str
    detector: DriftDetector | None
    known_segments: frozenset[str] = frozenset()
    # The version's error on its own held-out items per segment, as its tags state it (a
    # retrained version; none for a bootstrap).
    held_out: Mapping[str, float] = field(default_factory=dict)


def held_out_errors(tags: Mapping[str, str]) -> dict[str, float]:
    """Per segment, the held-out error a version's tags state (``candidate_mean_*_error.<segment>``
    of the retrain that registered it); segments without a number are left out."""
    errors = {}
    for name, value in tags.items():
        for prefix in HELD_OUT_ERROR_TAGS:
            if name.startswith(prefix):
                with suppress(ValueError):
                    errors[name.removeprefix(prefix)] = float(value)
    return errors


class ProductionFollower:
    """Keeps ``current`` on the production version, with a detector on its training data."""

    def __init__(
        self,
        settings: Settings,
        project: Project | None = None,
        watcher: ModelWatcher | None = None,
    ) -> None:
        """Follow the production version of ``project`` (the stack's default when None)."""
        self.settings = settings
        chosen = project or stack_catalog(settings.projects).default
        self.project = chosen
        self.watcher = watcher or ModelWatcher(settings.registry, chosen)
        self.watcher.add_listener(self._swapped)
        self._lock = threading.Lock()
        self.current: Production | None = None

    def start(self) -> None:
        """Check the registry now, then follow it in the background."""
        self.watcher.start()

    def stop(self) -> None:
        """Stop following the registry."""
        self.watcher.stop()

    def refresh(self) -> Production | None:
        """Ask the registry now, and retry a reference that could not be read; return current.

        The version the watcher serves is the one returned, even when the watcher's own thread
        swapped it a moment ago and is still loading its reference: a window judged meanwhile
        on the version before would raise that version's alarms after its successor was
        promoted (and start a retrain for an incident the promotion closed)."""
        self.watcher.check_now()
        served, current = self.watcher.current, self.current
        if served is not None and (
            current is None or current.version != served.version or current.detector is None
        ):
            self._swapped(served)
        return self.current

    def _swapped(self, served: ServedModel) -> None:
        with self._lock:
            done = self.current
            if done is not None and done.version == served.version and done.detector is not None:
                return  # the other thread (watcher or judge) loaded it while this one waited
            detector = None
            try:
                ref = VersionRef(served.name, served.version, served.run_id, served.tags)
                with RegistryReader(self.settings.registry) as registry:
                    reference = registry.load_reference(ref)
                detector = DriftDetector(
                    reference,
                    self.project,
                    p_value=self.settings.monitor.drift_p_value,
                    drift_share=self.settings.monitor.drift_share,
                    max_reference_rows=self.settings.monitor.reference_rows,
                )
            except Exception as error:  # no reference must not stop the error monitoring
                log.warning(
                    "no drift reference for this version; judging its error only",
                    version=served.version,
                    error=f"{type(error).__name__}: {error}"[:300],
                )
            self.current = Production(
                served.version,
                served.run_id,
                detector,
                served.segments or frozenset(),
                held_out_errors(served.tags),
            )
            log.info(
                "judging production version",
                version=served.version,
                reference_rows=detector.reference_rows if detector else 0,
            )
