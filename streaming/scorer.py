"""The scorer: every measurement gets the production model's predicted weight.

A batch at a time: poll up to ``stream_max_batch`` measurements, validate each (bad ones go to
``fish.dead-letter`` with the reason, and the partition goes on), predict the whole batch with
ONE call of the model, send ``fish.predictions`` and poll the next batch while the broker
acknowledges them. A batch's offsets are committed once its own predictions and those of every
earlier batch are acknowledged (``tidemark.stream.pipelined``), with at most
``stream_max_in_flight`` batches outstanding. A crash replays at most the batches in flight or
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
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd
from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata
from kafka.structs import TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.metrics_registry import service_registry
from tidemark.model import DataError, Predictions
from tidemark.schemas import DeadLetter, Measurement, prediction_json, utc_now
from tidemark.stream.loop import PipelinedLoop
from tidemark.stream.records import dead_letter, parse
from tidemark.stream.service import settle_heap

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


class Scorer:
    """One scorer process: a member of the scorer group on fish.measurements."""

    def __init__(
        self,
        settings: Settings,
        model: ModelSource,
        challenger: ModelSource | None = None,
    ) -> None:
        self.settings = settings
        self._model = model
        self._challenger = challenger

    def run(self, stop: threading.Event) -> None:
        """Score until ``stop`` is set, once a model exists; the batch in hand is finished."""
        if not self._wait_for_model(stop):
            return
        settle_heap()
        loop: PipelinedLoop[None] = PipelinedLoop(
            self.settings,
            self.settings.stream.scorer_group_id,
            [self.settings.kafka.topics.measurements],
        )
        log.info("scoring", group=self.settings.stream.scorer_group_id)
        loop.run(stop, lambda batch, producer: (self.process(batch, producer), None))

    def process(
        self, batch: dict[TopicPartition, list[Any]], producer: KafkaProducer
    ) -> list[FutureRecordMetadata]:
        """Score one polled batch and send its output; returns the futures of the sends."""
        started = time.perf_counter()
        model = self._model()
        if model is None:
            raise RuntimeError("the production model disappeared while scoring")
        limit = self.settings.stream.max_record_bytes
        good: list[tuple[Any, Measurement]] = []
        dead: list[DeadLetter] = []
        size = 0
        for records in batch.values():
            size += len(records)
            for record in records:
                parsed = parse(record, Measurement, limit)
                if isinstance(parsed, DeadLetter):
                    dead.append(parsed)
                else:
                    good.append((record, parsed))
        challenger = self._challenger() if self._challenger else None
        predictions = self._predict(model, challenger, good, dead)
        sends = kafka_io.send(
            producer, self.settings.kafka, self.settings.kafka.topics.predictions, predictions, dead
        )
        EVENTS.labels("scored").inc(len(predictions))
        EVENTS.labels("dead_letter").inc(len(dead))
        BATCH_SIZE.observe(size)
        BATCH_SECONDS.observe(time.perf_counter() - started)
        if model.version.isdigit():
            MODEL_VERSION.set(int(model.version))
        shadowing = challenger is not None and challenger.version.isdigit()
        CHALLENGER_VERSION.set(int(challenger.version) if shadowing and challenger else 0)
        return sends

    def _predict(
        self,
        model: ScoringModel,
        challenger: ScoringModel | None,
        good: list[tuple[Any, Measurement]],
        dead: list[DeadLetter],
    ) -> list[EncodedPrediction]:
        if not good:
            return []
        measurements = [m for _, m in good]
        frame = _frame(measurements)
        try:
            result = model.predict(frame)
            _check(result)
        except DataError:
            # Some row the model cannot score: find it, one row at a time, rather than lose all.
            # Such a batch gets no challenger answers: it is rare, and the pairs stay unbiased
            # because production's rows are dropped from the evidence with the challenger's.
            return self._predict_one_by_one(model, good, dead)
        shadow = _shadow(model, challenger, frame)
        if challenger is not None:
            SHADOW.labels("paired" if shadow is not None else "dropped").inc(len(measurements))
        return _predictions(model, measurements, result, shadow)

    def _predict_one_by_one(
        self,
        model: ScoringModel,
        good: list[tuple[Any, Measurement]],
        dead: list[DeadLetter],
    ) -> list[EncodedPrediction]:
        scored: list[EncodedPrediction] = []
        for record, measurement in good:
            try:
                result = model.predict(_frame([measurement]))
                _check(result)
                scored += _predictions(model, [measurement], result, None)
            except DataError as error:
                dead.append(dead_letter(record, str(error), self.settings.stream.max_record_bytes))
        return scored

    def _wait_for_model(self, stop: threading.Event) -> bool:
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
        return True


def _frame(measurements: list[Measurement]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "species": [m.species for m in measurements],
            "length_cm": np.fromiter((m.length_cm for m in measurements), np.float64),
            "height_cm": np.fromiter((m.height_cm for m in measurements), np.float64),
        }
    )


def _check(result: Predictions) -> None:
    weights = result.weight_kg
    if not (np.isfinite(weights) & (weights > 0)).all():
        raise DataError("the model gave a weight that is not a positive finite number")


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
    if len(weights) != len(frame) or not (np.isfinite(weights) & (weights > 0)).all():
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
