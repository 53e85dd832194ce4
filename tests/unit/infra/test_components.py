"""Component definitions follow the settings and have no side effects until prepared."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.local import provision
from infra.local.components import (
    infrastructure,
    kafka_cluster_id,
    kafka_node_layout,
    kafka_properties,
)
from tidemark.config import Settings, port_of


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        kafka_bootstrap_servers="127.0.0.1:19092",
        stack_kafka_controller_port=19093,
        store_uri="mongodb://127.0.0.1:27117/",
        stack_ferretdb_debug_port=18089,
        registry_tracking_uri="http://127.0.0.1:15000",
        orchestration_api_url="http://127.0.0.1:14200/api",
        stack_cache_dir=tmp_path / "cache",
    )


def test_describing_the_stack_touches_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    components = infrastructure(_settings(tmp_path), state)
    assert [c.name for c in components] == ["kafka", "ferretdb", "mlflow", "prefect"]
    assert list(state.iterdir()) == []
    assert not (tmp_path / "cache").exists()


def test_every_component_listens_where_the_settings_say(tmp_path: Path) -> None:
    by_name = {c.name: c for c in infrastructure(_settings(tmp_path), tmp_path)}
    assert "--listen-addr=127.0.0.1:27117" in by_name["ferretdb"].command
    assert "--debug-addr=127.0.0.1:18089" in by_name["ferretdb"].command
    assert "--telemetry=disable" in by_name["ferretdb"].command
    mlflow = by_name["mlflow"].command
    assert mlflow[mlflow.index("--port") + 1] == "15000"
    # One process: MLflow's app served in-process, without `mlflow server`'s launcher.
    assert mlflow[1:3] == ["-m", "infra.local.mlflow_server"]
    prefect = by_name["prefect"]
    assert prefect.command[prefect.command.index("--port") + 1] == "14200"
    # Prefect's server runs from its own environment, with the FastAPI that Prefect declares.
    server_env = provision.prefect_server_dir(_settings(tmp_path).stack)
    assert Path(prefect.command[0]) == server_env / "bin" / "prefect"
    assert prefect.command[1:3] == ["server", "start"]
    assert prefect.env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert prefect.url == "http://127.0.0.1:14200"
    # Only this machine's browsers may call Prefect's API, and only with a CSRF token.
    assert prefect.env["PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS"] == (
        "http://127.0.0.1:14200,http://localhost:14200"
    )
    assert prefect.env["PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED"] == "true"
    assert by_name["mlflow"].env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    assert all(not c.service for c in by_name.values())


def test_port_of_reads_urls_and_host_port_pairs() -> None:
    assert port_of("127.0.0.1:9092", 1) == 9092
    assert port_of("a:1,b:2", 1) == 1
    assert port_of("mongodb://127.0.0.1:27017/", 1) == 27017
    assert port_of("http://example", 80) == 80


def test_kafka_cluster_ids_never_look_like_options() -> None:
    ids = {kafka_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not any(i.startswith("-") for i in ids)
    assert {len(i) for i in ids} == {22}


def test_three_kafka_nodes_form_one_replicated_cluster(tmp_path: Path) -> None:
    settings = _settings(tmp_path).override(
        kafka_brokers=3,
        kafka_bootstrap_servers="127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292",
        kafka_replication_factor=3,
        kafka_min_insync_replicas=2,
    )
    nodes = kafka_node_layout(settings, tmp_path)
    assert [(n.node_id, n.name, n.address) for n in nodes] == [
        (1, "kafka", "127.0.0.1:19092"),
        (2, "kafka-2", "127.0.0.1:19192"),
        (3, "kafka-3", "127.0.0.1:19292"),
    ]
    assert [n.controller for n in nodes] == [
        "127.0.0.1:19093",
        "127.0.0.1:19193",
        "127.0.0.1:19293",
    ]
    assert len({n.home for n in nodes}) == 3
    names = [c.name for c in infrastructure(settings, tmp_path)]
    assert names == ["kafka", "kafka-2", "kafka-3", "ferretdb", "mlflow", "prefect"]
    properties = dict(
        line.split("=", 1) for line in kafka_properties(settings, nodes[1], nodes).splitlines()
    )
    assert properties["node.id"] == "2"
    assert properties["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293"
    )
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19193"
    for internal in ("default", "offsets.topic", "transaction.state.log"):
        assert properties[f"{internal}.replication.factor"] == "3"
    assert properties["min.insync.replicas"] == "2"
    assert properties["transaction.state.log.min.isr"] == "2"


def test_one_kafka_node_keeps_its_name_folder_and_standalone_quorum(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    (node,) = kafka_node_layout(settings, tmp_path)
    assert (node.name, node.home) == ("kafka", tmp_path / "kafka")
    properties = kafka_properties(settings, node, [node])
    assert "controller.quorum.bootstrap.servers=127.0.0.1:19093" in properties
    assert "offsets.topic.replication.factor=1" in properties


def test_a_stream_service_is_unhealthy_when_its_metrics_say_it_makes_no_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from infra.local import components
    from tidemark.stream.health import LoopHealth

    registry = CollectorRegistry()
    health = LoopHealth(registry, max_restarts=2, max_uncommitted_s=60)

    class Answer:
        text = ""

        def raise_for_status(self) -> None:
            return None

    def get(url: str, timeout: float) -> Answer:
        assert url == "http://127.0.0.1:9101/metrics"
        answer = Answer()
        answer.text = generate_latest(registry).decode()
        return answer

    monkeypatch.setattr(components.httpx, "get", get)
    check = components.makes_progress(9101)
    check()
    health.restarted()
    health.restarted()
    with pytest.raises(RuntimeError, match="2 loop restarts in a row"):
        check()
    health.round_done()
    check()


def test_a_service_of_one_loop_per_project_names_the_project_that_makes_no_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from infra.local import components
    from tidemark.stream.health import LoopHealth, export_per_project

    registry = CollectorRegistry()
    healths = {p: LoopHealth(None, max_restarts=2, max_uncommitted_s=60) for p in ("a", "b")}
    export_per_project(registry, healths)

    class Answer:
        text = ""

        def raise_for_status(self) -> None:
            return None

    def get(url: str, timeout: float) -> Answer:
        answer = Answer()
        answer.text = generate_latest(registry).decode()
        return answer

    monkeypatch.setattr(components.httpx, "get", get)
    check = components.makes_progress(9104)
    check()
    healths["b"].restarted()
    healths["b"].restarted()
    healths["a"].restarted()
    with pytest.raises(RuntimeError, match=r"no progress: b: 2 loop restarts in a row") as raised:
        check()
    assert "a:" not in str(raised.value)
    healths["b"].round_done()
    check()
