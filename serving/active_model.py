"""The model this server answers with, following a model source (the registry watcher).

Each loaded version is wrapped once, off the request path, with its fast path; requests read
one reference, so a batch is always answered by a single version and a swap is one assignment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import pandas as pd

from serving.schemas import Fish
from tidemark.fast_path import LogLinearPredictor
from tidemark.logs import get_logger
from tidemark.model import FEATURES, DataError
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
    """A served model, its fast path (None when the model is not log-linear), and what every
    answer of this version carries, built once at the swap rather than per request."""

    served: ServedModel
    fast: LogLinearPredictor | None
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

    def predict_one(self, fish: Fish) -> tuple[float, bool]:
        """One fish's weight (kg) and whether its species is known; ``DataError`` as below."""
        if self.fast is None:
            weights, known = self.predict([fish])
            return weights[0], known[0]
        weight, is_known = self.fast.predict_one(fish.species, fish.length_cm, fish.height_cm)
        # NaN fails both comparisons, so it is caught too.
        if not 0.0 < weight < math.inf:
            raise DataError("sizes out of any plausible range give no usable weight at [0]")
        return weight, is_known

    def predict(self, fish: Sequence[Fish]) -> tuple[list[float], list[bool]]:
        """Weights (kg) of the fish in order, and whether each species is known.

        Raises ``DataError`` when a size gives no usable (positive, finite) weight.
        """
        species = [f.species for f in fish]
        length = [f.length_cm for f in fish]
        height = [f.height_cm for f in fish]
        if self.fast is not None:
            result = self.fast.predict(species, length, height)
        else:
            frame = pd.DataFrame(dict(zip(FEATURES, (species, length, height), strict=True)))
            result = self.served.predict(frame)
        weights, flags = result.weight_kg.tolist(), result.species_known.tolist()
        unusable = [i for i, w in enumerate(weights) if not 0.0 < w < math.inf]
        if unusable:
            raise DataError(f"sizes out of any plausible range give no usable weight at {unusable}")
        return weights, flags


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
