"""Settings come from the environment, in sections, by names derived from their place, are
checked with the variable named, and travel to child processes intact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from structlog.testing import capture_logs

from tidemark import deprecated_names
from tidemark.config import NAMES, PROJECT_NAMED, SECTIONS, Settings
from tidemark.deprecated_names import DEPRECATED_NAMES

# Every variable Tidemark read before its names were derived, and where it lands: each still
# works (for one release), those that break the rule with a warning.
OLD_VARIABLES = {
    "TIDEMARK_KAFKA_BOOTSTRAP_SERVERS": "kafka.bootstrap_servers",
    "TIDEMARK_KAFKA_BROKERS": "kafka.brokers",
    "TIDEMARK_KAFKA_SESSION_TIMEOUT_MS": "kafka.session_timeout_ms",
    "TIDEMARK_KAFKA_CLIENT_TIMEOUT_MS": "kafka.client_timeout_ms",
    "TIDEMARK_TOPIC_MEASUREMENTS": "kafka.topics.input",
    "TIDEMARK_TOPIC_WEIGHTS": "kafka.topics.truth",
    "TIDEMARK_TOPIC_PREDICTIONS": "kafka.topics.predictions",
    "TIDEMARK_TOPIC_SCORED": "kafka.topics.scored",
    "TIDEMARK_TOPIC_RETRAIN_REQUESTS": "kafka.topics.retrain_requests",
    "TIDEMARK_TOPIC_MODEL_DECISIONS": "kafka.topics.model_decisions",
    "TIDEMARK_TOPIC_DEAD_LETTER": "kafka.topics.dead_letter",
    "TIDEMARK_TOPIC_PARTITIONS": "kafka.partitions",
    "TIDEMARK_TOPIC_REPLICATION_FACTOR": "kafka.replication_factor",
    "TIDEMARK_TOPIC_MIN_INSYNC_REPLICAS": "kafka.min_insync_replicas",
    "TIDEMARK_MONGO_URI": "store.uri",
    "TIDEMARK_MONGO_DATABASE": "store.database",
    "TIDEMARK_MONGO_COLLECTION": "store.collection",
    "TIDEMARK_MONGO_TIMEOUT_MS": "store.timeout_ms",
    "TIDEMARK_MLFLOW_TRACKING_URI": "registry.tracking_uri",
    "TIDEMARK_MLFLOW_EXPERIMENT": "registry.experiment",
    "TIDEMARK_MODEL_NAME": "registry.model_name",
    "TIDEMARK_PRODUCTION_ALIAS": "registry.production_alias",
    "TIDEMARK_CHALLENGER_ALIAS": "registry.challenger_alias",
    "TIDEMARK_REGISTRY_POLL_INTERVAL_S": "registry.poll_interval_s",
    "TIDEMARK_REGISTRY_TIMEOUT_S": "registry.timeout_s",
    "TIDEMARK_PREFECT_API_URL": "orchestration.api_url",
    "TIDEMARK_PREFECT_WORK_POOL": "orchestration.work_pool",
    "TIDEMARK_PREFECT_WORKER_POLL_S": "orchestration.worker_poll_s",
    "TIDEMARK_SCORER_GROUP_ID": "stream.scorer_group_id",
    "TIDEMARK_JOINER_GROUP_ID": "stream.joiner_group_id",
    "TIDEMARK_STREAM_MAX_BATCH": "stream.max_batch",
    "TIDEMARK_STREAM_POLL_TIMEOUT_MS": "stream.poll_timeout_ms",
    "TIDEMARK_STREAM_MAX_IN_FLIGHT": "stream.max_in_flight",
    "TIDEMARK_STREAM_MAX_RECORD_BYTES": "stream.max_record_bytes",
    "TIDEMARK_JOIN_WINDOW_S": "stream.join_window_s",
    "TIDEMARK_JOIN_RECENT_IDS": "stream.join_recent_ids",
    "TIDEMARK_SCORER_METRICS_PORT": "stream.scorer_metrics_port",
    "TIDEMARK_JOINER_METRICS_PORT": "stream.joiner_metrics_port",
    "TIDEMARK_SERVING_HOST": "serving.host",
    "TIDEMARK_SERVING_PORT": "serving.port",
    "TIDEMARK_ADMIN_TOKEN": "serving.admin_token",
    "TIDEMARK_SERVING_MAX_BATCH": "serving.max_batch",
    "TIDEMARK_SERVING_MAX_BODY_BYTES": "serving.max_body_bytes",
    "TIDEMARK_SERVING_WORKERS": "serving.workers",
    "TIDEMARK_MONITOR_GROUP_ID": "monitor.group_id",
    "TIDEMARK_MONITOR_WINDOW_S": "monitor.window_s",
    "TIDEMARK_MONITOR_ALLOWED_LATENESS_S": "monitor.allowed_lateness_s",
    "TIDEMARK_MONITOR_IDLE_FLUSH_S": "monitor.idle_flush_s",
    "TIDEMARK_MONITOR_ERROR_THRESHOLD": "monitor.error_threshold",
    "TIDEMARK_MONITOR_MIN_WINDOW_COUNT": "monitor.min_window_count",
    "TIDEMARK_MONITOR_RETRAIN_ON_DRIFT": "monitor.retrain_on_drift",
    "TIDEMARK_MONITOR_DRIFT_P_VALUE": "monitor.drift_p_value",
    "TIDEMARK_MONITOR_DRIFT_SHARE": "monitor.drift_share",
    "TIDEMARK_MONITOR_REFERENCE_ROWS": "monitor.reference_rows",
    "TIDEMARK_MONITOR_RETRAIN_WINDOWS": "monitor.retrain_windows",
    "TIDEMARK_MONITOR_COOLDOWN_S": "monitor.cooldown_s",
    "TIDEMARK_MONITOR_REOPEN_MARGIN": "monitor.reopen_margin",
    "TIDEMARK_MONITOR_EVIDENCE_WINDOWS": "monitor.evidence_windows",
    "TIDEMARK_MONITOR_QUEUE_CHECK_S": "monitor.queue_check_s",
    "TIDEMARK_MONITOR_METRICS_PORT": "monitor.metrics_port",
    "TIDEMARK_EVIDENTLY_WORKSPACE": "monitor.evidently_workspace",
    "TIDEMARK_RETRAIN_LAST_N": "retrain.last_n",
    "TIDEMARK_RETRAIN_SPECIES_MEMORY": "retrain.segment_memory",
    "TIDEMARK_HOLDOUT_FRACTION": "retrain.holdout_fraction",
    "TIDEMARK_MIN_HOLDOUT_ROWS": "retrain.min_holdout_rows",
    "TIDEMARK_MIN_HOLDOUT_ROWS_PER_SPECIES": "retrain.min_holdout_rows_per_segment",
    "TIDEMARK_MIN_TRAINING_ROWS_PER_SPECIES": "retrain.min_training_rows_per_segment",
    "TIDEMARK_PROMOTION_MARGIN": "retrain.promotion_margin",
    "TIDEMARK_PROMOTION_ALPHA": "retrain.promotion_alpha",
    "TIDEMARK_TRANSIENT_RETRIES": "retrain.transient_retries",
    "TIDEMARK_TRANSIENT_RETRY_DELAY_S": "retrain.transient_retry_delay_s",
    "TIDEMARK_SHADOW_ALPHA": "shadow.alpha",
    "TIDEMARK_SHADOW_MIN_FISH": "shadow.min_items",
    "TIDEMARK_SHADOW_MAX_FISH": "shadow.max_items",
    "TIDEMARK_SHADOW_EFFECT_SCALE": "shadow.effect_scale",
    "TIDEMARK_SHADOW_ERROR_CAP": "shadow.error_cap",
    "TIDEMARK_STATE_DIR": "stack.state_dir",
    "TIDEMARK_CACHE_DIR": "stack.cache_dir",
    "TIDEMARK_KAFKA_VERSION": "stack.kafka_version",
    "TIDEMARK_KAFKA_CONTROLLER_PORT": "stack.kafka_controller_port",
    "TIDEMARK_KAFKA_HEAP_MB": "stack.kafka_heap_mb",
    "TIDEMARK_FERRETDB_VERSION": "stack.ferretdb_version",
    "TIDEMARK_FERRETDB_DEBUG_PORT": "stack.ferretdb_debug_port",
    "TIDEMARK_STACK_START_TIMEOUT_S": "stack.start_timeout_s",
    "TIDEMARK_SCORERS": "stack.scorers",
    "TIDEMARK_SIMULATOR_RATE": "stack.simulator_rate",
    "TIDEMARK_SIMULATOR_LABEL_DELAY_S": "stack.simulator_label_delay_s",
    "TIDEMARK_SIMULATOR_MISSING_WEIGHT_FRACTION": "stack.simulator_missing_truth_fraction",
    "TIDEMARK_EVIDENTLY_UI_PORT": "stack.evidently_ui_port",
}
# Names that followed the rule but spoke of one stream's words, renamed when the loop came to
# speak of any project's (issue 23).
RENAMED_FOR_PROJECTS = {
    "TIDEMARK_KAFKA_TOPICS_MEASUREMENTS": "kafka.topics.input",
    "TIDEMARK_KAFKA_TOPICS_WEIGHTS": "kafka.topics.truth",
    "TIDEMARK_RETRAIN_MIN_HOLDOUT_ROWS_PER_SPECIES": "retrain.min_holdout_rows_per_segment",
    "TIDEMARK_RETRAIN_MIN_TRAINING_ROWS_PER_SPECIES": "retrain.min_training_rows_per_segment",
    "TIDEMARK_STACK_SIMULATOR_MISSING_WEIGHT_FRACTION": "stack.simulator_missing_truth_fraction",
}


def _at(settings: Settings, place: str) -> Any:
    found: Any = settings
    for part in place.split("."):
        found = getattr(found, part)
    return found


def _place(name: str) -> str:
    return ".".join(NAMES[name])


# Settings whose values must agree with others: a cluster's addresses, no more scorers than
# partitions, no more in-sync replicas than copies.
AGREEING = {
    "kafka.brokers": "2",
    "kafka.bootstrap_servers": "h:1,h:2",
    "kafka.replication_factor": "3",
    "kafka.min_insync_replicas": "2",
    "stack.scorers": "2",
}


def _distinct_text(index: int, place: str, default: Any) -> str:
    """A valid value for a setting that differs from its default and from every other one."""
    if place in AGREEING:
        return AGREEING[place]
    if isinstance(default, bool):
        return str(not default).lower()
    if isinstance(default, int):
        return str(10_000 + index)
    if isinstance(default, float):
        return str(0.25 + index / 1000)
    if isinstance(default, Path) or default is None:
        return f"/srv/tidemark/{index}"
    return f"value-{index}"


def _section_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    places = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            places += _section_fields(annotation, f"{prefix}{name}.")
        else:
            places.append(f"{prefix}{name}")
    return places


def _shown(value: Any) -> str:
    return str(value.get_secret_value() if isinstance(value, SecretStr) else value).lower()


@pytest.fixture
def warned_never(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that has warned about no deprecated name yet."""
    monkeypatch.setattr(deprecated_names, "_warned", set())


