"""The joiner: predictions meet their truths; joined records go to the scored topic and MongoDB.

A handler of the stream runtime (:mod:`tidemark.stream`) for one project, whose
:class:`~tidemark.project.contracts.Contracts` name every field, a batch of both topics at a
time: each half is offered to the :class:`JoinState` and the batch's scored records are sent;
the runtime polls the next batch while the broker acknowledges them. Each batch is made durable
in this order, and only then are its offsets committed (``Commits.AFTER_ACKS``, at most
``stream_max_in_flight`` batches outstanding):

1. scored records (and dead letters) produced and acknowledged;
2. joined records stored in the project's collection by ``TrainingStore.insert_documents``,
   keyed by the item's key; an item already there keeps its row (a replay or a duplicate never
   adds one);
3. the batch's new pending halves and its "joined" markers appended to the project's
   ``<collection>_join_pending``.

Steps 2 and 3 of a batch wait for step 1, batches in the order they were polled: an item is
never marked joined in MongoDB before its scored record is durable. A crash anywhere before the
commit replays the batch, and every step above is idempotent. Every
write is an insert: on FerretDB (SQLite) an insert costs well under a millisecond while a
replace-upsert or a delete by id costs tens of milliseconds, too slow for a stream. Old entries
of the pending collection are removed in one range delete per minute, once both streams have
moved two windows past them.

When this process is given partitions it reads their pending entries back (on the loop's
thread: read in the rebalance listener, thousands of halves stopped the heartbeats and the
group rebalanced again, for ever): halves still waiting become pending again, and items marked
joined are remembered, so that a replay of work a dead process did without committing is
neither joined twice nor left waiting.

A prediction whose model is not the project's registered model is refused as forged; a half
the join refuses (:class:`streaming.join_state.JoinError`) leaves as a dead letter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from kafka.structs import TopicPartition
from prometheus_client import Counter, Gauge, Histogram
from pymongo import MongoClient
from pymongo.collection import Collection

from streaming.join_state import Half, JoinError, JoinResult, JoinState, Side
from tidemark.config import Settings
from tidemark.logs import get_logger
from tidemark.metrics_registry import service_registry
from tidemark.project.contracts import Contracts, Prediction, Scored, Truth
from tidemark.schemas import utc_now
from tidemark.store import TrainingStore, insert_new
from tidemark.stream.handler import Handler, Output
from tidemark.stream.records import Batch, Decoding

log = get_logger("joiner")

PENDING_SUFFIX = "_join_pending"
# How often pending halves are checked for expiry; each check scans them all in memory.
_EXPIRY_INTERVAL_S = 1.0
# How often old entries leave join_pending (one range delete).
_CLEANUP_INTERVAL_S = 60.0
_JOINED = "joined"

Document = dict[str, Any]

# This service's metrics only (see tidemark.metrics_registry).
REGISTRY = service_registry()
RECORDS = Counter(
    "tidemark_joiner_records_total", "Records read by the joiner", ["topic"], registry=REGISTRY
)
JOINED = Counter("tidemark_joiner_joined_total", "Items joined with their truth", registry=REGISTRY)
EXPIRED = Counter(
    "tidemark_joiner_expired_total",
    "Halves whose partner never came within the window",
    ["side"],
    registry=REGISTRY,
)
for _side in Side:
    # Both series exist from the start, at zero, so that dashboards and alerts see them.
    EXPIRED.labels(_side.value)
DUPLICATES = Counter(
    "tidemark_joiner_duplicates_total",
    "Halves of items already joined or waiting",
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "tidemark_joiner_dead_letters_total",
    "Records sent to the dead-letter topic",
    registry=REGISTRY,
)
PENDING = Gauge("tidemark_joiner_pending", "Halves waiting for their partner", registry=REGISTRY)
SHED = Counter(
    "tidemark_joiner_shed",
    "Pending halves dropped because stream.join_max_pending halves were waiting",
    ["side"],
    registry=REGISTRY,
)
for _side in Side:
    SHED.labels(_side.value)
BATCH_SECONDS = Histogram(
    "tidemark_joiner_batch_seconds",
    "Time to join one polled batch and send its output (MongoDB writes follow its acks)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)


@dataclass(frozen=True)
class Durable:
    """What a batch writes to MongoDB once its scored records are acknowledged."""

    scored: list[Scored]
    pending: list[Document]


class PendingDocuments:
    """The pending collection's documents of a project's halves, and the halves of them.

    The key field is named as the project names it, so a project's documents read the same
    whatever version of the joiner wrote them.
    """

    def __init__(self, contracts: Contracts) -> None:
        self.contracts = contracts
        self.key = contracts.project.key

    def half(self, half: Half) -> Document:
        """A half that waits for its partner."""
        record = half.record
        fields = (
            self.contracts.prediction_fields(record)
            if isinstance(record, Prediction)
            else dict(record.fields)
        )
        return {
            "_id": f"{half.key}:{half.side.value}",
            self.key: half.key,
            "kind": half.side.value,
            "partition": half.partition,
            "event_time": half.event_time,
            "record": orjson.loads(orjson.dumps(fields, option=orjson.OPT_UTC_Z)),
        }

    def joined(self, half: Half) -> Document:
        """The marker of a joined item; the half that completed it gives its partition and
        event time."""
        return {
            "_id": f"{half.key}:{_JOINED}",
            self.key: half.key,
            "kind": _JOINED,
            "partition": half.partition,
            "event_time": half.event_time,
        }

    def read(self, document: Document) -> Half:
        """The half a document holds."""
        raw = orjson.dumps(document["record"])
        record: Prediction | Truth
        if document["kind"] == Side.PREDICTION.value:
            record = self.contracts.decode_prediction(raw)
        else:
            record = self.contracts.decode_truth(raw)
        return Half(record=record, partition=int(document["partition"]))


class Joiner(Handler[Prediction | Truth, Durable]):
    """One joiner process of one project: a member of its joiner group on its predictions and
    truth topics."""

    def __init__(self, settings: Settings, store: TrainingStore) -> None:
        contracts = store.contracts
        super().__init__(
            settings.stream.joiner_group_id,
            {
                settings.kafka.topics.predictions: Decoding(contracts.decode_prediction),
                settings.kafka.topics.truth: Decoding(contracts.decode_truth),
            },
        )
        self.settings = settings
        self.store = store
        self.contracts = contracts
        self.documents = PendingDocuments(contracts)
        self._mongo: MongoClient[Document] = MongoClient(
            settings.store.uri, tz_aware=True, tzinfo=UTC
        )
        self.pending_collection: Collection[Document] = self._mongo[settings.store.database][
            settings.store.collection + PENDING_SUFFIX
        ]
        self.state = self._fresh_state()
        self._owned: set[int] = set()
        self._skew = timedelta(seconds=settings.stream.max_clock_skew_s)
        self._next_expiry = 0.0
        self._next_cleanup = time.monotonic() + _CLEANUP_INTERVAL_S

    def close(self) -> None:
        """Close the connection to join_pending."""
        self._mongo.close()

    def start(self, stop: threading.Event) -> bool:
        """Start from what was made durable: the state of each partition comes back from
        join_pending when it is assigned."""
        self.state = self._fresh_state()
        self._owned = set()
        self._next_cleanup = time.monotonic() + _CLEANUP_INTERVAL_S
        log.info("joining", group=self.group_id, window_s=self.settings.stream.join_window_s)
        return True

    def tick(self) -> None:
        """Between two batches: expire pending halves and clean join_pending when they are due."""
        if time.monotonic() >= self._next_expiry:
            self.expire()
            self._next_expiry = time.monotonic() + _EXPIRY_INTERVAL_S
        if time.monotonic() >= self._next_cleanup:
            self.clean_up()
            self._next_cleanup = time.monotonic() + _CLEANUP_INTERVAL_S

    def event_time(self, message: Prediction | Truth) -> datetime:
        """When the item was seen, or when its truth was known."""
        return message.at

    def process(self, batch: Batch[Prediction | Truth], out: Output) -> Durable:
        """Join one polled batch and send its output; what to persist once it is acknowledged."""
        started = time.perf_counter()
        for partition, records in batch.polled.items():
            RECORDS.labels(partition.topic).inc(len(records))
        joined_at = utc_now()
        # No watermark moves past the clock plus its skew, whatever a record says.
        ceiling = joined_at + self._skew
        model_name = self.settings.registry.model_name
        scored: list[Scored] = []
        for item in batch.received:
            message = item.message
            if isinstance(message, Prediction) and message.model_name != model_name:
                batch.reject(
                    item,
                    f"a prediction by model {message.model_name!r}: this project's predictions "
                    f"come from {model_name!r}",
                )
                continue
            half = Half(record=message, partition=item.raw.partition)
            try:
                result, record = self.state.offer(half, joined_at, ceiling)
            except JoinError as error:
                batch.reject(item, str(error))
                continue
            if record is not None:
                scored.append(record)
            elif result is JoinResult.DUPLICATE:
                DUPLICATES.inc()
            elif result is JoinResult.LATE:
                EXPIRED.labels(half.side.value).inc()
        encode = self.contracts.encode_scored
        out.send_encoded(
            self.settings.kafka.topics.scored, ((s.key.encode(), encode(s)) for s in scored)
        )
        self._count_shed()
        changes = self.state.take_changes()
        durable = Durable(
            scored,
            [self.documents.half(h) for h in changes.save.values()]
            + [self.documents.joined(h) for h in changes.joined.values()],
        )
        JOINED.inc(len(scored))
        DEAD_LETTERS.inc(len(batch.dead))
        PENDING.set(self.state.pending_count)
        BATCH_SECONDS.observe(time.perf_counter() - started)
        return durable

    def durable(self, payload: Durable) -> None:
        """An acknowledged batch: store its joined records and its join_pending entries."""
        self.store.insert_documents(self.store.document(record) for record in payload.scored)
        insert_new(self.pending_collection, payload.pending)

    def expire(self) -> None:
        """Drop the pending halves whose partner can no longer come, and count them."""
        expired = self.state.expire()
        for half in expired:
            EXPIRED.labels(half.side.value).inc()
        if expired:
            log.info("halves expired", count=len(expired))
        PENDING.set(self.state.pending_count)

    def clean_up(self) -> None:
        """Remove entries of join_pending that both streams have passed by two windows."""
        owned = sorted(self._owned)
        watermark = self.state.watermark(owned) if owned else None
        if watermark is None:
            return
        try:
            cutoff = watermark - 2 * self.state.window
        except OverflowError:  # a watermark at the start of time: nothing is older
            return
        removed = self.pending_collection.delete_many(
            {"partition": {"$in": owned}, "event_time": {"$lt": cutoff}}
        ).deleted_count
        log.info("join_pending cleaned", removed=removed, before=cutoff.isoformat())

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """Read back the halves and joined items of newly owned partitions, before joining more."""
        numbers = sorted({p.partition for p in partitions} - self._owned)
        if not numbers:
            return
        self._owned |= set(numbers)
        halves: list[Half] = []
        joined: list[str] = []
        for document in self.pending_collection.find({"partition": {"$in": numbers}}):
            if document["kind"] == _JOINED:
                joined.append(str(document[self.documents.key]))
            else:
                halves.append(self.documents.read(document))
        self.state.restore(halves)
        self.state.already_joined(joined)
        self._count_shed()
        log.info(
            "partitions assigned",
            partitions=numbers,
            pending=self.state.pending_count,
            joined=len(joined),
        )

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget the state of partitions handed to another process."""
        numbers = {p.partition for p in partitions}
        self._owned -= numbers
        self.state.drop_partitions(numbers)

    def _count_shed(self) -> None:
        shed = self.state.take_shed()
        if not shed:
            return
        for half in shed:
            SHED.labels(half.side.value).inc()
        log.warning(
            "pending halves shed: stream.join_max_pending halves were waiting",
            shed=len(shed),
            max_pending=self.settings.stream.join_max_pending,
            oldest=shed[0].event_time.isoformat(),
        )

    def _fresh_state(self) -> JoinState:
        stream = self.settings.stream
        return JoinState(
            stream.join_window_s,
            stream.join_recent_ids,
            self.contracts.join,
            stream.join_max_pending,
        )
