"""The models of the stack's other projects, followed in the registry, for ``/models/{name}/…``.

The default project's model is the one ``/predict`` answers with (``serving.active_model``,
its own watcher and fast path, untouched). Every other project's production version is followed
here by one background thread that asks the registry at the settings' pace, loads a version
that the alias newly names (from its skops file, never unpickled) and swaps it in with one
assignment; its fast form (``tidemark.modelling.fast``) answers when it matches the pipeline.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from serving.active_model import VERSION_HEADER
from serving.projects import ServedProject
from tidemark.logs import get_logger
from tidemark.modelling.fast import FastForm
from tidemark.modelling.frames import DataError, frame_of
from tidemark.modelling.predictions import Predictions, no_usable_value, unusable
from tidemark.modelling.training import predict
from tidemark.registry.reader import RegistryReader, RegistryUnavailableError

log = get_logger("serving.projects")


@dataclass(frozen=True)
class ProjectVersion:
    """One loaded production version of a project's model."""

    served: ServedProject
    version: str
    run_id: str
    model: Any
    fast: FastForm | None
    loaded_at: datetime
    # The ``x-model-version`` header as the wire has it, built once per version.
    version_header: tuple[bytes, bytes]

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> Predictions:
        """Predictions for validated request rows (feature values by name), in order.

        Raises ``DataError`` when a row gives no usable value (out of any plausible range).
        """
        project = self.served.project
        if self.fast is not None:
            result = self.fast.predict_rows(rows)
            bad = unusable(project, result.values)
            if bad.any():
                raise DataError(no_usable_value(project, str([int(i) for i in bad.nonzero()[0]])))
            return result
        return predict(project, self.model, frame_of(project, rows))


class ProjectModels:
    """Follows the production alias of each project but the default one, in one thread."""

    def __init__(
        self, projects: Sequence[ServedProject], poll_interval_s: float, *, follow: bool = True
    ) -> None:
        self.projects = [p for p in projects if not p.default]
        self.poll_interval_s = poll_interval_s
        # False: nothing is read from the registry; models come through ``swap`` only.
        self.follow = follow
        self._current: dict[str, ProjectVersion] = {}
        self.errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self, name: str) -> ProjectVersion | None:
        """The loaded production version of project ``name``, or None before there is one."""
        return self._current.get(name)

    def start(self) -> None:
        """Load each production version, then keep following the registry in a daemon thread."""
        if not self.follow or not self.projects or self._thread is not None:
            return
        self.check_now()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="project-models", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following the registry; loaded models stay."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_interval_s + 30)
            self._thread = None

    def check_now(self) -> None:
        """Ask the registry once for each project; load and swap the versions that changed."""
        for served in self.projects:
            try:
                self._check(served)
            except Exception as error:  # one project's fault must not stop the others
                reason = f"{type(error).__name__}: {error}"
                if self.errors.get(served.name) != reason:
                    log.warning("project model check failed", project=served.name, reason=reason)
                self.errors[served.name] = reason
            else:
                self.errors.pop(served.name, None)

    def _check(self, served: ServedProject) -> None:
        with RegistryReader(served.settings.registry) as reader:
            ref = reader.alias()
            current = self._current.get(served.name)
            if ref is None or (current is not None and current.version == ref.version):
                return
            pipeline = reader.load_model(ref)
            now = reader.alias()
        if now is None or now.version != ref.version:
            return  # moved while loading: the next check loads what it names now
        self.swap(served, ref.version, ref.run_id, pipeline)

    def swap(self, served: ServedProject, version: str, run_id: str, model: Any) -> ProjectVersion:
        """Serve ``model`` as ``version`` of ``served``'s project from now on (one assignment),
        with its fast form when it has one."""
        loaded = ProjectVersion(
            served=served,
            version=version,
            run_id=run_id,
            model=model,
            fast=FastForm.derive(served.project, model),
            loaded_at=datetime.now(UTC),
            version_header=(VERSION_HEADER, version.encode("latin-1")),
        )
        self._current[served.name] = loaded
        log.info("project model swapped", project=served.name, version=version)
        return loaded

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.check_now()


__all__ = ["ProjectModels", "ProjectVersion", "RegistryUnavailableError"]
