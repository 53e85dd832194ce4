"""All of Tidemark's settings, in sections: each component reads only the section it needs.

Every process reads its configuration from here: environment variables with the ``TIDEMARK_``
prefix, then a ``.env`` file in the working directory, then the defaults below, which describe
the local stack on 127.0.0.1. Pointing Tidemark at a real Kafka cluster, MongoDB replica set,
MLflow server or Prefect server is a matter of setting the endpoint variables; nothing else
changes.

The sections:

- ``kafka``: the brokers, client timeouts, the topics of the data contract and how they are
  replicated;
- ``store``: the MongoDB training store;
- ``registry``: the MLflow tracking server, the registered model, its aliases and how often it
  is polled;
- ``orchestration``: the Prefect API that runs the flows;
- ``stream``: the scorer's and the joiner's consumer groups, batches, in-flight bound and join
  window;
- ``serving``: the model server;
- ``monitor``: windows, triggers, incidents and reports of the monitor;
- ``retrain``: what a retrain reads, the evidence it needs and when its candidate is promoted;
- ``shadow``: how a challenger running beside production is judged on live items;
- ``stack``: what ``make up`` provisions and runs on this machine (state and cache folders,
  Kafka and FerretDB versions, heap, the gentle simulator, the Evidently UI).

Each setting has one name, derived from its place: ``<section>_<field>`` (``store_uri``), and
``kafka_topics_<topic>`` for the topics of the kafka section's ``topics``. The environment
variable ``TIDEMARK_<NAME>`` (``TIDEMARK_STORE_URI``) sets it, ``Settings(<name>=...)`` and
:meth:`Settings.override` take it, :meth:`Settings.as_env` writes it for a child process, and a
refusal names it; :data:`NAMES` lists them. Code reads the section field
(``settings.store.uri``). A ``TIDEMARK_*`` variable that names no setting is refused. The names
used before this rule still work for one release, with a warning (``tidemark.deprecated_names``).

Values are checked where they are read: numbers are finite, ports in 1-65535 (in URLs and
``host:port`` lists too), each minimum at most its maximum, the admin token not empty.

A kernel helper receives only the section it reads: the Kafka helpers take ``KafkaSettings``,
the training store ``StoreSettings``, the registry contract, its REST reader and the model
watcher ``RegistrySettings``, provisioning ``StackSettings``. The services (scorer, joiner,
monitor, API, flows) read the ``Settings`` they are given, and ``make up`` gives each service
process only the variables of the sections it reads (``as_env(*sections)``, the ``sections``
column of ``infra/local/services.py``). A service there reads the default of any setting
outside its sections, so that column names every section its code reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources import EnvSettingsSource

from tidemark.deprecated_names import with_current_names

PREFIX = "TIDEMARK_"

Section = Literal[
    "kafka",
    "store",
    "registry",
    "orchestration",
    "stream",
    "serving",
    "monitor",
    "retrain",
    "shadow",
    "stack",
    "projects",
]
SECTIONS: tuple[Section, ...] = get_args(Section)


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "tidemark"


def _ports_in_range(addresses: str) -> str:
    """Refuse a URL or a comma-separated list of ``host:port`` whose port is not 1-65535."""
    for address in (a.strip() for a in addresses.split(",")):
        try:
            port = urlsplit(address if "//" in address else f"//{address}").port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError(f"{address!r}: a port is a number in 1-65535")
    return addresses


# A port to listen on or connect to.
Port = Annotated[int, Field(ge=1, le=65_535)]
# A URL or a list of host:port, whose ports (where given) are in range.
Addresses = Annotated[str, AfterValidator(_ports_in_range)]


class _Section(BaseModel):
    # Every number is finite: an `inf` window or timeout would never end, a `nan` compare false.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class TopicSettings(_Section):
    """The Kafka topics of the data contract.

    Each project names its own (``tidemark.project.catalog.project_settings``); these defaults
    are only what settings read without a project hold. A variable set here moves the default
    project's topic (a deployment's or a test's own topics).
    """

    input: str = "tidemark.input"
    truth: str = "tidemark.truth"
    predictions: str = "tidemark.predictions"
    scored: str = "tidemark.scored"
    retrain_requests: str = "tidemark.retrain-requests"
    # Challenges, promotions, retirements and rollbacks (schemas.ModelDecision), keyed by model.
    model_decisions: str = "tidemark.model-decisions"
    dead_letter: str = "tidemark.dead-letter"

    @property
    def names(self) -> tuple[str, ...]:
        """Every topic of the data contract, in pipeline order."""
        return (
            self.input,
            self.truth,
            self.predictions,
            self.scored,
            self.retrain_requests,
            self.model_decisions,
            self.dead_letter,
        )


class KafkaSettings(_Section):
    """Where the brokers are, how long a client waits for them, and the contract's topics."""

    # A comma-separated list for a cluster: clients bootstrap from any node that answers.
    bootstrap_servers: Addresses = "127.0.0.1:9092"
    # Kafka nodes of the local stack; 3 runs a replicated KRaft cluster (each node a broker and
    # a controller). Node i (from 0) listens on the i-th address of bootstrap_servers (when
    # fewer are listed, on the first one's port + 100·i, added to the list) and its controller
    # on stack.kafka_controller_port + 100·i.
    brokers: int = Field(default=1, ge=1)
    # A short session timeout keeps group joins quick on a one-node broker: joining a group
    # waited about half of it (23 s before the first record with the 45 s default).
    session_timeout_ms: int = Field(default=10_000, ge=6_000)
    client_timeout_ms: int = Field(default=10_000, ge=1_000)
    topics: TopicSettings = TopicSettings()
    # How the topics are created when missing.
    partitions: int = Field(default=3, ge=1)
    # Copies of each partition, and how many must hold a record before the broker acknowledges
    # it to an acks=all producer. Unset, they follow brokers: 1 and 1 for one node, 3 and 2
    # for a cluster of three or more (a write survives one node down, and one lost).
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _follow_brokers(cls, data: Any) -> Any:
        """Complete the bootstrap list and the replication defaults of a local cluster."""
        if not isinstance(data, dict):
            return data
        brokers = int(data.get("brokers", 1))
        if brokers > 1:
            listed = str(data.get("bootstrap_servers", "127.0.0.1:9092")).split(",")
            host, _, port = listed[0].rpartition(":")
            listed += [f"{host}:{int(port) + 100 * i}" for i in range(len(listed), brokers)]
            data = data | {"bootstrap_servers": ",".join(listed)}
        if "replication_factor" not in data:
            data = data | {"replication_factor": min(brokers, 3)}
        if "min_insync_replicas" not in data:
            factor = int(data["replication_factor"])
            data = data | {"min_insync_replicas": 2 if factor >= 3 else 1}
        return data

    @model_validator(mode="after")
    def _enough_replicas(self) -> Self:
        """Refuse more in-sync replicas than copies: no acks=all write could ever succeed."""
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"TIDEMARK_KAFKA_MIN_INSYNC_REPLICAS={self.min_insync_replicas} exceeds "
                f"TIDEMARK_KAFKA_REPLICATION_FACTOR={self.replication_factor}: no write could "
                "ever be acknowledged"
            )
        return self

    @property
    def addresses(self) -> list[str]:
        """The ``host:port`` pairs of bootstrap_servers."""
        return [a.strip() for a in self.bootstrap_servers.split(",") if a.strip()]


