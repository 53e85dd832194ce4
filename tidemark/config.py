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
- ``shadow``: how a challenger running beside production is judged on live fish;
- ``stack``: what ``make up`` provisions and runs on this machine (state and cache folders,
  Kafka and FerretDB versions, heap, the gentle simulator, the Evidently UI).

Each setting keeps the one flat name it has always had (:data:`FLAT_NAMES`): the environment
variable ``TIDEMARK_<FLAT NAME>`` sets it, ``Settings(<flat name>=...)`` and
:meth:`Settings.override` take it, and :meth:`Settings.as_env` writes it for a child process.
Code reads the section field (``settings.kafka.bootstrap_servers``).

A kernel helper receives only the section it reads: the Kafka helpers take ``KafkaSettings``,
the training store ``StoreSettings``, the registry contract, its REST reader and the model
watcher ``RegistrySettings``, provisioning ``StackSettings``. The services (scorer, joiner,
monitor, API, flows) read the ``Settings`` they are given, and ``make up`` gives each service
process only the variables of the sections it reads (``as_env(*sections)``, the ``sections``
column of ``infra/local/services.py``). A service there reads the default of any setting
outside its sections, so that column names every section its code reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources import EnvSettingsSource

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
]
SECTIONS: tuple[Section, ...] = get_args(Section)


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "tidemark"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TopicSettings(_Section):
    """The Kafka topics of the data contract."""

    measurements: str = "fish.measurements"
    weights: str = "fish.weights"
    predictions: str = "fish.predictions"
    scored: str = "fish.scored"
    retrain_requests: str = "fish.retrain-requests"
    # Challenges, promotions, retirements and rollbacks (schemas.ModelDecision), keyed by model.
    model_decisions: str = "fish.model-decisions"
    dead_letter: str = "fish.dead-letter"

    @property
    def names(self) -> tuple[str, ...]:
        """Every topic of the data contract, in pipeline order."""
        return (
            self.measurements,
            self.weights,
            self.predictions,
            self.scored,
            self.retrain_requests,
            self.model_decisions,
            self.dead_letter,
        )


class KafkaSettings(_Section):
    """Where the brokers are, how long a client waits for them, and the contract's topics."""

    # A comma-separated list for a cluster: clients bootstrap from any node that answers.
    bootstrap_servers: str = "127.0.0.1:9092"
    # Kafka nodes of the local stack; 3 runs a replicated KRaft cluster (each node a broker and
    # a controller). Node i (from 0) listens on the i-th address of bootstrap_servers (when
    # fewer are listed, on the first one's port + 100·i, added to the list) and its controller
    # on stack.kafka_controller_port + 100·i.
    brokers: int = Field(default=1, ge=1)
    # A short session timeout keeps group joins quick on a one-node broker (see STACK-NOTES).
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

    tracking_uri: str = "http://127.0.0.1:5000"
    experiment: str = "fish-weight"
    model_name: str = "fish-weight"
    production_alias: str = "production"
    # The alias of the version running in shadow beside production (tidemark.challenge).
    challenger_alias: str = "challenger"
    # How often a serving or scoring process asks the registry whether production moved.
    poll_interval_s: float = Field(default=5.0, gt=0)
    timeout_s: float = Field(default=3.0, gt=0)


class OrchestrationSettings(_Section):
    """The Prefect server that runs the train, retrain, promote and rollback deployments."""

    api_url: str = "http://127.0.0.1:4200/api"
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
    max_record_bytes: int = Field(default=65_536, ge=1_024)
    join_window_s: float = Field(default=60.0, gt=0)
    # Fish joined recently, remembered so that a re-delivered half is not joined a second time.
    join_recent_ids: int = Field(default=100_000, ge=0)
    scorer_metrics_port: int = 9101
    joiner_metrics_port: int = 9102