def test_names_are_section_and_field_and_cover_every_setting() -> None:
    assert sorted(_place(name) for name in NAMES) == sorted(_section_fields(Settings))
    for name, place in NAMES.items():
        assert name == "_".join(place)
    assert NAMES["kafka_topics_scored"] == ("kafka", "topics", "scored")


def test_every_variable_lands_in_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings(_env_file=None)
    expected = {}
    for index, name in enumerate(NAMES):
        place = _place(name)
        text = _distinct_text(index, place, _at(defaults, place))
        monkeypatch.setenv(f"TIDEMARK_{name.upper()}", text)
        expected[place] = text
    settings = Settings(_env_file=None)
    for place, text in expected.items():
        assert _shown(_at(settings, place)) == text, place


def test_the_deprecated_names_are_the_old_variables_that_break_the_rule() -> None:
    renamed = {
        variable.removeprefix("TIDEMARK_").lower(): place
        for variable, place in (OLD_VARIABLES | RENAMED_FOR_PROJECTS).items()
        if variable.removeprefix("TIDEMARK_").lower() not in NAMES
    }
    assert set(DEPRECATED_NAMES) == set(renamed)
    for old, new in DEPRECATED_NAMES.items():
        assert _place(new) == renamed[old], old


@pytest.mark.usefixtures("warned_never")
def test_every_old_variable_still_works_and_a_renamed_one_warns_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = Settings(_env_file=None)
    expected = {}
    for index, (variable, place) in enumerate(OLD_VARIABLES.items()):
        text = _distinct_text(index, place, _at(defaults, place))
        monkeypatch.setenv(variable, text)
        expected[place] = text
    with capture_logs() as logs:
        settings = Settings(_env_file=None)
        again = Settings(_env_file=None)
    for place, text in expected.items():
        assert _shown(_at(settings, place)) == text, place
    assert again == settings
    warned = [entry for entry in logs if entry["event"] == "deprecated setting name"]
    deprecated = {f"TIDEMARK_{old.upper()}": new for old, new in DEPRECATED_NAMES.items()}
    given = {name: new for name, new in deprecated.items() if name in OLD_VARIABLES}
    assert sorted(entry["name"] for entry in warned) == sorted(given)
    assert {entry["log_level"] for entry in warned} == {"warning"}
    assert {entry["use"] for entry in warned} == {
        f"TIDEMARK_{new.upper()}" for new in given.values()
    }