class StoreSettings(_Section):
    """The MongoDB training store."""

    uri: str = "mongodb://127.0.0.1:27017/"
    database: str = "tidemark"
    collection: str = "training_data"
    timeout_ms: int = Field(default=5_000, ge=500)


class RegistrySettings(_Section):
    """The MLflow tracking server and the registry contract."""

    tracking_uri: Addresses = "http://127.0.0.1:5000"
    # Each project's are its name (tidemark.project.catalog.project_settings); set, they move
    # the default project's.
    experiment: str = "tidemark"
    model_name: str = "tidemark"
    production_alias: str = "production"
    # The alias of the version running in shadow beside production (tidemark.judging.shadow).
    challenger_alias: str = "challenger"
    # How often a serving or scoring process asks the registry whether production moved.
    poll_interval_s: float = Field(default=5.0, gt=0)
    timeout_s: float = Field(default=3.0, gt=0)


class OrchestrationSettings(_Section):
    """The Prefect server that runs the train, retrain, promote and rollback deployments."""

    api_url: Addresses = "http://127.0.0.1:4200/api"
    # The Prefect process work pool the flows are deployed to and `tidemark worker` polls.
    work_pool: str = "tidemark"
    # How often a worker asks the pool for runs to start: it bounds how long a retrain the
    # monitor requested waits before a worker starts it (Prefect's default is 10 s).
    worker_poll_s: float = Field(default=5.0, gt=0)

    @property
    def ui_url(self) -> str:
        """The Prefect UI, served by the same server as its API."""
        return self.api_url.removesuffix("/").removesuffix("/api")


