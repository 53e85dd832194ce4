"""The scorer: every input of a project gets the production model's prediction.

A handler of the stream runtime (:mod:`tidemark.stream`), a batch at a time, for one project
whose :class:`~tidemark.project.contracts.Contracts` name every field: up to
``stream_max_batch`` inputs, validated against the project's input contract (bad ones go to
its dead-letter topic with the reason, and the partition goes on), are predicted with ONE call
of the model and sent to the project's predictions topic; the runtime polls the next batch
while the broker acknowledges them, and commits a batch's offsets once its own predictions and
those of every earlier batch are acknowledged (``Commits.AFTER_ACKS``), with at most
``stream_max_in_flight`` batches outstanding. A crash replays at most the batches in flight or
whose commits were, never skips one; the joiner makes a replayed prediction harmless.

The model comes from a callable (the registry watcher's version, adapted to the project by
:class:`streaming.models.Adapted`), read once per batch, so a hot swap takes effect between two
batches and a batch never mixes two versions. Until a model exists the scorer does not even join
its group: a missing model is not bad input, and the inputs wait in Kafka (the process that
scores every project of a stack reads a project's inputs once its model exists:
:mod:`tidemark.stream.dispatch`).

While a challenger runs in shadow (the registry's ``challenger`` alias, a second watcher), each
batch gets one more vectorised predict, by the challenger on the same items, and every
prediction carries the challenger's version and value: the joiner turns them into the paired
errors the monitor judges it on. The challenger never costs an item: a batch where it fails,
gives a value the contract would refuse, or is the production version itself, goes out with
production's answer alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.metrics_registry import service_registry
from tidemark.modelling.frames import DataError
from tidemark.modelling.predictions import Predictions, unusable
from tidemark.project.contracts import Contracts, Item, Prediction
from tidemark.schemas import utc_now
from tidemark.stream.handler import Handler, Output
from tidemark.stream.records import Batch, Decoding

log = get_logger("scorer")

# This service's metrics only (see tidemark.metrics_registry).
REGISTRY = service_registry()
EVENTS = Counter(
    "tidemark_scorer_events_total",
    "Inputs handled, by outcome",
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
    """What the scorer needs of a model (``streaming.models.ProjectModel`` is one)."""

    @property
    def name(self) -> str:
        """Registered model name."""

    @property
    def version(self) -> str:
        """Registered version."""

    def predict(self, items: Sequence[Item]) -> Predictions:
        """The project's predictions of these items; ``DataError`` for an unusable one."""


ModelSource = Callable[[], ScoringModel | None]


