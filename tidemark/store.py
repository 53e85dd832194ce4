"""The training store: joined records (a prediction with its true weight) in MongoDB.

One document per fish in the ``training_data`` collection, keyed by ``_id = fish_id``, so an
upsert is idempotent on any MongoDB-compatible server (FerretDB included): replaying a stream
or restarting the joiner never duplicates a training row. Reads come back as DataFrames with
every field of :class:`tidemark.schemas.Scored` as a column, oldest first, ready for
``tidemark.model.train``. Transient connection errors are retried.
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
from tidemark.schemas import Scored

if TYPE_CHECKING:
    import pandas as pd

log = get_logger("store")

COLUMNS = tuple(Scored.model_fields)
MEASURED_AT = "measured_at"
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


def to_document(record: Scored) -> Document:
    """The MongoDB document of a joined record: its fields, keyed by its fish id."""
    return {"_id": record.fish_id, **record.model_dump(mode="python")}


class TrainingStore:
    """The ``training_data`` collection: idempotent writes, recent and time-window reads."""

    def __init__(self, store: StoreSettings) -> None:
        self.store = store
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
        """Index ``measured_at`` for the recent and window reads (``_id`` is unique already)."""
        if not self._indexed:
            self.collection.create_index([(MEASURED_AT, ASCENDING)], name="measured_at")
            self._indexed = True

    def upsert(self, record: Scored) -> bool:
        """Store one joined record unless its fish is stored already; True if it was new."""
        return self.upsert_many([record]) == 1

    def upsert_many(self, records: Iterable[Scored]) -> int:
        """Store joined records whose fish is not stored yet; returns how many were new.

        The semantics of an upsert with ``$setOnInsert``: the first record of a fish stands and
        writing it again changes nothing, so replays and restarts never duplicate a training
        row. It is done as an unordered bulk insert that lets duplicate ids fail, because
        updates by ``_id`` cost a table scan each on FerretDB's SQLite backend while inserts
        are batched.
        """
        self.ensure_indexes()
        new = 0
        batch: list[Document] = []
        for record in records:
            batch.append(to_document(record))
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
        """The ``n`` most recent records by ``measured_at``."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        return self._frame(self._find({}, n))

    def window(self, start: datetime, end: datetime) -> pd.DataFrame:
        """The records measured in ``[start, end]`` (both inclusive)."""
        return self._frame(self._find(self.window_filter(start, end), None))

    def latest_per_species(self, before: datetime, wanted: Mapping[str, int]) -> pd.DataFrame:
        """Up to ``wanted[species]`` of the latest records of each species measured before
        ``before``."""
        return self._frame(
            [
                document
                for species, n in sorted(wanted.items())
                if n > 0
                for document in self._find(self.species_filter(species, before), n)
            ]
        )

    @_transient
    def species_before(self, before: datetime, exclude: Iterable[str] = ()) -> list[str]:
        """The species of the records measured before ``before``, but those in ``exclude``."""
        found = self.collection.distinct("species", {MEASURED_AT: {"$lt": _utc(before)}})
        # A record written past the contract may lack its species: there is none to remember.
        return sorted({s for s in found if isinstance(s, str)} - set(exclude))

    @staticmethod
    def species_filter(species: str, before: datetime) -> Document:
        """The query ``latest_per_species`` runs for one species, for lineage records."""
        return {"species": species, MEASURED_AT: {"$lt": _utc(before)}}

    @staticmethod
    def window_filter(start: datetime, end: datetime) -> Document:
        """The query that ``window`` runs, for lineage records."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if end < start:
            raise ValueError(f"window ends ({end}) before it starts ({start})")
        return {MEASURED_AT: {"$gte": start.astimezone(UTC), "$lte": end.astimezone(UTC)}}

    @_transient
    def _find(self, query: Mapping[str, Any], limit: int | None) -> list[Document]:
        if limit is None:
            cursor = self.collection.find(query, sort=[(MEASURED_AT, ASCENDING)])
            return list(cursor)
        # The newest n, read newest first, returned oldest first like every other read.
        newest = list(self.collection.find(query, sort=[(MEASURED_AT, DESCENDING)], limit=limit))
        return newest[::-1]

    @staticmethod
    def _frame(documents: list[Document]) -> pd.DataFrame:
        # Imported here: the joiner writes records without pandas; only the readers need it.
        import pandas as pd

        # Missing fields become NaN, which training reports as bad values instead of hiding.
        frame = pd.DataFrame.from_records(documents, columns=["_id", *COLUMNS])
        frame["fish_id"] = frame["fish_id"].fillna(frame["_id"])
        frame = frame.drop(columns="_id")
        for column in (MEASURED_AT, "predicted_at", "joined_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame.reset_index(drop=True)