class StreamSettings(_Section):
    """The scorer and the joiner: consumer groups, poll batches, the join window, metrics."""

    scorer_group_id: str = "tidemark-scorer"
    joiner_group_id: str = "tidemark-joiner"
    max_batch: int = Field(default=1_000, ge=1)
    poll_timeout_ms: int = Field(default=500, ge=10)
    # Batches a consume→produce loop may have sent and not yet seen acknowledged; at the bound
    # it waits before sending another (tidemark.stream.pipelined).
    max_in_flight: int = Field(default=4, ge=1)
    # Larger records are dead-lettered unparsed (and truncated there) so they cannot stall a batch.
    # At most 900 kB: a dead letter (this much of a value, plus at most 16 kB of key, reason and
    # fields) must fit the producer's 1 MiB request limit, or the service could never send it.
    max_record_bytes: int = Field(default=65_536, ge=1_024, le=900_000)
    join_window_s: float = Field(default=60.0, gt=0, le=86_400)
    # Items joined recently, remembered so that a re-delivered half is not joined a second time.
    join_recent_ids: int = Field(default=100_000, ge=0)
    # Halves waiting for their partner, at most: past it the oldest are shed (logged and counted
    # as tidemark_joiner_shed_total), so one stream stalling cannot exhaust the joiner's memory.
    # 200,000 halves are about 300 MB; a line of 1,000 items/s with a 60 s window holds 60,000.
    join_max_pending: int = Field(default=200_000, ge=1)
    # How far an event time may lie ahead of the wall clock (clocks of a line drift by seconds;
    # five minutes forgives a badly set one) and behind it (a week: Kafka's default retention,
    # the oldest backlog a topic can hold). A record beyond either is dead-lettered, and no
    # event-time state (a watermark) moves past now + skew: one record dated decades ahead
    # would otherwise expire every pending half, and the end or the start of time overflows
    # window arithmetic.
    max_clock_skew_s: float = Field(default=300.0, gt=0, le=86_400)
    max_event_age_s: float = Field(default=604_800.0, gt=0, le=315_360_000)
    # A batch whose handling raised this many times is handled again one record at a time, and
    # a record that still fails alone is dead-lettered with the error: a bounded retry for a
    # fault no check foresaw, never a service that starts again on the same record for ever.
    max_record_failures: int = Field(default=3, ge=1)
    # Health (tidemark.stream.health): unhealthy after this many loop restarts in a row (with
    # the pause doubling from 2 s to 30 s, about a minute of failing), or when polled input stays
    # uncommitted longer than this (a batch commits within milliseconds when all is well; two
    # minutes outlasts a store or broker hiccup the loop rides out).
    max_loop_restarts: int = Field(default=5, ge=1)
    max_uncommitted_s: float = Field(default=120.0, gt=0, le=86_400)
    scorer_metrics_port: Port = 9101
    joiner_metrics_port: Port = 9102


