"""A fast path for the log-linear weight model: the same predictions without the pipeline.

A scikit-learn Pipeline costs milliseconds per call whatever the batch size (pandas, nested
ColumnTransformers, validation: 11-13 ms for this model on a busy 2-core machine), which
dominates a one-fish request and a scorer's small batches. The server and the scorers use this
path for every version that matches it (``tidemark.registry.watcher.ServedModel``).

The weight model gives each species its own power law,
``log W = s_species + bL_species·log L + bH_species·log H`` (tidemark.model), and unknown
species the shared one, so its predictions are fully described by
a log-scale and two exponents per species plus those of the shared law. They are read from the
pipeline's own predictions at unit sizes (``log 1 = 0``) and at ``e`` times each size, then
checked against the pipeline on a grid of species and sizes; a model that does not match is
served through its pipeline instead, so the fast path can never change an answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tidemark.model import FEATURES, Predictions

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# Relative agreement demanded on every probe; float64 round-off is about 1e-15.
_TOLERANCE = 1e-9
_PROBE_LENGTHS_CM = (1.0, 12.5, 48.0, 70.0, 133.0, 800.0)
_PROBE_HEIGHTS_CM = (1.0, 3.5, 11.0, 17.0, 41.0, 300.0)


@dataclass(frozen=True, slots=True)
class PowerLaw:
    """``log W = log_scale + length_exponent·log L + height_exponent·log H``."""

    log_scale: float
    length_exponent: float
    height_exponent: float

    def log_weight(self, log_length: float, log_height: float) -> float:
        """The log weight of one fish from its log sizes."""
        return (
            self.log_scale + self.length_exponent * log_length + self.height_exponent * log_height
        )


@dataclass(frozen=True, slots=True)
class LogLinearPredictor:
    """``exp(log_scale + length_exponent·log L + height_exponent·log H)`` of the fish's species,
    or of the shared law for a species the model does not know."""

    laws: dict[str, PowerLaw]
    shared: PowerLaw

    @classmethod
    def derive(cls, model: Pipeline, known: frozenset[str]) -> LogLinearPredictor | None:
        """The fast form of ``model``, or None when the model is not log-linear in the sizes."""
        unknown = _a_species_not_in(known)
        species = [*sorted(known), unknown]
        # Three probes per species: unit sizes, e times the length, e times the height.
        names = [name for name in species for _ in range(3)]
        lengths = [1.0, math.e, 1.0] * len(species)
        heights = [1.0, 1.0, math.e] * len(species)
        probes = _pipeline_weights(model, names, lengths, heights)
        if not (np.isfinite(probes) & (probes > 0)).all():
            return None  # no weight to take the log of: not the model this path knows
        logs = np.log(probes).reshape(len(species), 3)
        laws = {
            name: PowerLaw(
                log_scale=float(base),
                length_exponent=float(longer - base),
                height_exponent=float(taller - base),
            )
            for name, (base, longer, taller) in zip(species, logs, strict=True)
        }
        shared = laws.pop(unknown)
        candidate = cls(laws=laws, shared=shared)
        return candidate if candidate._matches(model, species) else None

    def predict(
        self, species: Sequence[str], length_cm: Sequence[float], height_cm: Sequence[float]
    ) -> Predictions:
        """Weights in kg and whether each species is known; same contract as model.predict."""
        count = len(species)
        laws = [self.laws.get(s, self.shared) for s in species]
        known = np.fromiter((s in self.laws for s in species), np.bool_, count)
        scale = np.fromiter((law.log_scale for law in laws), np.float64, count)
        by_length = np.fromiter((law.length_exponent for law in laws), np.float64, count)
        by_height = np.fromiter((law.height_exponent for law in laws), np.float64, count)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            weight = np.exp(
                scale
                + by_length * np.log(np.asarray(length_cm, np.float64))
                + by_height * np.log(np.asarray(height_cm, np.float64))
            )
        return Predictions(weight_kg=weight, species_known=known)

    def predict_one(self, species: str, length_cm: float, height_cm: float) -> tuple[float, bool]:
        """One fish's weight and whether its species is known, in plain floats.

        The single-fish request is the common case, and numpy's per-call overhead on one-element
        arrays is larger than the arithmetic.
        """
        law = self.laws.get(species)
        known = law is not None
        log_weight = (law or self.shared).log_weight(math.log(length_cm), math.log(height_cm))
        try:
            return math.exp(log_weight), known
        except OverflowError:
            return math.inf, known

    def _matches(self, model: Pipeline, species: list[str]) -> bool:
        grid = [
            (s, length, height)
            for s in species
            for length in _PROBE_LENGTHS_CM
            for height in _PROBE_HEIGHTS_CM
        ]
        names, lengths, heights = (list(column) for column in zip(*grid, strict=True))
        expected = _pipeline_weights(model, names, lengths, heights)
        batch = self.predict(names, lengths, heights).weight_kg
        one_by_one = [self.predict_one(*row)[0] for row in grid]
        return bool(
            np.allclose(batch, expected, rtol=_TOLERANCE, atol=0.0)
            and np.allclose(one_by_one, expected, rtol=_TOLERANCE, atol=0.0)
        )


def _a_species_not_in(known: frozenset[str]) -> str:
    name = "unknown-species"
    while name in known:
        name += "-x"
    return name


def _pipeline_weights(
    model: Pipeline, species: list[str], length_cm: list[float], height_cm: list[float]
) -> npt.NDArray[np.float64]:
    # Imported here: the fast path itself needs no pandas, only the pipeline it is checked on.
    import pandas as pd

    frame = pd.DataFrame(dict(zip(FEATURES, (species, length_cm, height_cm), strict=True)))
    with np.errstate(over="ignore", under="ignore"):
        return np.asarray(model.predict(frame), dtype=np.float64)
