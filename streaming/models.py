"""A registered version as the scorer uses it for any project: the project's predictions of a
batch of items, from the version's fitted estimator.

The registry watcher loads a version's estimator; :class:`ProjectModel` answers for a batch of
the loop's items with the project's :class:`~tidemark.modelling.predictions.Predictions`. The
default model's fast form (:class:`~tidemark.modelling.fast.FastForm`, derived once per
version and used only where it proves equal to the pipeline) spares the pipeline's fixed cost
per call; any other estimator is asked through the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tidemark.modelling.fast import FastForm
from tidemark.modelling.frames import DataError, frame_of
from tidemark.modelling.predictions import Predictions, no_usable_value, unusable
from tidemark.modelling.training import predict as pipeline_predict
from tidemark.project.contracts import Item
from tidemark.project.spec import Project


class LoadedVersion(Protocol):
    """What the scorer reads of a loaded version (the registry watcher's ``ServedModel``)."""

    @property
    def name(self) -> str:
        """Registered model name."""

    @property
    def version(self) -> str:
        """Registered version."""

    @property
    def model(self) -> Any:
        """The fitted estimator."""


def _segments_of(project: Project, loaded: LoadedVersion) -> frozenset[str] | None:
    # A loaded version says which segments its training saw (the watcher reads them from the
    # fitted model); a version that says nothing leaves them to the estimator.
    for attribute in ("segments", "known_segments", f"known_{project.segment}"):
        found = getattr(loaded, attribute, None)
        if isinstance(found, frozenset):
            return found
    return None


@dataclass(frozen=True)
class ProjectModel:
    """One loaded version predicting a project's items."""

    project: Project
    loaded: LoadedVersion
    fast: FastForm | None = field(default=None, compare=False)

    @classmethod
    def of(cls, project: Project, loaded: LoadedVersion) -> ProjectModel:
        """The version, with its fast form when it has one that matches its pipeline."""
        try:
            fast = FastForm.derive(project, loaded.model)
        except Exception:  # not a default model: the pipeline answers
            fast = None
        return cls(project, loaded, fast)

    @property
    def name(self) -> str:
        """Registered model name."""
        return self.loaded.name

    @property
    def version(self) -> str:
        """Registered version."""
        return self.loaded.version

    def predict(self, items: Sequence[Item]) -> Predictions:
        """The predictions of these items, in order; ``DataError`` when one is unusable."""
        if self.fast is not None:
            return self.fast.predict_rows([item.fields for item in items])
        frame = frame_of(self.project, items)
        segments = _segments_of(self.project, self.loaded) if self.project.segment else None
        result = pipeline_predict(self.project, self.loaded.model, frame, segments=segments)
        bad = unusable(self.project, result.values)
        if bad.any():
            raise DataError(no_usable_value(self.project, str(np.flatnonzero(bad).tolist())))
        return result


class Adapted:
    """The :class:`ProjectModel` of whatever version a source serves now, derived once each."""

    def __init__(self, project: Project, source: Callable[[], LoadedVersion | None]) -> None:
        self._project = project
        self._source = source
        self._last: tuple[LoadedVersion, ProjectModel] | None = None

    def __call__(self) -> ProjectModel | None:
        """The version served now, as a project model (None while there is none)."""
        loaded = self._source()
        if loaded is None:
            return None
        if self._last is None or self._last[0] is not loaded:
            self._last = (loaded, ProjectModel.of(self._project, loaded))
        return self._last[1]