class ServingSettings(_Section):
    """The model server."""

    host: str = "127.0.0.1"
    port: int = 8000
    admin_token: SecretStr = SecretStr("change-me")
    # The largest batch one /predict call may carry, and the largest request body in bytes.
    max_batch: int = Field(default=1_000, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    # Processes answering on the port (`tidemark serve --workers`), each following the registry.
    workers: int = Field(default=1, ge=1)

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
    # A window is judged only with at least this many fish scored by the production version.
    min_window_count: int = Field(default=30, ge=1)
    retrain_on_drift: bool = True
    # A column drifts when its test's p-value is below this; the data drifts when at least
    # drift_share of the columns do.
    drift_p_value: float = Field(default=0.001, gt=0, lt=1)
    drift_share: float = Field(default=0.5, gt=0, le=1)
    reference_rows: int = Field(default=1_000, ge=10)
    # A retrain reads at most this many windows, ending with the one that fired; earlier ones
    # only while they hold no more fish than it (see monitoring.policy.training_start).
    retrain_windows: int = Field(default=3, ge=1)
    # No repeat of an incident within this many seconds of the last retrain run it started.
    cooldown_s: float = Field(default=300.0, ge=0)
    # An incident whose retrain could not beat production is closed at the error the candidate
    # reached; it reopens only above max(threshold, that error * (1 + margin)).
    reopen_margin: float = Field(default=0.25, ge=0)
    # A species with fewer judged fish than min_window_count pools its fish over at most this
    # many windows before it is judged; an incident gathering labelled fish for its retrain
    # (retrain.min_* settings) waits at most as long.
    evidence_windows: int = Field(default=10, ge=1)
    # While an incident waits for another incident's retrain to end, how often (seconds) the
    # monitor asks Prefect whether it has.
    queue_check_s: float = Field(default=5.0, gt=0)
    metrics_port: int = 9103
    # Evidently workspace for the reports; state_dir/evidently when unset.
    evidently_workspace: Path | None = None


class RetrainSettings(_Section):
    """Training data, retraining, the evidence a retrain needs and promotion."""

    # How many of the most recent joined records a retrain reads. The original read 50, fewer
    # than the evidence one species needs (see min_holdout_rows below): 300 give two species
    # room to train on and judge.
    last_n: int = Field(default=300, ge=2)
    # A retrain on a window also reads up to this many of the latest records of each species
    # the window lacks, so that a model retrained after salmon gave way to walleye still knows
    # salmon when they come back (0: the window alone).
    species_memory: int = Field(default=200, ge=0)
    # The most recent share of each species' records is held out to judge candidate and champion.
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    # Evidence before action (tidemark.promotion): a retrain whose species fall short of these
    # trains nothing and promotes nothing. 30 held-out fish in all: below about 20 pairs the
    # signed-rank test has little power and its normal approximation is off. 15 per species: a
    # species' mean relative error is then known to about a quarter of its fish-to-fish spread
    # (1/sqrt(15)), fine enough to tell a 0.06 floor from a 0.10 threshold. 30 to train on per
    # species: a species' own law has three coefficients, ten rows each.
    min_holdout_rows: int = Field(default=30, ge=5)
    min_holdout_rows_per_species: int = Field(default=15, ge=5)
    min_training_rows_per_species: int = Field(default=30, ge=3)
    # A candidate replaces the champion only if its mean relative error on the holdout is lower
    # by at least this share of the champion's (0.05: at least 5 % lower)...
    promotion_margin: float = Field(default=0.05, ge=0, lt=1)
    # ...and the one-sided Wilcoxon signed-rank test of its per-fish errors against the
    # champion's on the same fish gives a p-value below this.
    promotion_alpha: float = Field(default=0.05, gt=0, lt=1)
    # Transient MongoDB and MLflow errors are retried this many times before a task fails.
    transient_retries: int = Field(default=3, ge=0)
    transient_retry_delay_s: float = Field(default=2.0, ge=0)


class ShadowSettings(_Section):
    """A challenger judged on live joined fish beside production (tidemark.challenge).

    Its promotion bar is the retrain's ``promotion_margin``.
    """

    # The sequential test's level: at most this chance, however often it is looked at, that a
    # challenger exactly at the promotion bar is promoted or retired.
    alpha: float = Field(default=0.05, gt=0, lt=1)
    # No verdict before this many joined fish (overall, and per species for a species' verdict).
    min_fish: int = Field(default=100, ge=2)
    # A challenger still undecided after this many fish is retired for lack of evidence.
    max_fish: int = Field(default=5_000, ge=2)
    # The standardised effect (mean error difference / its spread) found fastest; see
    # tidemark.sequential. Smaller values favour small effects over long runs.
    effect_scale: float = Field(default=0.2, gt=0)
    # Per-fish relative errors are capped here before they are compared (1.0: a 100 % error),
    # which bounds the differences and keeps the test's level near its nominal value.
    error_cap: float = Field(default=1.0, gt=0)


class StackSettings(_Section):
    """The local stack (`make up`): where it keeps its state and what it runs."""

    state_dir: Path = Path(".tidemark")
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    kafka_version: str = "4.1.1"
    kafka_controller_port: int = 9093
    # One node at a few fish per second; the scorer benchmark's 20k events/s fit too.
    kafka_heap_mb: int = Field(default=256, ge=128)
    ferretdb_version: str = "v1.24.2"
    # FerretDB's own default (8088) collides between two instances on one machine.
    ferretdb_debug_port: int = 8089
    start_timeout_s: float = Field(default=180.0, gt=0)
    # Scorer processes `make up` runs in one consumer group; scorer i (from 0) serves its
    # metrics on stream.scorer_metrics_port + 100·i. A partition feeds one scorer at a time, so
    # there must be at least as many partitions (kafka.partitions) as scorers.
    scorers: int = Field(default=1, ge=1)
    # `make up` runs the simulator gently, so that the UIs show a living system.
    simulator_rate: float = Field(default=5.0, gt=0)
    simulator_label_delay_s: float = Field(default=5.0, ge=0)
    simulator_missing_weight_fraction: float = Field(default=0.02, ge=0, le=1)
    # `make up` serves the monitor's Evidently workspace with `evidently ui` on this port.
    evidently_ui_port: int = 8085


# Each setting's flat name (its environment variable without the prefix) and its place.
FLAT_NAMES: Mapping[str, str] = {
    "kafka_bootstrap_servers": "kafka.bootstrap_servers",
    "kafka_brokers": "kafka.brokers",
    "kafka_session_timeout_ms": "kafka.session_timeout_ms",
    "kafka_client_timeout_ms": "kafka.client_timeout_ms",
    "topic_measurements": "kafka.topics.measurements",
    "topic_weights": "kafka.topics.weights",
    "topic_predictions": "kafka.topics.predictions",
    "topic_scored": "kafka.topics.scored",
    "topic_retrain_requests": "kafka.topics.retrain_requests",
    "topic_model_decisions": "kafka.topics.model_decisions",
    "topic_dead_letter": "kafka.topics.dead_letter",
    "topic_partitions": "kafka.partitions",
    "topic_replication_factor": "kafka.replication_factor",
    "topic_min_insync_replicas": "kafka.min_insync_replicas",
    "mongo_uri": "store.uri",
    "mongo_database": "store.database",
    "mongo_collection": "store.collection",
    "mongo_timeout_ms": "store.timeout_ms",
    "mlflow_tracking_uri": "registry.tracking_uri",
    "mlflow_experiment": "registry.experiment",
    "model_name": "registry.model_name",
    "production_alias": "registry.production_alias",
    "challenger_alias": "registry.challenger_alias",
    "registry_poll_interval_s": "registry.poll_interval_s",
    "registry_timeout_s": "registry.timeout_s",
    "prefect_api_url": "orchestration.api_url",
    "prefect_work_pool": "orchestration.work_pool",
    "prefect_worker_poll_s": "orchestration.worker_poll_s",
    "scorer_group_id": "stream.scorer_group_id",
    "joiner_group_id": "stream.joiner_group_id",
    "stream_max_batch": "stream.max_batch",
    "stream_poll_timeout_ms": "stream.poll_timeout_ms",
    "stream_max_in_flight": "stream.max_in_flight",
    "stream_max_record_bytes": "stream.max_record_bytes",
    "join_window_s": "stream.join_window_s",
    "join_recent_ids": "stream.join_recent_ids",
    "scorer_metrics_port": "stream.scorer_metrics_port",
    "joiner_metrics_port": "stream.joiner_metrics_port",
    "serving_host": "serving.host",
    "serving_port": "serving.port",
    "admin_token": "serving.admin_token",
    "serving_max_batch": "serving.max_batch",
    "serving_max_body_bytes": "serving.max_body_bytes",
    "serving_workers": "serving.workers",
    "monitor_group_id": "monitor.group_id",
    "monitor_window_s": "monitor.window_s",
    "monitor_allowed_lateness_s": "monitor.allowed_lateness_s",
    "monitor_idle_flush_s": "monitor.idle_flush_s",
    "monitor_error_threshold": "monitor.error_threshold",
    "monitor_min_window_count": "monitor.min_window_count",
    "monitor_retrain_on_drift": "monitor.retrain_on_drift",
    "monitor_drift_p_value": "monitor.drift_p_value",
    "monitor_drift_share": "monitor.drift_share",
    "monitor_reference_rows": "monitor.reference_rows",
    "monitor_retrain_windows": "monitor.retrain_windows",
    "monitor_cooldown_s": "monitor.cooldown_s",
    "monitor_reopen_margin": "monitor.reopen_margin",
    "monitor_evidence_windows": "monitor.evidence_windows",
    "monitor_queue_check_s": "monitor.queue_check_s",
    "monitor_metrics_port": "monitor.metrics_port",
    "evidently_workspace": "monitor.evidently_workspace",
    "retrain_last_n": "retrain.last_n",
    "retrain_species_memory": "retrain.species_memory",
    "holdout_fraction": "retrain.holdout_fraction",
    "min_holdout_rows": "retrain.min_holdout_rows",
    "min_holdout_rows_per_species": "retrain.min_holdout_rows_per_species",
    "min_training_rows_per_species": "retrain.min_training_rows_per_species",
    "promotion_margin": "retrain.promotion_margin",
    "promotion_alpha": "retrain.promotion_alpha",
    "transient_retries": "retrain.transient_retries",
    "transient_retry_delay_s": "retrain.transient_retry_delay_s",
    "shadow_alpha": "shadow.alpha",
    "shadow_min_fish": "shadow.min_fish",
    "shadow_max_fish": "shadow.max_fish",
    "shadow_effect_scale": "shadow.effect_scale",
    "shadow_error_cap": "shadow.error_cap",
    "state_dir": "stack.state_dir",
    "cache_dir": "stack.cache_dir",
    "kafka_version": "stack.kafka_version",
    "kafka_controller_port": "stack.kafka_controller_port",
    "kafka_heap_mb": "stack.kafka_heap_mb",
    "ferretdb_version": "stack.ferretdb_version",
    "ferretdb_debug_port": "stack.ferretdb_debug_port",
    "stack_start_timeout_s": "stack.start_timeout_s",
    "scorers": "stack.scorers",
    "simulator_rate": "stack.simulator_rate",
    "simulator_label_delay_s": "stack.simulator_label_delay_s",
    "simulator_missing_weight_fraction": "stack.simulator_missing_weight_fraction",
    "evidently_ui_port": "stack.evidently_ui_port",
}


def _nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings given by flat name, or as whole sections, in section form.

    A flat name overrides the same field of a section given beside it.
    """
    nested: dict[str, Any] = {}
    _merge(nested, {name: value for name, value in values.items() if name not in FLAT_NAMES})
    for name, value in values.items():
        if name in FLAT_NAMES:
            *parents, leaf = FLAT_NAMES[name].split(".")
            node = nested
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
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


class _FlatVariables(PydanticBaseSettingsSource):
    """The ``TIDEMARK_<FLAT NAME>`` variables of an environment (or a .env file), nested."""

    def __init__(self, settings_cls: type[BaseSettings], source: EnvSettingsSource) -> None:
        super().__init__(settings_cls)
        self._variables = source.env_vars

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` reads every flat name at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {}
        for name in FLAT_NAMES:
            value = self._variables.get(f"{PREFIX}{name}".lower())
            if value is not None:
                found[name] = value
        return _nest(found)


class _FlatKeywords(PydanticBaseSettingsSource):
    """Keyword arguments of ``Settings(...)``: flat names or whole sections."""

    def __init__(
        self, settings_cls: type[BaseSettings], source: PydanticBaseSettingsSource
    ) -> None:
        super().__init__(settings_cls)
        self._source = source

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` nests every keyword at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _nest(self._source())


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

    def __init__(self, **values: Any) -> None:
        """Settings from keywords (flat names or whole sections), the environment and ``.env``.

        Keywords are checked when the settings are validated: an unknown name is refused.
        pydantic-settings' own options (``_env_file=None`` ...) pass through.
        """
        super().__init__(**values)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keywords, then the environment, then ``.env``, each by the settings' flat names."""
        assert isinstance(env_settings, EnvSettingsSource)
        assert isinstance(dotenv_settings, EnvSettingsSource)
        return (
            _FlatKeywords(settings_cls, init_settings),
            _FlatVariables(settings_cls, env_settings),
            _FlatVariables(settings_cls, dotenv_settings),
        )

    @model_validator(mode="after")
    def _scorers_fit_partitions(self) -> Settings:
        """Refuse more scorers than partitions: the extra ones would wait idle in the group."""
        if self.stack.scorers > self.kafka.partitions:
            raise ValueError(
                f"TIDEMARK_SCORERS={self.stack.scorers} needs at least as many partitions, but "
                f"TIDEMARK_TOPIC_PARTITIONS={self.kafka.partitions}: a partition feeds one "
                "scorer at a time. Raise TIDEMARK_TOPIC_PARTITIONS (on a fresh state folder, "
                "`make clean`: existing topics keep their partitions) or run fewer scorers."
            )
        return self

    def override(self, **changes: Any) -> Settings:
        """A copy with some settings changed, by flat name or as whole sections, validated.

        Settings never given stay unset in the copy, so that defaults derived from others (a
        cluster's replication) follow the change, and ``model_fields_set`` still tells what the
        environment or the caller chose.
        """
        values = self.model_dump(exclude_unset=True)
        _merge(values, _nest(changes))
        return type(self).model_validate(values)

    def value(self, name: str) -> Any:
        """The setting of a flat name (``"mongo_uri"`` is ``settings.store.uri``)."""
        found: Any = self
        for part in FLAT_NAMES[name].split("."):
            found = getattr(found, part)
        return found

    def as_env(self, *sections: Section) -> dict[str, str]:
        """The settings of these sections as ``TIDEMARK_*`` variables (``*SECTIONS``: all).

        A child process given them reads them back; one given only its own sections cannot
        come to depend on another component's settings.
        """
        wanted = set(sections)
        env = {}
        for name, place in FLAT_NAMES.items():
            if place.split(".", 1)[0] not in wanted:
                continue
            value = self.value(name)
            if value is None:  # unset optional: the child falls back to the same default
                continue
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            env[f"{PREFIX}{name.upper()}"] = text
        return env


def port_of(address: str, default: int) -> int:
    """The port of a ``host:port`` pair or a URL, or ``default`` when it names none."""
    netloc = address if "//" in address else f"//{address.split(',')[0]}"
    return urlsplit(netloc).port or default


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once; inject this rather than building ``Settings()``."""
    return Settings()
