"""The settings' names from before they were derived from section and field, kept for one release.

A setting's name is now ``<section>_<field>`` (``TIDEMARK_STORE_URI``, see ``tidemark.config``).
The names below broke that rule; each still works, as an environment variable, a ``.env`` line or
a ``Settings(...)``/``override`` keyword, and logs a warning the first time a process reads it.
Where a name and its replacement are both given, the replacement wins. This module goes, with
every caller's last use of these names, one release after the rename.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from tidemark.logs import get_logger

log = get_logger("config")

Value = TypeVar("Value")

# Old name → new name, both without the TIDEMARK_ prefix.
DEPRECATED_NAMES: Mapping[str, str] = {
    "topic_measurements": "kafka_topics_input",
    "topic_weights": "kafka_topics_truth",
    "topic_predictions": "kafka_topics_predictions",
    "topic_scored": "kafka_topics_scored",
    "topic_retrain_requests": "kafka_topics_retrain_requests",
    "topic_model_decisions": "kafka_topics_model_decisions",
    "topic_dead_letter": "kafka_topics_dead_letter",
    "topic_partitions": "kafka_partitions",
    "topic_replication_factor": "kafka_replication_factor",
    "topic_min_insync_replicas": "kafka_min_insync_replicas",
    "mongo_uri": "store_uri",
    "mongo_database": "store_database",
    "mongo_collection": "store_collection",
    "mongo_timeout_ms": "store_timeout_ms",
    "mlflow_tracking_uri": "registry_tracking_uri",
    "mlflow_experiment": "registry_experiment",
    "model_name": "registry_model_name",
    "production_alias": "registry_production_alias",
    "challenger_alias": "registry_challenger_alias",
    "prefect_api_url": "orchestration_api_url",
    "prefect_work_pool": "orchestration_work_pool",
    "prefect_worker_poll_s": "orchestration_worker_poll_s",
    "scorer_group_id": "stream_scorer_group_id",
    "joiner_group_id": "stream_joiner_group_id",
    "join_window_s": "stream_join_window_s",
    "join_recent_ids": "stream_join_recent_ids",
    "scorer_metrics_port": "stream_scorer_metrics_port",
    "joiner_metrics_port": "stream_joiner_metrics_port",
    "admin_token": "serving_admin_token",
    "evidently_workspace": "monitor_evidently_workspace",
    "holdout_fraction": "retrain_holdout_fraction",
    "min_holdout_rows": "retrain_min_holdout_rows",
    "min_holdout_rows_per_species": "retrain_min_holdout_rows_per_segment",
    "min_training_rows_per_species": "retrain_min_training_rows_per_segment",
    "promotion_margin": "retrain_promotion_margin",
    "promotion_alpha": "retrain_promotion_alpha",
    "transient_retries": "retrain_transient_retries",
    "transient_retry_delay_s": "retrain_transient_retry_delay_s",
    "state_dir": "stack_state_dir",
    "cache_dir": "stack_cache_dir",
    "kafka_version": "stack_kafka_version",
    "kafka_controller_port": "stack_kafka_controller_port",
    "kafka_heap_mb": "stack_kafka_heap_mb",
    "ferretdb_version": "stack_ferretdb_version",
    "ferretdb_debug_port": "stack_ferretdb_debug_port",
    "scorers": "stack_scorers",
    "simulator_rate": "stack_simulator_rate",
    "simulator_label_delay_s": "stack_simulator_label_delay_s",
    "simulator_missing_weight_fraction": "stack_simulator_missing_truth_fraction",
    "evidently_ui_port": "stack_evidently_ui_port",
    # Named after one stream's words until the loop spoke of any project's (issue 23).
    "kafka_topics_measurements": "kafka_topics_input",
    "kafka_topics_weights": "kafka_topics_truth",
    "retrain_min_holdout_rows_per_species": "retrain_min_holdout_rows_per_segment",
    "retrain_min_training_rows_per_species": "retrain_min_training_rows_per_segment",
    "retrain_species_memory": "retrain_segment_memory",
    "shadow_min_fish": "shadow_min_items",
    "shadow_max_fish": "shadow_max_items",
    "stack_simulator_missing_weight_fraction": "stack_simulator_missing_truth_fraction",
}

_warned: set[str] = set()


def with_current_names(given: Mapping[str, Value]) -> dict[str, Value]:
    """``given`` with each deprecated name replaced by its current one (warned once a process).

    A current name given beside its deprecated one keeps its own value.
    """
    current = {name: value for name, value in given.items() if name not in DEPRECATED_NAMES}
    for name, value in given.items():
        if name in DEPRECATED_NAMES:
            replacement = DEPRECATED_NAMES[name]
            _warn_once(name, replacement)
            current.setdefault(replacement, value)
    return current


def _warn_once(name: str, replacement: str) -> None:
    if name in _warned:
        return
    _warned.add(name)
    log.warning(
        "deprecated setting name",
        name=f"TIDEMARK_{name.upper()}",
        use=f"TIDEMARK_{replacement.upper()}",
        note="the old name stops working in the next release",
    )