class ServingSettings(_Section):
    """The model server."""

    host: str = "127.0.0.1"
    port: Port = 8000
    # Never empty: an empty token would let a request that carries none through.
    admin_token: SecretStr = SecretStr("change-me")
    # The largest batch one /predict call may carry, and the largest request body in bytes.
    max_batch: int = Field(default=1_000, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    # Processes answering on the port (`tidemark serve --workers`), each following the registry.
    workers: int = Field(default=1, ge=1)

    @field_validator("admin_token")
    @classmethod
    def _token_not_empty(cls, token: SecretStr) -> SecretStr:
        if not token.get_secret_value().strip():
            raise ValueError("the admin token may not be empty")
        return token

    @property
    def url(self) -> str:
        """Base URL of the model server."""
        return f"http://{self.host}:{self.port}"


class MonitorSettings(_Section):
    """The monitor: tumbling windows by measured_at, error and drift triggers, reports."""

    group_id: str = "tidemark-monitor"
    window_s: float = Field(default=60.0, gt=0)
    # How far behind the newest measured_at a record may arrive and still count in its window.
    allowed_lateness_s: float = Field(default=10.0, ge=0)
    # With no record for this long, open windows are closed (the line stopped).
    idle_flush_s: float = Field(default=120.0, gt=0)
    # Mean relative error above which the production model is retrained (the original's 0.10).
    error_threshold: float = Field(default=0.10, gt=0)
    # A window is judged only with at least this many items scored by the production version.
    min_window_count: int = Field(default=30, ge=1)
    retrain_on_drift: bool = True
    # A column drifts when its test's p-value is below this; the data drifts when at least
    # drift_share of the columns do.
    drift_p_value: float = Field(default=0.001, gt=0, lt=1)
    drift_share: float = Field(default=0.5, gt=0, le=1)
    reference_rows: int = Field(default=1_000, ge=10)
    # A retrain reads at most this many windows, ending with the one that fired; earlier ones
    # only while they hold no more items than it (see monitoring.policy.training_start).
    retrain_windows: int = Field(default=3, ge=1)
    # No repeat of an incident within this many seconds of the last retrain run it started.
    cooldown_s: float = Field(default=300.0, ge=0)
    # An incident whose retrain could not beat production is closed at the error the candidate
    # reached; it reopens only above max(threshold, that error * (1 + margin)).
    reopen_margin: float = Field(default=0.25, ge=0)
    # A segment with fewer judged items than min_window_count pools its items over at most this
    # many windows before it is judged; an incident gathering labelled items for its retrain
    # (retrain.min_* settings) waits at most as long.
    evidence_windows: int = Field(default=10, ge=1)
    # While an incident waits for another incident's retrain to end, how often (seconds) the
    # monitor asks Prefect whether it has.
    queue_check_s: float = Field(default=5.0, gt=0)
    # Metrics and reports name at most this many segments; later ones share the label "other"
    # (each label is a Prometheus series and an Evidently series, and a stream may send any).
    max_segments: int = Field(default=50, ge=1)
    # A window (or a segment of it) whose predictions got their truth less often than this is
    # reported "not judged: coverage N %" rather than ok (monitoring.coverage).
    coverage_floor: float = Field(default=0.8, ge=0, le=1)
    # A "truth feed silent" incident opens when at least truth_silence_min_items predictions of
    # a segment (or of all) are this many seconds old on the predictions' event-time clock and
    # none of them, nor any later item of it, has its truth joined (monitoring.silence).
    truth_silence_s: float = Field(default=120.0, gt=0)
    truth_silence_min_items: int = Field(default=5, ge=1)
    # Before the truth, the error expected of a segment the production version never saw, until
    # the monitor has measured one (monitoring.early_warning).
    early_warning_unseen_error: float = Field(default=0.2, gt=0)
    metrics_port: Port = 9103
    # Evidently workspace for the reports; state_dir/evidently when unset.
    evidently_workspace: Path | None = None


class RetrainSettings(_Section):
    """Training data, retraining, the evidence a retrain needs and promotion."""

    # How many of the most recent joined records a retrain reads. The original read 50, fewer
    # than the evidence one segment needs (see min_holdout_rows below): 300 give two segments
    # room to train on and judge.
    last_n: int = Field(default=300, ge=2)
    # A retrain on a window also reads up to this many of the latest records of each segment
    # the window lacks, so that a model retrained after one segment gave way to another still
    # knows the first when it comes back (0: the window alone).
    segment_memory: int = Field(default=200, ge=0)
    # The most recent share of each segment's records is held out to judge candidate and champion.
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    # Evidence before action (tidemark.judging.holdout): a retrain whose segments fall short of
    # these trains nothing and promotes nothing. 30 held-out items in all: below about 20 pairs the
    # signed-rank test has little power and its normal approximation is off. 15 per segment: a
    # segment's mean relative error is then known to about a quarter of its item-to-item spread
    # (1/sqrt(15)), fine enough to tell a 0.06 floor from a 0.10 threshold. 30 to train on per
    # segment: the default model's own law of a segment with two numeric features has three
    # coefficients, ten rows each.
    min_holdout_rows: int = Field(default=30, ge=5)
    min_holdout_rows_per_segment: int = Field(default=15, ge=5)
    min_training_rows_per_segment: int = Field(default=30, ge=3)
    # A candidate replaces the champion only if its mean relative error on the holdout is lower
    # by at least this share of the champion's (0.05: at least 5 % lower)...
    promotion_margin: float = Field(default=0.05, ge=0, lt=1)
    # ...and the one-sided Wilcoxon signed-rank test of its per-item errors against the
    # champion's on the same items gives a p-value below this.
    promotion_alpha: float = Field(default=0.05, gt=0, lt=1)
    # Transient MongoDB and MLflow errors are retried this many times before a task fails.
    transient_retries: int = Field(default=3, ge=0)
    transient_retry_delay_s: float = Field(default=2.0, ge=0)
    # A retrain pending or running for longer than this has lost its worker (killed, its machine
    # gone): it is marked crashed, which frees its incident for the next alarm's retrain. A
    # retrain takes tens of seconds on a 2-core machine (most of it importing MLflow and
    # pandas, plus the transient retries above); fifteen minutes leaves room for a slow store.
    max_run_s: float = Field(default=900.0, gt=0)


class ShadowSettings(_Section):
    """A challenger judged on live joined items beside production (tidemark.judging.shadow).

    Its promotion bar is the retrain's ``promotion_margin``.
    """

    # The sequential test's level: at most this chance, however often it is looked at, that a
    # challenger exactly at the promotion bar is promoted or retired.
    alpha: float = Field(default=0.05, gt=0, lt=1)
    # No verdict before this many joined items (overall, and per segment for a segment's verdict).
    min_items: int = Field(default=100, ge=2)
    # A challenger still undecided after this many items is retired for lack of evidence.
    max_items: int = Field(default=5_000, ge=2)
    # The standardised effect (mean error difference / its spread) found fastest; see
    # tidemark.judging.sequential. Smaller values favour small effects over long runs.
    effect_scale: float = Field(default=0.2, gt=0)
    # Per-item relative errors are capped here before they are compared (1.0: a 100 % error),
    # which bounds the differences and keeps the test's level near its nominal value.
    error_cap: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _min_within_max(self) -> Self:
        """Refuse a first verdict later than the last: every challenger would be retired."""
        if self.min_items > self.max_items:
            raise ValueError(
                f"TIDEMARK_SHADOW_MIN_ITEMS={self.min_items} exceeds "
                f"TIDEMARK_SHADOW_MAX_ITEMS={self.max_items}"
            )
        return self


class StackSettings(_Section):
    """The local stack (`make up`): where it keeps its state and what it runs."""

    state_dir: Path = Path(".tidemark")
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    kafka_version: str = "4.1.1"
    kafka_controller_port: Port = 9093
    # One node at a few items per second; the scorer benchmark's 20k events/s fit too.
    kafka_heap_mb: int = Field(default=256, ge=128)
    ferretdb_version: str = "v1.24.2"
    # FerretDB's own default (8088) collides between two instances on one machine.
    ferretdb_debug_port: Port = 8089
    start_timeout_s: float = Field(default=180.0, gt=0)
    # Scorer processes `make up` runs in one consumer group; scorer i (from 0) serves its
    # metrics on stream.scorer_metrics_port + 100·i. A partition feeds one scorer at a time, so
    # there must be at least as many partitions (kafka.partitions) as scorers.
    scorers: int = Field(default=1, ge=1)
    # `make up` runs the simulator gently, so that the UIs show a living system.
    simulator_rate: float = Field(default=5.0, gt=0)
    simulator_label_delay_s: float = Field(default=5.0, ge=0)
    simulator_missing_truth_fraction: float = Field(default=0.02, ge=0, le=1)
    # `make up` serves the monitor's Evidently workspace with `evidently ui` on this port.
    evidently_ui_port: Port = 8085


class ProjectsSettings(_Section):
    """Which projects (prediction streams) the stack runs (tidemark.project.catalog)."""

    # The folder of project files (``*.toml``, ``*.yaml``), relative to the working directory.
    dir: Path = Path("projects")
    # Comma-separated names of files in that folder (or paths) to run, the first being the
    # default project; every file of the folder, by name, when empty.
    names: str = ""

    @property
    def listed(self) -> tuple[str, ...]:
        """The names given, in order (none: every project of the folder)."""
        return tuple(n.strip() for n in self.names.split(",") if n.strip())


def _names_of(model: type[BaseModel], prefix: str = "") -> dict[str, tuple[str, ...]]:
    """Each field's name (``<prefix><field>``, a sub-section's fields one level down) and place."""
    found: dict[str, tuple[str, ...]] = {}
    for field, info in model.model_fields.items():
        name = f"{prefix}{field}"
        if isinstance(info.annotation, type) and issubclass(info.annotation, _Section):
            below = _names_of(info.annotation, f"{name}_")
            found |= {inner: (field, *place) for inner, place in below.items()}
        else:
            found[name] = (field,)
    return found


def _nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings given by name, or as whole sections, in section form.

    A name overrides the same field of a section given beside it; anything else is passed on
    as it is, for validation to accept (a section) or refuse.
    """
    values = with_current_names(values)
    nested: dict[str, Any] = {}
    _merge(nested, {key: value for key, value in values.items() if key not in NAMES})
    for name, value in values.items():
        if name in NAMES:
            *sections, field = NAMES[name]
            node = nested
            for section in sections:
                node = node.setdefault(section, {})
            node[field] = value
    return nested


def _merge(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Deep-merge ``update`` into ``into``; sections given as models merge as their fields."""
    for key, value in update.items():
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if isinstance(value, Mapping):
            if not isinstance(into.get(key), dict):
                into[key] = {}
            _merge(into[key], value)
        else:
            into[key] = value


def _variable(name: str) -> str:
    return f"{PREFIX}{name.upper()}"


def _from_variables(variables: Mapping[str, str | None]) -> dict[str, Any]:
    """The ``TIDEMARK_*`` variables (lower-cased, as pydantic-settings reads them) in section
    form; an unknown one stays under its own name, which validation refuses by name."""
    prefix = PREFIX.lower()
    given = with_current_names(
        {
            variable.removeprefix(prefix): value
            for variable, value in variables.items()
            if variable.startswith(prefix) and value is not None
        }
    )
    unknown = {_variable(name): value for name, value in given.items() if name not in NAMES}
    return _nest({name: value for name, value in given.items() if name in NAMES}) | unknown


class _Given(PydanticBaseSettingsSource):
    """Settings given by name (keywords, the environment, a ``.env`` file), in section form."""

    def __init__(
        self, settings_cls: type[BaseSettings], read: Callable[[], dict[str, Any]]
    ) -> None:
        super().__init__(settings_cls)
        self._read = read

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` reads every name at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._read()


_UNKNOWN = PydanticCustomError(
    "unknown_setting", "no setting has this name (tidemark.config.NAMES lists them)"
)


def _named(error: ValidationError) -> ValidationError:
    """The same errors, each one about a setting located by the setting's variable."""
    places = {place: name for name, place in NAMES.items()}
    details: list[InitErrorDetails] = []
    for found in error.errors():
        loc = tuple(found["loc"])
        for length in range(len(loc), 0, -1):
            if loc[:length] in places:
                loc = (_variable(places[loc[:length]]), *loc[length:])  # type: ignore[index]
                break
        detail = InitErrorDetails(type=found["type"], loc=loc, input=found["input"])
        if found["type"] == "extra_forbidden":
            detail["type"] = _UNKNOWN
        elif "ctx" in found:
            detail["ctx"] = found["ctx"]
        details.append(detail)
    return ValidationError.from_exception_data(error.title, details)


class Settings(BaseSettings):
    """Tidemark's configuration; see the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", extra="forbid", frozen=True
    )

    kafka: KafkaSettings = KafkaSettings()
    store: StoreSettings = StoreSettings()
    registry: RegistrySettings = RegistrySettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()
    stream: StreamSettings = StreamSettings()
    serving: ServingSettings = ServingSettings()
    monitor: MonitorSettings = MonitorSettings()
    retrain: RetrainSettings = RetrainSettings()
    shadow: ShadowSettings = ShadowSettings()
    stack: StackSettings = StackSettings()
    projects: ProjectsSettings = ProjectsSettings()

    def __init__(self, **values: Any) -> None:
        """Settings from keywords (names or whole sections), the environment and ``.env``.

        Keywords are checked when the settings are validated: an unknown name is refused, and
        every refusal names the setting's variable. pydantic-settings' own options
        (``_env_file=None`` ...) pass through.
        """
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise _named(error) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keywords, then the environment, then ``.env``, each by the settings' names."""
        assert isinstance(env_settings, EnvSettingsSource)
        assert isinstance(dotenv_settings, EnvSettingsSource)
        return (
            _Given(settings_cls, lambda: _nest(init_settings())),
            _Given(settings_cls, lambda: _from_variables(env_settings.env_vars)),
            _Given(settings_cls, lambda: _from_variables(dotenv_settings.env_vars)),
        )

    @model_validator(mode="after")
    def _scorers_fit_partitions(self) -> Settings:
        """Refuse more scorers than partitions: the extra ones would wait idle in the group."""
        if self.stack.scorers > self.kafka.partitions:
            raise ValueError(
                f"TIDEMARK_STACK_SCORERS={self.stack.scorers} needs at least as many partitions, "
                f"but TIDEMARK_KAFKA_PARTITIONS={self.kafka.partitions}: a partition feeds one "
                "scorer at a time. Raise TIDEMARK_KAFKA_PARTITIONS (on a fresh state folder, "
                "`make clean`: existing topics keep their partitions) or run fewer scorers."
            )
        return self

    def override(self, **changes: Any) -> Settings:
        """A copy with some settings changed, by name or as whole sections, validated.

        Settings never given stay unset in the copy, so that defaults derived from others (a
        cluster's replication) follow the change, and ``model_fields_set`` still tells what the
        environment or the caller chose.
        """
        values = self.model_dump(exclude_unset=True)
        _merge(values, _nest(changes))
        try:
            return type(self).model_validate(values)
        except ValidationError as error:
            raise _named(error) from None

    def as_env(self, *sections: Section) -> dict[str, str]:
        """The settings of these sections as ``TIDEMARK_*`` variables (``*SECTIONS``: all).

        A child process given them reads them back; one given only its own sections cannot
        come to depend on another component's settings.
        """
        wanted = set(sections)
        env = {}
        for name, place in NAMES.items():
            if place[0] not in wanted:
                continue
            owner: Any = self
            for part in place[:-1]:
                owner = getattr(owner, part)
            if place in PROJECT_NAMED and place[-1] not in owner.model_fields_set:
                # The child takes the project's own name; only an explicit choice is passed on.
                continue
            value: Any = getattr(owner, place[-1])
            if value is None:  # unset optional: the child falls back to the same default
                continue
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            env[_variable(name)] = text
        return env


# The sections whose fields name one project's things (its topics, registered model and
# experiment, collection): each project names its own (tidemark.project.catalog), and a stack
# setting given explicitly moves the default project's.
PROJECT_NAMED: frozenset[tuple[str, ...]] = frozenset(
    {
        *(("kafka", "topics", topic) for topic in TopicSettings.model_fields),
        ("registry", "model_name"),
        ("registry", "experiment"),
        ("store", "collection"),
    }
)

# Each setting's name, ``<section>_<field>`` (``kafka_topics_<topic>`` one level down), and its
# place; its environment variable is the name upper-cased behind the prefix.
NAMES: Mapping[str, tuple[str, ...]] = _names_of(Settings)


def port_of(address: str, default: int) -> int:
    """The port of a ``host:port`` pair or a URL, or ``default`` when it names none."""
    netloc = address if "//" in address else f"//{address.split(',')[0]}"
    return urlsplit(netloc).port or default


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once; inject this rather than building ``Settings()``."""
    return Settings()
