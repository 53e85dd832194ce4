"""All of Tidemark's settings, in one object.

Every process reads its configuration from here: environment variables with the ``TIDEMARK_``
prefix, then a ``.env`` file in the working directory, then the defaults below, which describe
the local stack on 127.0.0.1. Pointing Tidemark at a real Kafka cluster, MongoDB replica set,
MLflow server or Prefect server is a matter of setting the endpoint variables; nothing else
changes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "tidemark"


class Settings(BaseSettings):
    """Tidemark's configuration; see the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        env_prefix="TIDEMARK_", env_file=".env", extra="ignore", frozen=True
    )

    # Endpoints of the four real components. The local stack serves exactly these addresses.
    # A comma-separated list for a cluster: clients bootstrap from any node that answers.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongo_uri: str = "mongodb://127.0.0.1:27017/"
    mongo_database: str = "tidemark"
    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    prefect_api_url: str = "http://127.0.0.1:4200/api"

    # Kafka topics of the data contract.
    topic_measurements: str = "fish.measurements"
    topic_weights: str = "fish.weights"
    topic_predictions: str = "fish.predictions"
    topic_scored: str = "fish.scored"
    topic_retrain_requests: str = "fish.retrain-requests"
    topic_dead_letter: str = "fish.dead-letter"
    topic_partitions: int = Field(default=3, ge=1)
    # Copies of each partition, and how many must hold a record before the broker acknowledges
    # it to an acks=all producer. Unset, they follow kafka_brokers: 1 and 1 for one node, 3 and 2
    # for a cluster of three or more (a write survives one node down, and one lost).
    topic_replication_factor: int = Field(default=1, ge=1)
    topic_min_insync_replicas: int = Field(default=1, ge=1)
    # A short session timeout keeps group joins quick on a one-node broker (see STACK-NOTES).
    kafka_session_timeout_ms: int = Field(default=10_000, ge=6_000)
    kafka_client_timeout_ms: int = Field(default=10_000, ge=1_000)

    # Streaming (simulator, scorer, joiner).
    scorer_group_id: str = "tidemark-scorer"
    joiner_group_id: str = "tidemark-joiner"
    stream_max_batch: int = Field(default=1_000, ge=1)
    stream_poll_timeout_ms: int = Field(default=500, ge=10)
    # Batches a consume→produce loop may have sent and not yet seen acknowledged; at the bound
    # it waits before sending another (tidemark.pipelined).
    stream_max_in_flight: int = Field(default=4, ge=1)
    # Larger records are dead-lettered unparsed (and truncated there) so they cannot stall a batch.
    stream_max_record_bytes: int = Field(default=65_536, ge=1_024)
    join_window_s: float = Field(default=60.0, gt=0)
    # Fish joined recently, remembered so that a re-delivered half is not joined a second time.
    join_recent_ids: int = Field(default=100_000, ge=0)
    scorer_metrics_port: int = 9101
    joiner_metrics_port: int = 9102
    # `make up` runs the simulator gently, so that the UIs show a living system.
    simulator_rate: float = Field(default=5.0, gt=0)
    simulator_label_delay_s: float = Field(default=5.0, ge=0)
    simulator_missing_weight_fraction: float = Field(default=0.02, ge=0, le=1)

    # Registry contract.
    model_name: str = "fish-weight"
    production_alias: str = "production"
    # How often a serving or scoring process asks the registry whether production moved.
    registry_poll_interval_s: float = Field(default=5.0, gt=0)
    registry_timeout_s: float = Field(default=3.0, gt=0)

    # Serving.
    serving_host: str = "127.0.0.1"
    serving_port: int = 8000
    admin_token: SecretStr = SecretStr("change-me")
    # The largest batch one /predict call may carry, and the largest request body in bytes.
    serving_max_batch: int = Field(default=1_000, ge=1)
    serving_max_body_bytes: int = Field(default=1_048_576, ge=1_024)

    # Monitoring: tumbling windows by measured_at, error and drift triggers, reports.
    monitor_group_id: str = "tidemark-monitor"
    monitor_window_s: float = Field(default=60.0, gt=0)
    # How far behind the newest measured_at a record may arrive and still count in its window.
    monitor_allowed_lateness_s: float = Field(default=10.0, ge=0)
    # With no record for this long, open windows are closed (the line stopped).
    monitor_idle_flush_s: float = Field(default=120.0, gt=0)
    # Mean relative error above which the production model is retrained (the original's 0.10).
    monitor_error_threshold: float = Field(default=0.10, gt=0)
    # A window is judged only with at least this many fish scored by the production version.
    monitor_min_window_count: int = Field(default=30, ge=1)
    monitor_retrain_on_drift: bool = True
    # A column drifts when its test's p-value is below this; the data drifts when at least
    # drift_share of the columns do.
    monitor_drift_p_value: float = Field(default=0.001, gt=0, lt=1)
    monitor_drift_share: float = Field(default=0.5, gt=0, le=1)
    monitor_reference_rows: int = Field(default=1_000, ge=10)
    # A retrain reads at most this many windows, ending with the one that fired; earlier ones
    # only while they hold no more fish than it (see monitoring.policy.training_start).
    monitor_retrain_windows: int = Field(default=3, ge=1)
    # No repeat of an incident within this many seconds of the last retrain run it started.
    monitor_cooldown_s: float = Field(default=300.0, ge=0)
    # An incident whose retrain could not beat production is closed at the error the candidate
    # reached; it reopens only above max(threshold, that error * (1 + margin)).
    monitor_reopen_margin: float = Field(default=0.25, ge=0)
    # A species with fewer judged fish than monitor_min_window_count pools its fish over at
    # most this many windows before it is judged.
    monitor_evidence_windows: int = Field(default=10, ge=1)
    # While an incident waits for another incident's retrain to end, how often (seconds) the
    # monitor asks Prefect whether it has.
    monitor_queue_check_s: float = Field(default=5.0, gt=0)
    monitor_metrics_port: int = 9103
    # Evidently workspace for the reports; state_dir/evidently when unset.
    evidently_workspace: Path | None = None
    # `make up` serves the workspace with `evidently ui` on this port.
    evidently_ui_port: int = 8085

    # Training data, retraining and promotion.
    mongo_collection: str = "training_data"
    mongo_timeout_ms: int = Field(default=5_000, ge=500)
    mlflow_experiment: str = "fish-weight"
    # How many of the most recent joined records a retrain reads. The original read 50, fewer
    # than the evidence one species needs (see min_holdout_rows below): 300 give two species
    # room to train on and judge.
    retrain_last_n: int = Field(default=300, ge=2)
    # A retrain on a window also reads up to this many of the latest records of each species
    # the window lacks, so that a model retrained after salmon gave way to walleye still knows
    # salmon when they come back (0: the window alone).
    retrain_species_memory: int = Field(default=200, ge=0)
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

    # The local stack (`make up`): where it keeps its state and what it runs.
    state_dir: Path = Path(".tidemark")
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    kafka_version: str = "4.1.1"
    # Kafka nodes of the local stack; 3 runs a replicated KRaft cluster (each node a broker and
    # a controller). Node i (from 0) listens on the i-th address of kafka_bootstrap_servers (when
    # fewer are listed, on the first one's port + 100·i, added to the list) and its controller
    # on kafka_controller_port + 100·i.
    kafka_brokers: int = Field(default=1, ge=1)
    kafka_controller_port: int = 9093
    # One node at a few fish per second; the scorer benchmark's 20k events/s fit too.
    kafka_heap_mb: int = Field(default=256, ge=128)
    ferretdb_version: str = "v1.24.2"
    # FerretDB's own default (8088) collides between two instances on one machine.
    ferretdb_debug_port: int = 8089
    stack_start_timeout_s: float = Field(default=180.0, gt=0)

    # --- shadow: a challenger judged on live joined fish beside production (tidemark.challenge)
    # The registry alias of the version running in shadow.
    challenger_alias: str = "challenger"
    # Challenges, promotions, retirements and rollbacks (schemas.ModelDecision), keyed by model.
    topic_model_decisions: str = "fish.model-decisions"
    # The sequential test's level: at most this chance, however often it is looked at, that a
    # challenger exactly at the promotion bar is promoted or retired.
    shadow_alpha: float = Field(default=0.05, gt=0, lt=1)
    # No verdict before this many joined fish (overall, and per species for a species' verdict).
    shadow_min_fish: int = Field(default=100, ge=2)
    # A challenger still undecided after this many fish is retired for lack of evidence.
    shadow_max_fish: int = Field(default=5_000, ge=2)
    # The standardised effect (mean error difference / its spread) found fastest; see
    # tidemark.sequential. Smaller values favour small effects over long runs.
    shadow_effect_scale: float = Field(default=0.2, gt=0)
    # Per-fish relative errors are capped here before they are compared (1.0: a 100 % error),
    # which bounds the differences and keeps the test's level near its nominal value.
    shadow_error_cap: float = Field(default=1.0, gt=0)

    # --- scale-out: several scorers (section: stack) and Prefect workers (the section of
    # prefect_api_url)
    # Scorer processes `make up` runs in one consumer group (scorer_group_id); scorer i (from 0)
    # serves its metrics on scorer_metrics_port + 100·i. A partition feeds one scorer at a time,
    # so there must be at least as many partitions (topic_partitions) as scorers.
    scorers: int = Field(default=1, ge=1)
    # The Prefect process work pool the flows are deployed to and `tidemark worker` polls.
    prefect_work_pool: str = "tidemark"
    # How often a worker asks the pool for runs to start: it bounds how long a retrain the
    # monitor requested waits before a worker starts it (Prefect's default is 10 s).
    prefect_worker_poll_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _follow_kafka_brokers(cls, data: Any) -> Any:
        """Complete the bootstrap list and the replication defaults of a local cluster."""
        if not isinstance(data, dict):
            return data
        brokers = int(data.get("kafka_brokers", 1))
        if brokers > 1:
            listed = str(data.get("kafka_bootstrap_servers", "127.0.0.1:9092")).split(",")
            host, _, port = listed[0].rpartition(":")
            listed += [f"{host}:{int(port) + 100 * i}" for i in range(len(listed), brokers)]
            data = data | {"kafka_bootstrap_servers": ",".join(listed)}
        if "topic_replication_factor" not in data:
            data = data | {"topic_replication_factor": min(brokers, 3)}
        if "topic_min_insync_replicas" not in data:
            factor = int(data["topic_replication_factor"])
            data = data | {"topic_min_insync_replicas": 2 if factor >= 3 else 1}
        return data

    @model_validator(mode="after")
    def _scorers_fit_partitions(self) -> Settings:
        """Refuse more scorers than partitions: the extra ones would wait idle in the group."""
        if self.scorers > self.topic_partitions:
            raise ValueError(
                f"TIDEMARK_SCORERS={self.scorers} needs at least as many partitions, but "
                f"TIDEMARK_TOPIC_PARTITIONS={self.topic_partitions}: a partition feeds one scorer "
                "at a time. Raise TIDEMARK_TOPIC_PARTITIONS (on a fresh state folder, `make "
                "clean`: existing topics keep their partitions) or run fewer scorers."
            )
        return self

    @property
    def kafka_addresses(self) -> list[str]:
        """The ``host:port`` pairs of kafka_bootstrap_servers."""
        return [a.strip() for a in self.kafka_bootstrap_servers.split(",") if a.strip()]

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic of the data contract, in pipeline order."""
        return (
            self.topic_measurements,
            self.topic_weights,
            self.topic_predictions,
            self.topic_scored,
            self.topic_retrain_requests,
            self.topic_model_decisions,
            self.topic_dead_letter,
        )

    @property
    def prefect_ui_url(self) -> str:
        """The Prefect UI, served by the same server as its API."""
        return self.prefect_api_url.removesuffix("/").removesuffix("/api")

    def as_env(self) -> dict[str, str]:
        """These settings as ``TIDEMARK_*`` variables, for a child process to read back."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None:  # unset optional: the child falls back to the same default
                continue
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            env[f"TIDEMARK_{name.upper()}"] = text
        return env

    @property
    def serving_url(self) -> str:
        """Base URL of the model server."""
        return f"http://{self.serving_host}:{self.serving_port}"


def port_of(address: str, default: int) -> int:
    """The port of a ``host:port`` pair or a URL, or ``default`` when it names none."""
    netloc = address if "//" in address else f"//{address.split(',')[0]}"
    return urlsplit(netloc).port or default


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once; inject this rather than building ``Settings()``."""
    return Settings()
