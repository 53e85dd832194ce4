"""A fast path for the log-linear weight model: the same predictions without the pipeline.

A scikit-learn Pipeline costs about 1.5-2 ms per call whatever the batch size (pandas and
ColumnTransformer overhead), which dominates a one-fish request. The weight model is
``log W = b0 + b_species + bL·log L + bH·log H`` (tidemark.model), so its predictions are fully
described by one log-scale per species, one for unknown species, and two exponents. They are
read from the pipeline's own predictions at unit sizes (``log 1 = 0``), then checked against the
pipeline on a grid of species and sizes; a model that does not match is served through its
pipeline instead, so the fast path can never change an answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.pipeline import Pipeline

from tidemark.model import FEATURES, Predictions

# Relative agreement demanded on every probe; float64 round-off is about 1e-15.
_TOLERANCE = 1e-9
_PROBE_LENGTHS_CM = (1.0, 12.5, 48.0, 70.0, 133.0, 800.0)
_PROBE_HEIGHTS_CM = (1.0, 3.5, 11.0, 17.0, 41.0, 300.0)


@dataclass(frozen=True, slots=True)
class LogLinearPredictor:
    """``exp(log_scale[species] + length_exponent·log L + height_exponent·log H)``."""

    log_scale: dict[str, float]
    unknown_log_scale: float
    length_exponent: float
    height_exponent: float

    @classmethod
    def derive(cls, model: Pipeline, known: frozenset[str]) -> LogLinearPredictor | None:
        """The fast form of ``model``, or None when the model is not log-linear in the sizes."""
        unknown = _a_species_not_in(known)
        species = [*sorted(known), unknown]
        at_unit = _pipeline_weights(model, species, [1.0] * len(species), [1.0] * len(species))
        ref = species[0]
        stretched = _pipeline_weights(model, [ref, ref], [math.e, 1.0], [1.0, math.e])
        probes = np.concatenate([at_unit, stretched])
        if not (np.isfinite(probes) & (probes > 0)).all():
            return None  # no weight to take the log of: not the model this path knows
        base = math.log(at_unit[0])
        candidate = cls(
            log_scale={s: math.log(w) for s, w in zip(species[:-1], at_unit[:-1], strict=True)},
            unknown_log_scale=math.log(at_unit[-1]),
            length_exponent=math.log(stretched[0]) - base,
            height_exponent=math.log(stretched[1]) - base,
        )
        return candidate if candidate._matches(model, species) else None

    def predict(
        self, species: Sequence[str], length_cm: Sequence[float], height_cm: Sequence[float]
    ) -> Predictions:
        """Weights in kg and whether each species is known; same contract as model.predict."""
        scale = self.log_scale
        known = np.fromiter((s in scale for s in species), np.bool_, len(species))
        log_scale = np.fromiter(
            (scale.get(s, self.unknown_log_scale) for s in species), np.float64, len(species)
        )
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            weight = np.exp(
                log_scale
                + self.length_exponent * np.log(np.asarray(length_cm, np.float64))
                + self.height_exponent * np.log(np.asarray(height_cm, np.float64))
            )
        return Predictions(weight_kg=weight, species_known=known)

    def predict_one(self, species: str, length_cm: float, height_cm: float) -> tuple[float, bool]:
        """One fish's weight and whether its species is known, in plain floats.

        The single-fish request is the common case, and numpy's per-call overhead on one-element
        arrays is larger than the arithmetic.
        """
        scale = self.log_scale.get(species)
        known = scale is not None
        log_weight = (
            (scale if scale is not None else self.unknown_log_scale)
            + self.length_exponent * math.log(length_cm)
            + self.height_exponent * math.log(height_cm)
        )
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
    frame = pd.DataFrame(dict(zip(FEATURES, (species, length_cm, height_cm), strict=True)))
    with np.errstate(over="ignore", under="ignore"):
        return np.asarray(model.predict(frame), dtype=np.float64)
