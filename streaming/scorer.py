"""The scorer: every measurement gets the production model's predicted weight.

A handler of the stream runtime (:mod:`tidemark.stream`), a batch at a time: up to
``stream_max_batch`` measurements, validated (bad ones go to ``fish.dead-letter`` with the
reason, and the partition goes on), are predicted with ONE call of the model and sent to
``fish.predictions``; the runtime polls the next batch while the broker acknowledges them, and
commits a batch's offsets once its own predictions and those of every earlier batch are
acknowledged (``Commits.AFTER_ACKS``), with at most ``stream_max_in_flight`` batches
outstanding. A crash replays at most the batches in flight or
whose commits were, never skips one; the joiner makes a replayed prediction harmless.

The model comes from a callable (``ModelWatcher.current`` in production), read once per batch,
so a hot swap takes effect between two batches and a batch never mixes two versions. Until a
model exists the scorer does not even join its group: a missing model is not bad input, and
the measurements wait in Kafka.

While a challenger runs in shadow (the registry's ``challenger`` alias, a second watcher), each
batch gets one more vectorised predict, by the challenger on the same frame, and every
prediction carries the challenger's version and weight: the joiner turns them into the paired
errors the monitor judges it on. The challenger never costs a fish: a batch where it fails, gives
a weight that is not positive and finite, or is the production version itself, goes out with
production's answer alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd
from prometheus_client import Counter, Gauge, Histogram

from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.metrics_registry import service_registry
from tidemark.model import DataError, Predictions
from tidemark.project.contracts import PREDICTION_LIMIT
from tidemark.schemas import Measurement, prediction_json, utc_now
from tidemark.stream.handler import Handler, Output
from tidemark.stream.records import Batch

log = get_logger("scorer")

# This service's metrics only (see tidemark.metrics_registry).
REGISTRY = service_registry()
EVENTS = Counter(
    "tidemark_scorer_events_total",
    "Measurements handled, by outcome",
    ["outcome"],
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "tidemark_scorer_batch_seconds",
    "Time from a polled batch to its predictions sent (acknowledgements come later)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "tidemark_scorer_batch_records",
    "Records per polled batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
    registry=REGISTRY,
)
MODEL_VERSION = Gauge(
    "tidemark_scorer_model_version", "Version of the model scoring now", registry=REGISTRY
)
SHADOW = Counter(
    "tidemark_scorer_shadow_total",
    "Predictions while a challenger runs in shadow, by whether they carry its answer",
    ["outcome"],
    registry=REGISTRY,
)
CHALLENGER_VERSION = Gauge(
    "tidemark_scorer_challenger_version",
    "Version of the challenger predicting in shadow now (0: none)",
    registry=REGISTRY,
)


class ScoringModel(Protocol):
    """What the scorer needs of a model (``tidemark.registry.watcher.ServedModel`` is one)."""

    @property
    def name(self) -> str:
        """Registered model name."""

    @property
    def version(self) -> str:
        """Registered version."""

    def predict(self, frame: pd.DataFrame) -> Predictions:
        """Weights for a frame of ``species``, ``length_cm``, ``height_cm``."""


class EncodedPrediction(NamedTuple):
    """A ``fish.predictions`` message, already serialised (``schemas.prediction_json``)."""

    fish_id: str
    payload: bytes

    def to_json(self) -> bytes:
        """The message as Kafka sends it."""
        return self.payload


ModelSource = Callable[[], ScoringModel | None]


class Scorer(Handler[Measurement, None]):
    """One scorer process: a member of the scorer group on fish.measurements."""

    def __init__(
        self,
        settings: Settings,
        model: ModelSource,
        challenger: ModelSource | None = None,
    ) -> None:
        super().__init__(
            settings.stream.scorer_group_id, {settings.kafka.topics.input: Measurement}
        )
        self.settings = settings
        self._model = model
        self._challenger = challenger

    def start(self, stop: threading.Event) -> bool:
        """Wait for a production model before joining the group; False if ``stop`` came first."""
        waiting_since = time.monotonic()
        logged = False
        while self._model() is None:
            if not logged:
                log.info("waiting for a production model; measurements wait in Kafka")
                logged = True
            if stop.wait(0.5):
                return False
        model = self._model()
        if model is not None:
            log.info(
                "model ready",
                model=model.name,
                version=model.version,
                waited_s=round(time.monotonic() - waiting_since, 1),
            )
        log.info("scoring", group=self.group_id)
        return True

    def event_time(self, message: Measurement) -> datetime:
        """When the item was measured."""
        return message.measured_at

    def process(self, batch: Batch[Measurement], out: Output) -> None:
        """Score one polled batch with the model of the moment and send its predictions."""
        started = time.perf_counter()
        model = self._model()
        if model is None:
            raise RuntimeError("the production model disappeared while scoring")
        challenger = self._challenger() if self._challenger else None
        predictions = self._predict(model, challenger, batch)
        out.send(self.settings.kafka.topics.predictions, predictions)
        EVENTS.labels("scored").inc(len(predictions))
        EVENTS.labels("dead_letter").inc(len(batch.dead))
        BATCH_SIZE.observe(batch.size)
        BATCH_SECONDS.observe(time.perf_counter() - started)
        if model.version.isdigit():
            MODEL_VERSION.set(int(model.version))
        shadowing = challenger is not None and challenger.version.isdigit()
        CHALLENGER_VERSION.set(int(challenger.version) if shadowing and challenger else 0)

    def _predict(
        self, model: ScoringModel, challenger: ScoringModel | None, batch: Batch[Measurement]
    ) -> list[EncodedPrediction]:
        if not batch.received:
            return []
        measurements = [item.message for item in batch.received]
        frame = _frame(measurements)
        try:
            result = model.predict(frame)
            _check(result)
        except DataError:
            # Some row the model cannot score: find it, one row at a time, rather than lose all.
            # Such a batch gets no challenger answers: it is rare, and the pairs stay unbiased
            # because production's rows are dropped from the evidence with the challenger's.
            return self._predict_one_by_one(model, batch)
        shadow = _shadow(model, challenger, frame)
        if challenger is not None:
            SHADOW.labels("paired" if shadow is not None else "dropped").inc(len(measurements))
        return _predictions(model, measurements, result, shadow)

    def _predict_one_by_one(
        self, model: ScoringModel, batch: Batch[Measurement]
    ) -> list[EncodedPrediction]:
        scored: list[EncodedPrediction] = []
        for item in batch.received:
            try:
                result = model.predict(_frame([item.message]))
                _check(result)
                scored += _predictions(model, [item.message], result, None)
            except DataError as error:
                batch.reject(item, str(error))
        return scored


def _frame(measurements: list[Measurement]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "species": [m.species for m in measurements],
            "length_cm": np.fromiter((m.length_cm for m in measurements), np.float64),
            "height_cm": np.fromiter((m.height_cm for m in measurements), np.float64),
        }
    )


def _usable(values: np.ndarray) -> bool:
    # Bounded too: an error metric squares a prediction, and the contracts cap it.
    return bool(((values > 0) & (values <= PREDICTION_LIMIT)).all())


def _check(result: Predictions) -> None:
    if not _usable(result.weight_kg):
        raise DataError(
            "the model gave a weight that is not a positive finite number within bounds"
        )


class _Shadow(NamedTuple):
    version: str
    weights: list[float]


def _shadow(
    model: ScoringModel, challenger: ScoringModel | None, frame: pd.DataFrame
) -> _Shadow | None:
    """The challenger's weights for the frame, or None when it has no usable answer."""
    if challenger is None or not challenger.version or challenger.version == model.version:
        return None
    try:
        weights = challenger.predict(frame).weight_kg
    except Exception as error:  # a failing challenger must not cost production's answers
        log.warning("challenger failed; batch scored without it", error=str(error))
        return None
    if len(weights) != len(frame) or not _usable(weights):
        log.warning(
            "challenger gave a weight that is not a positive finite number; batch without it",
            challenger=challenger.version,
        )
        return None
    return _Shadow(challenger.version, weights.tolist())


def _predictions(
    model: ScoringModel,
    measurements: list[Measurement],
    result: Predictions,
    shadow: _Shadow | None,
) -> list[EncodedPrediction]:
    if not (model.name and model.version):
        raise RuntimeError("a scoring model needs a registered name and version")
    predicted_at = utc_now()
    weights = result.weight_kg.tolist()
    known = result.species_known.tolist()
    if shadow is None:
        return [
            EncodedPrediction(
                m.fish_id,
                prediction_json(m, weight, k, model.name, model.version, predicted_at),
            )
            for m, weight, k in zip(measurements, weights, known, strict=True)
        ]
    return [
        EncodedPrediction(
            m.fish_id,
            prediction_json(
                m, weight, k, model.name, model.version, predicted_at, shadow.version, other
            ),
        )
        for m, weight, k, other in zip(measurements, weights, known, shadow.weights, strict=True)
    ]