@pytest.mark.usefixtures("warned_never")
def test_a_name_of_one_streams_words_still_works_and_warns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = Settings(_env_file=None)
    expected = {}
    for index, (variable, place) in enumerate(RENAMED_FOR_PROJECTS.items()):
        text = _distinct_text(index, place, _at(defaults, place))
        monkeypatch.setenv(variable, text)
        expected[place] = text
    with capture_logs() as logs:
        settings = Settings(_env_file=None)
    for place, text in expected.items():
        assert _shown(_at(settings, place)) == text, place
    warned = {entry["name"] for entry in logs if entry["event"] == "deprecated setting name"}
    assert warned == set(RENAMED_FOR_PROJECTS)


@pytest.mark.usefixtures("warned_never")
def test_the_new_name_wins_over_its_deprecated_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_MONGO_URI", "mongodb://old:1/")
    monkeypatch.setenv("TIDEMARK_STORE_URI", "mongodb://new:1/")
    assert Settings(_env_file=None).store.uri == "mongodb://new:1/"
    assert Settings(_env_file=None, mongo_uri="mongodb://kw:1/").store.uri == "mongodb://kw:1/"


def test_an_unknown_variable_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_MONITOR_WINDOWS_S", "15")
    with pytest.raises(ValidationError, match="TIDEMARK_MONITOR_WINDOWS_S\n  no setting has"):
        Settings(_env_file=None)


