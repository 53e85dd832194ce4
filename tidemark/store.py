"""The training store: a project's joined records (a prediction with its truth) in MongoDB.

One document per item in the project's collection, keyed by ``_id`` = the item's key, so an
upsert is idempotent on any MongoDB-compatible server (FerretDB included): replaying a stream
or restarting the joiner never duplicates a training row. Reads come back as DataFrames with
every field of the project's scored record as a column, oldest first by the input's event
time, ready for ``tidemark.modelling.training.train``. Transient connection errors are retried.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from pymongo import ASCENDING, DESCENDING, MongoClient, uri_parser
from pymongo.collection import Collection
from pymongo.errors import AutoReconnect, BulkWriteError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from tidemark.config import StoreSettings
from tidemark.logs import get_logger
from tidemark.project.contracts import Contracts, Scored

if TYPE_CHECKING:
    import pandas as pd

log = get_logger("store")

_BATCH = 1_000
_DUPLICATE_KEY = 11000

Document = dict[str, Any]


def insert_new(collection: Collection[Document], documents: list[Document]) -> int:
    """Insert the documents whose ``_id`` is not there yet; returns how many were new.

    One unordered bulk insert that lets duplicate ids fail: the first document of an id stands,
    and inserting the same documents again changes nothing.
    """
    if not documents:
        return 0
    try:
        return len(collection.insert_many(documents, ordered=False).inserted_ids)
    except BulkWriteError as error:
        errors = error.details.get("writeErrors", [])
        if any(e.get("code") != _DUPLICATE_KEY for e in errors):
            raise
        return int(error.details.get("nInserted", len(documents) - len(errors)))


# AutoReconnect covers ServerSelectionTimeoutError, NetworkTimeout and a primary stepping down.
_transient = retry(
    retry=retry_if_exception_type(AutoReconnect),
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=0.5, max=5),
    reraise=True,
    before_sleep=lambda state: log.warning(
        "mongodb unavailable, retrying",
        attempt=state.attempt_number,
        error=str(state.outcome.exception() if state.outcome else None)[:200],
    ),
)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment} is not timezone-aware")
    return moment.astimezone(UTC)


class TrainingStore:
    """A project's joined records: idempotent writes, recent, time-window and per-segment reads.

    ``store`` names the collection (a project's settings name its own, see
    ``tidemark.project.catalog``); ``contracts`` say what a record holds.
    """

    def __init__(self, store: StoreSettings, contracts: Contracts) -> None:
        self.store = store
        self.contracts = contracts
        project = contracts.project
        self.time = project.times.input
        self.segment = project.segment
        self.columns = tuple(contracts.scored.model_fields)
        self._client: MongoClient[Document] = MongoClient(
            store.uri,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=store.timeout_ms,
            connectTimeoutMS=store.timeout_ms,
        )
        self.collection: Collection[Document] = self._client[store.database][store.collection]
        self._indexed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    @property
    def source_uri(self) -> str:
        """Where the records live, without credentials: ``mongodb://HOSTS/DATABASE/COLLECTION``."""
        hosts = ",".join(
            f"{host}:{port}" for host, port in uri_parser.parse_uri(self.store.uri)["nodelist"]
        )
        return f"mongodb://{hosts}/{self.store.database}/{self.store.collection}"

    @_transient
    def ensure_indexes(self) -> None:
        """Index the input's event time for the recent and window reads (``_id`` is unique)."""
        if not self._indexed:
            self.collection.create_index([(self.time, ASCENDING)], name=self.time)
            self._indexed = True

    def document(self, record: Scored) -> Document:
        """The MongoDB document of a joined record: its fields, keyed by the item's key."""
        return {"_id": record.key, **self.contracts.scored_fields(record)}

    def upsert(self, record: Scored) -> bool:
        """Store one joined record unless its item is stored already; True if it was new."""
        return self.upsert_many([record]) == 1

    def upsert_many(self, records: Iterable[Scored]) -> int:
        """Store joined records whose item is not stored yet; returns how many were new.

        The semantics of an upsert with ``$setOnInsert``: the first record of an item stands
        and writing it again changes nothing, so replays and restarts never duplicate a
        training row. It is done as an unordered bulk insert that lets duplicate ids fail,
        because updates by ``_id`` cost a table scan each on FerretDB's SQLite backend while
        inserts are batched.
        """
        return self.insert_documents(self.document(record) for record in records)

    def insert_documents(self, documents: Iterable[Document]) -> int:
        """Store documents (``_id`` = key) whose item is not stored yet; how many were new."""
        self.ensure_indexes()
        new = 0
        batch: list[Document] = []
        for document in documents:
            batch.append(document)
            if len(batch) >= _BATCH:
                new += self._insert(batch)
                batch = []
        if batch:
            new += self._insert(batch)
        return new

    @_transient
    def _insert(self, batch: list[Document]) -> int:
        # Inserting by _id is idempotent, so retrying a batch that half-succeeded is safe.
        return insert_new(self.collection, batch)

    @_transient
    def count(self) -> int:
        """How many joined records the store holds."""
        return self.collection.count_documents({})

    def recent(self, n: int) -> pd.DataFrame:
        """The ``n`` most recent records by the input's event time."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        return self._frame(self._find({}, n))

    def window(self, start: datetime, end: datetime) -> pd.DataFrame:
        """The records whose input time is in ``[start, end]`` (both inclusive)."""
        return self._frame(self._find(self.window_filter(start, end), None))

    def latest_per_segment(self, before: datetime, wanted: Mapping[str, int]) -> pd.DataFrame:
        """Up to ``wanted[segment]`` of the latest records of each segment seen before
        ``before``."""
        return self._frame(
            [
                document
                for segment, n in sorted(wanted.items())
                if n > 0
                for document in self._find(self.segment_filter(segment, before), n)
            ]
        )

    @_transient
    def segments_before(self, before: datetime, exclude: Iterable[str] = ()) -> list[str]:
        """The segments of the records seen before ``before``, but those in ``exclude``."""
        if self.segment is None:
            return []
        found = self.collection.distinct(self.segment, {self.time: {"$lt": _utc(before)}})
        # A record written past the contract may lack its segment: there is none to remember.
        return sorted({s for s in found if isinstance(s, str)} - set(exclude))

    def segment_filter(self, segment: str, before: datetime) -> Document:
        """The query ``latest_per_segment`` runs for one segment, for lineage records."""
        if self.segment is None:
            raise ValueError(f"{self.contracts.project.name} has no segment")
        return {self.segment: segment, self.time: {"$lt": _utc(before)}}

    def segment_filter_since(self, segment: str, start: datetime, end: datetime) -> Document:
        """The records of one segment in ``[start, end]``, for lineage records: a retrain that
        reads a segment only from where its change began."""
        if self.segment is None:
            raise ValueError(f"{self.contracts.project.name} has no segment")
        return {self.segment: segment, **self.window_filter(start, end)}

    def window_filter(self, start: datetime, end: datetime) -> Document:
        """The query that ``window`` runs, for lineage records."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if end < start:
            raise ValueError(f"window ends ({end}) before it starts ({start})")
        return {self.time: {"$gte": start.astimezone(UTC), "$lte": end.astimezone(UTC)}}

    @_transient
    def _find(self, query: Mapping[str, Any], limit: int | None) -> list[Document]:
        if limit is None:
            cursor = self.collection.find(query, sort=[(self.time, ASCENDING)])
            return list(cursor)
        # The newest n, read newest first, returned oldest first like every other read.
        newest = list(self.collection.find(query, sort=[(self.time, DESCENDING)], limit=limit))
        return newest[::-1]

    def _frame(self, documents: list[Document]) -> pd.DataFrame:
        # Imported here: the joiner writes records without pandas; only the readers need it.
        import pandas as pd

        # Missing fields become NaN, which training reports as bad values instead of hiding.
        frame = pd.DataFrame.from_records(documents, columns=["_id", *self.columns])
        key = self.contracts.project.key
        frame[key] = frame[key].fillna(frame["_id"])
        frame = frame.drop(columns="_id")
        for column in (self.time, "predicted_at", "joined_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame.reset_index(drop=True)
