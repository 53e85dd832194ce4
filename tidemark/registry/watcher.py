"""Follow a registry alias and hot-swap the model that a process serves.

The server and every scorer hold one :class:`ModelWatcher`. A background thread asks the MLflow
registry, every few seconds, which version the ``production`` alias points at; when it changes
(a promotion or a rollback) the new version is loaded in that thread and swapped in with a single
assignment, so a request or a batch never waits for a load and never sees half a model. When the
registry cannot be reached the last loaded model keeps serving and the watcher says why.

A scorer holds a second watcher on the ``challenger`` alias (the version in shadow). That alias
comes and goes: when it is removed the watcher drops its model, so the scorer stops shadowing;
the production watcher never drops a model, a missing production alias being a registry fault.

The registry is read through :class:`tidemark.registry.reader.RegistryReader` (MLflow's REST API,
a short timeout of our own, the model from its skops file), not the MLflow client, whose import
alone would double a scorer's memory. A loaded version is swapped in only if the alias still
points at it once it is loaded, so a process never serves a version the alias has left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tidemark.config import RegistrySettings
from tidemark.logs import get_logger
from tidemark.modelling.default import known_segments
from tidemark.modelling.fast import FastForm
from tidemark.modelling.predictions import Predictions
from tidemark.modelling.training import predict as pipeline_predict
from tidemark.project.spec import Project
from tidemark.registry.reader import RegistryReader, RegistryUnavailableError, VersionRef
from tidemark.schemas import utc_now

if TYPE_CHECKING:
    import pandas as pd

log = get_logger("model_watcher")


@dataclass(frozen=True)
class ServedModel:
    """One loaded version of a project's registered model, as a process serves it."""

    name: str
    version: str
    run_id: str
    model: Any
    project: Project
    # The segments the model has its own law for (None: a user's model that does not say).
    segments: frozenset[str] | None
    loaded_at: datetime
    tags: dict[str, str] = field(default_factory=dict)
    # The default model's fast form, checked against the pipeline when loaded (None: served by
    # its pipeline).
    fast: FastForm | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            fast = FastForm.derive(self.project, self.model)
        except Exception:  # not a default model: its pipeline answers
            fast = None
        object.__setattr__(self, "fast", fast)

    def predict(self, frame: pd.DataFrame) -> Predictions:
        """Predictions for a whole frame of items by the pipeline, with unknown segments
        flagged; raises ``DataError`` like ``tidemark.modelling.training.predict``. Callers on
        a hot path use ``fast`` where there is one (the same answers without the pipeline's
        fixed cost per call, about 11 ms)."""
        return pipeline_predict(self.project, self.model, frame, segments=self.segments)


__all__ = ["ModelWatcher", "RegistryUnavailableError", "ServedModel"]

Listener = Callable[[ServedModel], None]


class ModelWatcher:
    """Keeps ``current`` on the version that an alias (production by default) points at."""

    def __init__(
        self,
        registry: RegistrySettings,
        project: Project,
        poll_interval_s: float | None = None,
        alias: str | None = None,
    ) -> None:
        self.registry = registry
        self.project = project
        self.alias = alias or registry.production_alias
        self.poll_interval_s = (
            registry.poll_interval_s if poll_interval_s is None else poll_interval_s
        )
        self.current: ServedModel | None = None
        self.registry_ok = False
        self.last_error: str | None = None
        self.last_checked_at: datetime | None = None
        self._listeners: list[Listener] = []
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registry = RegistryReader(registry)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with the new model after every swap (in the watcher's thread)."""
        self._listeners.append(listener)

    def check_now(self) -> bool:
        """Ask the registry once; load and swap if production moved. True when it swapped."""
        with self._check_lock:
            try:
                target = self._registry.alias(self.alias)
            except RegistryUnavailableError as error:
                self._unreachable(str(error))
                return False
            self.registry_ok, self.last_error = True, None
            self.last_checked_at = utc_now()
            if target is None and self.current and self.alias != self.registry.production_alias:
                log.info(
                    "alias removed; model dropped", alias=self.alias, version=self.current.version
                )
                self.current = None
                return False
            if target is None or (self.current and self.current.version == target.version):
                return False
            try:
                loaded = self._load(target)
            except Exception as error:  # a broken artifact must not stop the old model serving
                self._unreachable(f"loading version {target.version} failed: {error}")
                return False
            if not self._still_production(target):
                return False
            previous, self.current = self.current, loaded
            log.info(
                "model swapped",
                alias=self.alias,
                model=loaded.name,
                version=loaded.version,
                previous=previous.version if previous else None,
            )
        for listener in self._listeners:
            try:
                listener(loaded)
            except Exception:  # one faulty listener must not stop the watching
                log.exception("model swap listener failed", version=loaded.version)
        return True

    def start(self) -> None:
        """Check once now, then keep checking in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self.check_now()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; the current model stays loaded."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.registry.timeout_s + 1)
            self._thread = None

    def wait_for_model(self, timeout_s: float) -> ServedModel:
        """Block until a production model is loaded; raises ``TimeoutError`` after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while self.current is None:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no production version of {self.registry.model_name} after "
                    f"{timeout_s:.0f} s ({self.last_error or 'the registry has none yet'})"
                )
            if not self.check_now():
                self._stop.wait(min(self.poll_interval_s, 1.0))
        return self.current

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.check_now()

    def _unreachable(self, reason: str) -> None:
        if self.registry_ok or self.last_error != reason:
            log.warning(
                "registry check failed; serving the last loaded model",
                reason=reason,
                version=self.current.version if self.current else None,
            )
        self.registry_ok, self.last_error = False, reason
        self.last_checked_at = utc_now()

    def _still_production(self, target: VersionRef) -> bool:
        try:
            now = self._registry.alias(self.alias)
        except RegistryUnavailableError as error:
            self._unreachable(str(error))
            return False
        if now is None or now.version != target.version:
            # Promoted or rolled back while loading: the next check loads what it points at now.
            log.info(
                "alias moved while loading; not swapping",
                alias=self.alias,
                loaded=target.version,
                now=now.version if now else None,
            )
            return False
        return True

    def _load(self, target: VersionRef) -> ServedModel:
        pipeline = self._registry.load_model(target)
        return ServedModel(
            name=target.name,
            version=target.version,
            run_id=target.run_id,
            model=pipeline,
            project=self.project,
            segments=known_segments(self.project, pipeline),
            loaded_at=utc_now(),
            tags=target.tags,
        )
