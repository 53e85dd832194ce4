"""The model this server answers with, following a model source (the registry watcher).

Each loaded version is wrapped once, off the request path, with its fast path; requests read
one reference, so a batch is always answered by a single version and a swap is one assignment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tidemark.logs import get_logger
from tidemark.modelling.fast import FastForm
from tidemark.modelling.frames import DataError, frame_of
from tidemark.modelling.predictions import no_usable_value, unusable, usable
from tidemark.registry.watcher import ServedModel

log = get_logger("serving")

# Names the version that answered, on every response (serving.middleware adds it where a
# route did not).
VERSION_HEADER = b"x-model-version"


class ModelSource(Protocol):
    """What the server needs from tidemark.registry.watcher.ModelWatcher."""

    @property
    def current(self) -> ServedModel | None:
        """The loaded production model, or None before there is one."""

    @property
    def registry_ok(self) -> bool:
        """Whether the last registry check succeeded."""

    @property
    def last_error(self) -> str | None:
        """Why the last check failed."""

    @property
    def last_checked_at(self) -> datetime | None:
        """When the registry was last asked."""

    def check_now(self) -> bool:
        """Ask the registry once; True when a new version was swapped in."""

    def start(self) -> None:
        """Load the production model if there is one, then follow the registry."""

    def stop(self) -> None:
        """Stop following the registry."""

    def add_listener(self, listener: Callable[[ServedModel], None]) -> None:
        """Be told about every swap."""


@dataclass(frozen=True, slots=True)
class ActiveModel:
    """A served model, its fast form (None when the model is not a default model), and what
    every answer of this version carries, built once at the swap rather than per request."""

    served: ServedModel
    fast: FastForm | None
    # The ``x-model-version`` header as the wire has it.
    version_header: tuple[bytes, bytes]

    @classmethod
    def of(cls, served: ServedModel) -> ActiveModel:
        """Wrap a freshly loaded version with the fast path it derived and verified."""
        return cls(
            served,
            served.fast,
            (VERSION_HEADER, served.version.encode("latin-1")),
        )

    def predict_one(self, fields: Mapping[str, Any]) -> tuple[float, bool]:
        """One item's prediction (by its fields' names) and whether its segment is known;
        ``DataError`` as below."""
        if self.fast is None:
            values, known = self.predict([fields])
            return values[0], known[0]
        value, is_known = self.fast.predict_one(fields)
        if not usable(self.served.project, value):
            raise DataError(no_usable_value(self.served.project, "[0]"))
        return value, is_known

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[bool]]:
        """Predictions for the items in order (each its fields by name, an absent optional
        one missing or None), and whether each one's segment is known.

        Raises ``DataError`` when features give no usable value (out of the target's bounds
        of sign, or not finite).
        """
        if self.fast is not None:
            result = self.fast.predict_rows(rows)
        else:
            result = self.served.predict(frame_of(self.served.project, rows))
        bad = unusable(self.served.project, result.values)
        if bad.any():
            raise DataError(
                no_usable_value(self.served.project, str([int(i) for i in bad.nonzero()[0]]))
            )
        return result.values.tolist(), result.segment_known.tolist()


class ModelHolder:
    """Keeps ``active`` on the source's current model; swaps are single assignments."""

    def __init__(self, source: ModelSource) -> None:
        self.source = source
        self.swaps = 0
        self._active: ActiveModel | None = None
        source.add_listener(self._follow)
        current = source.current
        if current is not None:
            self._follow(current)

    @property
    def active(self) -> ActiveModel | None:
        """The model to answer with, or None while no production model exists."""
        return self._active

    def _follow(self, served: ServedModel) -> None:
        previous = self._active
        if previous is not None and previous.served is served:
            return
        active = ActiveModel.of(served)
        self._active = active
        self.swaps += 1
        log.info(
            "serving model",
            model=served.name,
            version=served.version,
            previous=previous.served.version if previous else None,
            fast_path=active.fast is not None,
        )