def test_a_whole_section_is_no_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_STORE", '{"uri": "mongodb://db:1/"}')
    with pytest.raises(ValidationError, match="TIDEMARK_STORE\n"):
        Settings(_env_file=None)


@pytest.mark.usefixtures("warned_never")
def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "TIDEMARK_REGISTRY_MODEL_NAME=from-dotenv\nTIDEMARK_KAFKA_TOPICS_SCORED=s\n"
        "TIDEMARK_MONGO_DATABASE=old-name\nOTHER_TOOL_SETTING=ignored\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIDEMARK_KAFKA_TOPICS_SCORED", "from-environment")
    settings = Settings()
    assert settings.registry.model_name == "from-dotenv"
    assert settings.kafka.topics.scored == "from-environment"
    assert settings.store.database == "old-name"


def test_keywords_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_STORE_URI", "mongodb://environment:1/")
    monkeypatch.setenv("TIDEMARK_STORE_DATABASE", "from-environment")
    settings = Settings(_env_file=None, store_uri="mongodb://keyword:1/", stack_state_dir="/srv/t")
    assert settings.store.uri == "mongodb://keyword:1/"
    assert settings.store.database == "from-environment"
    assert settings.stack.state_dir == Path("/srv/t")


def test_unknown_keywords_are_refused() -> None:
    with pytest.raises(ValidationError, match="kafka_bootstrap_server"):
        Settings(_env_file=None, kafka_bootstrap_server="typo:9092")


