"""Settings come from the environment and travel to child processes intact."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from tidemark.config import Settings


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("TIDEMARK_TOPIC_PARTITIONS", "6")
    settings = Settings(_env_file=None)
    assert settings.kafka_bootstrap_servers == "broker:9092"
    assert settings.topic_partitions == 6


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("TIDEMARK_MODEL_NAME=from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().model_name == "from-dotenv"


def test_bad_values_are_refused_with_the_setting_named() -> None:
    with pytest.raises(ValidationError, match="topic_partitions"):
        Settings(_env_file=None, topic_partitions=0)


def test_as_env_round_trips_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(
        _env_file=None,
        mongo_uri="mongodb://db:1/",
        admin_token=SecretStr("s3cret"),
        state_dir=Path("/srv/tidemark"),
    )
    for key, value in original.as_env().items():
        monkeypatch.setenv(key, value)
    assert Settings(_env_file=None) == original


def test_derived_urls() -> None:
    settings = Settings(_env_file=None, prefect_api_url="http://h:1/api", serving_port=81)
    assert settings.prefect_ui_url == "http://h:1"
    assert settings.serving_url == "http://127.0.0.1:81"
    assert len(settings.topics) == 6


def test_a_local_cluster_lists_every_node_and_replicates_by_default() -> None:
    one = Settings()
    assert (one.topic_replication_factor, one.topic_min_insync_replicas) == (1, 1)
    three = Settings(kafka_brokers=3)
    assert three.kafka_addresses == ["127.0.0.1:9092", "127.0.0.1:9192", "127.0.0.1:9292"]
    assert (three.topic_replication_factor, three.topic_min_insync_replicas) == (3, 2)
    listed = Settings(kafka_brokers=3, kafka_bootstrap_servers="h:1,h:2,h:3")
    assert listed.kafka_addresses == ["h:1", "h:2", "h:3"]
    chosen = Settings(kafka_brokers=3, topic_replication_factor=2)
    assert (chosen.topic_replication_factor, chosen.topic_min_insync_replicas) == (2, 1)


def test_more_scorers_than_partitions_are_refused_with_the_way_out() -> None:
    with pytest.raises(ValidationError, match="TIDEMARK_TOPIC_PARTITIONS=3"):
        Settings(scorers=4)
    assert Settings(scorers=4, topic_partitions=4).scorers == 4
    assert Settings(scorers=3).topic_partitions == 3