class Scorer(Handler[Item, None]):
    """One scorer process of one project: a member of its scorer group on its input topic."""

    def __init__(
        self,
        settings: Settings,
        contracts: Contracts,
        model: ModelSource,
        challenger: ModelSource | None = None,
    ) -> None:
        super().__init__(
            settings.stream.scorer_group_id,
            {settings.kafka.topics.input: Decoding(contracts.decode_input)},
        )
        self.settings = settings
        self.contracts = contracts
        self._model = model
        self._challenger = challenger

    def ready(self) -> bool:
        """Whether the project has a production model to score with."""
        return self._model() is not None

    def start(self, stop: threading.Event) -> bool:
        """Wait for a production model before joining the group; False if ``stop`` came first."""
        waiting_since = time.monotonic()
        logged = False
        while self._model() is None:
            if not logged:
                log.info("waiting for a production model; inputs wait in Kafka")
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
        log.info("scoring", group=self.group_id, project=self.contracts.project.name)
        return True

    def event_time(self, message: Item) -> datetime:
        """When the item was seen."""
        return message.at

    def process(self, batch: Batch[Item], out: Output) -> None:
        """Score one polled batch with the model of the moment and send its predictions."""
        started = time.perf_counter()
        model = self._model()
        if model is None:
            raise RuntimeError("the production model disappeared while scoring")
        challenger = self._challenger() if self._challenger else None
        predictions = self._predict(model, challenger, batch)
        out.send_encoded(self.settings.kafka.topics.predictions, predictions)
        EVENTS.labels("scored").inc(len(predictions))
        EVENTS.labels("dead_letter").inc(len(batch.dead))
        BATCH_SIZE.observe(batch.size)
        BATCH_SECONDS.observe(time.perf_counter() - started)
        if model.version.isdigit():
            MODEL_VERSION.set(int(model.version))
        shadowing = challenger is not None and challenger.version.isdigit()
        CHALLENGER_VERSION.set(int(challenger.version) if shadowing and challenger else 0)

    def _predict(
        self, model: ScoringModel, challenger: ScoringModel | None, batch: Batch[Item]
    ) -> list[tuple[bytes, bytes]]:
        if not batch.received:
            return []
        items = [item.message for item in batch.received]
        try:
            result = model.predict(items)
            self._check(result)
        except DataError:
            # Some item the model cannot score: find it, one at a time, rather than lose all.
            # Such a batch gets no challenger answers: it is rare, and the pairs stay unbiased
            # because production's rows are dropped from the evidence with the challenger's.
            return self._predict_one_by_one(model, batch)
        shadow = self._shadow(model, challenger, items)
        if challenger is not None:
            SHADOW.labels("paired" if shadow is not None else "dropped").inc(len(items))
        return self._encoded(model, items, result, shadow)

    def _predict_one_by_one(
        self, model: ScoringModel, batch: Batch[Item]
    ) -> list[tuple[bytes, bytes]]:
        scored: list[tuple[bytes, bytes]] = []
        for item in batch.received:
            try:
                result = model.predict([item.message])
                self._check(result)
                scored += self._encoded(model, [item.message], result, None)
            except DataError as error:
                batch.reject(item, str(error))
        return scored

    def _check(self, result: Predictions) -> None:
        # Bounded as the contract bounds it: an error metric squares a prediction.
        project = self.contracts.project
        if unusable(project, result.values).any():
            kind = "positive finite" if project.target.positive else "finite"
            raise DataError(
                f"the model gave a {project.target.name} that is not a {kind} number within "
                "the contract's bounds"
            )

    def _shadow(
        self, model: ScoringModel, challenger: ScoringModel | None, items: list[Item]
    ) -> _Shadow | None:
        """The challenger's values for the items, or None when it has no usable answer."""
        if challenger is None or not challenger.version or challenger.version == model.version:
            return None
        try:
            values = challenger.predict(items).values
        except Exception as error:  # a failing challenger must not cost production's answers
            log.warning("challenger failed; batch scored without it", error=str(error))
            return None
        if len(values) != len(items) or unusable(self.contracts.project, values).any():
            log.warning(
                "challenger gave a value the contract refuses; batch without it",
                challenger=challenger.version,
            )
            return None
        return _Shadow(challenger.version, values.tolist())

    def _encoded(
        self,
        model: ScoringModel,
        items: list[Item],
        result: Predictions,
        shadow: _Shadow | None,
    ) -> list[tuple[bytes, bytes]]:
        if not (model.name and model.version):
            raise RuntimeError("a scoring model needs a registered name and version")
        predicted_at = utc_now()
        values = np.asarray(result.values, np.float64).tolist()
        known = np.asarray(result.segment_known, np.bool_).tolist()
        others: list[float | None] = list(shadow.values) if shadow else [None] * len(items)
        encode = self.contracts.encode_prediction
        return [
            (
                item.key.encode(),
                encode(
                    Prediction(
                        item=item,
                        value=value,
                        segment_known=k,
                        model_name=model.name,
                        model_version=model.version,
                        predicted_at=predicted_at,
                        challenger_version=shadow.version if shadow else None,
                        challenger_value=other,
                    )
                ),
            )
            for item, value, k, other in zip(items, values, known, others, strict=True)
        ]


class _Shadow(NamedTuple):
    version: str
    values: list[float]