FLOATS = [name for name in NAMES if isinstance(_at(Settings(_env_file=None), _place(name)), float)]
PORTS = [name for name in NAMES if name.endswith("_port")]


# 1e999 is read as infinity.
@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "1e999"])
def test_every_number_is_finite(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(FLOATS) > 20
    for name in FLOATS:
        monkeypatch.setenv(f"TIDEMARK_{name.upper()}", text)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)
    assert [error["loc"] for error in refused.value.errors()] == [
        (f"TIDEMARK_{name.upper()}",) for name in FLOATS
    ]
    assert {error["type"] for error in refused.value.errors()} == {"finite_number"}


@pytest.mark.parametrize("port", [0, -1, 65_536])
def test_every_port_is_in_range(port: int) -> None:
    assert len(PORTS) == 7
    for name in PORTS:
        with pytest.raises(ValidationError, match=f"TIDEMARK_{name.upper()}\n"):
            Settings(_env_file=None, **{name: port})
    assert Settings(_env_file=None, serving_port=65_535).serving.port == 65_535


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("kafka_bootstrap_servers", "h:1,h:65536"),
        ("kafka_bootstrap_servers", "h:0"),
        ("kafka_bootstrap_servers", "h:x"),
        ("registry_tracking_uri", "http://127.0.0.1:99999"),
        ("orchestration_api_url", "http://127.0.0.1:0/api"),
    ],
)
def test_ports_in_addresses_are_in_range(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=f"TIDEMARK_{name.upper()}\n.*1-65535"):
        Settings(_env_file=None, **{name: value})


def test_addresses_without_a_port_are_fine() -> None:
    settings = Settings(_env_file=None, kafka_bootstrap_servers="kafka-1,kafka-2:9092")
    assert settings.kafka.addresses == ["kafka-1", "kafka-2:9092"]
    assert Settings(_env_file=None, registry_tracking_uri="https://mlflow.example")


def test_a_minimum_above_its_maximum_is_refused() -> None:
    with pytest.raises(ValidationError, match="TIDEMARK_SHADOW_MIN_ITEMS=300 exceeds TIDEMARK_SHA"):
        Settings(_env_file=None, shadow_min_items=300, shadow_max_items=200)
    assert (
        Settings(_env_file=None, shadow_min_items=200, shadow_max_items=200).shadow.min_items == 200
    )
    with pytest.raises(ValidationError, match="TIDEMARK_KAFKA_MIN_INSYNC_REPLICAS=3 exceeds"):
        Settings(
            _env_file=None, kafka_brokers=3, kafka_replication_factor=2, kafka_min_insync_replicas=3
        )


@pytest.mark.parametrize("token", ["", "   "])
def test_an_empty_admin_token_is_refused(token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_SERVING_ADMIN_TOKEN", token)
    with pytest.raises(ValidationError, match=r"TIDEMARK_SERVING_ADMIN_TOKEN\n.*may not be empty"):
        Settings(_env_file=None)


def test_bad_values_are_refused_with_the_variable_named() -> None:
    with pytest.raises(ValidationError, match="TIDEMARK_KAFKA_PARTITIONS\n"):
        Settings(_env_file=None, kafka_partitions=0)


def test_override_takes_names_and_sections_and_validates() -> None:
    settings = Settings(_env_file=None)
    changed = settings.override(kafka_topics_scored="t.scored", store=settings.store.model_copy())
    assert changed.kafka.topics.scored == "t.scored"
    assert changed.kafka.topics.truth == settings.kafka.topics.truth
    assert changed.store == settings.store
    assert settings.kafka.topics.scored == "tidemark.scored"
    with pytest.raises(ValidationError, match="TIDEMARK_MONITOR_WINDOW_S\n"):
        settings.override(monitor_window_s=0)


def test_as_env_round_trips_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(
        _env_file=None,
        store_uri="mongodb://db:1/",
        serving_admin_token=SecretStr("s3cret"),
        stack_state_dir=Path("/srv/tidemark"),
        monitor_evidently_workspace=Path("/srv/evidently"),
    )
    env = original.as_env(*SECTIONS)
    named = {name for name, place in NAMES.items() if place in PROJECT_NAMED}
    assert set(env) == {f"TIDEMARK_{name.upper()}" for name in NAMES if name not in named}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings(_env_file=None) == original


def test_as_env_of_sections_holds_only_their_variables() -> None:
    env = Settings(_env_file=None).as_env("kafka", "store")
    assert set(env) == {
        f"TIDEMARK_{name.upper()}"
        for name, place in NAMES.items()
        if place[0] in {"kafka", "store"} and place not in PROJECT_NAMED
    }
    assert "TIDEMARK_STACK_STATE_DIR" not in env
    assert Settings(_env_file=None).as_env() == {}
    assert set(SECTIONS) == {place[0] for place in NAMES.values()}


def test_a_project_s_names_pass_to_a_child_only_when_chosen() -> None:
    chosen = Settings(_env_file=None, kafka_topics_scored="t1.scored", store_collection="c1")
    env = chosen.as_env("kafka", "store", "registry")
    assert env["TIDEMARK_KAFKA_TOPICS_SCORED"] == "t1.scored"
    assert env["TIDEMARK_STORE_COLLECTION"] == "c1"
    assert "TIDEMARK_KAFKA_TOPICS_INPUT" not in env
    assert "TIDEMARK_REGISTRY_MODEL_NAME" not in env


def test_the_readme_lists_every_variable() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    missing = [name for name in NAMES if f"`{name.upper()}`" not in readme]
    assert not missing


def test_derived_urls() -> None:
    settings = Settings(_env_file=None, orchestration_api_url="http://h:1/api", serving_port=81)
    assert settings.orchestration.ui_url == "http://h:1"
    assert settings.serving.url == "http://127.0.0.1:81"
    assert len(settings.kafka.topics.names) == 7


def test_a_local_cluster_lists_every_node_and_replicates_by_default() -> None:
    one = Settings(_env_file=None).kafka
    assert (one.replication_factor, one.min_insync_replicas) == (1, 1)
    three = Settings(_env_file=None, kafka_brokers=3).kafka
    assert three.addresses == ["127.0.0.1:9092", "127.0.0.1:9192", "127.0.0.1:9292"]
    assert (three.replication_factor, three.min_insync_replicas) == (3, 2)
    listed = Settings(_env_file=None, kafka_brokers=3, kafka_bootstrap_servers="h:1,h:2,h:3")
    assert listed.kafka.addresses == ["h:1", "h:2", "h:3"]
    chosen = Settings(_env_file=None, kafka_brokers=3, kafka_replication_factor=2).kafka
    assert (chosen.replication_factor, chosen.min_insync_replicas) == (2, 1)


def test_override_keeps_what_was_never_chosen_unset() -> None:
    settings = Settings(_env_file=None, store_uri="mongodb://db:1/")
    grown = settings.override(kafka_brokers=3)
    # The replication defaults follow the cluster's size, as they would from the environment.
    assert (grown.kafka.replication_factor, grown.kafka.min_insync_replicas) == (3, 2)
    assert grown.store.uri == "mongodb://db:1/"
    assert "admin_token" not in grown.serving.model_fields_set
    assert "admin_token" in grown.override(serving_admin_token="t").serving.model_fields_set


def test_more_scorers_than_partitions_are_refused_with_the_way_out() -> None:
    with pytest.raises(ValidationError, match="TIDEMARK_KAFKA_PARTITIONS=3"):
        Settings(_env_file=None, stack_scorers=4)
    assert Settings(_env_file=None, stack_scorers=4, kafka_partitions=4).stack.scorers == 4
    assert Settings(_env_file=None, stack_scorers=3).kafka.partitions == 3
