"""A three-node Kafka cluster: SIGKILL of one broker mid-run loses and doubles nothing.

The cluster is the local stack's own Kafka component with ``kafka_brokers=3`` (replication
factor 3, ``min.insync.replicas=2``), started for this module only; MongoDB and MLflow are the
session stack's. The scorer and the joiner run as real processes, bootstrapped from all three
nodes.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from infra.local import components
from infra.local.components import Component
from infra.local.stack import Stack
from infra.local.supervisor import Supervisor
from tests.integration.conftest import alive, free_ports
from tests.integration.streaming.streams import (
    FISH,
    Copies,
    Hold,
    Service,
    SimulateInBackground,
    assert_nothing_lost_nothing_doubled,
    wait_for,
)
from tests.integration.topics import topic_size
from tidemark import kafka_io
from tidemark.config import Settings

BROKERS = 3


def _controller_ports() -> int:
    """A port p with p + 100 and p + 200 free too: the cluster's controllers listen there."""
    while True:
        (port,) = free_ports(1)
        if port + 100 * (BROKERS - 1) >= 65_536:
            continue
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port + 100))
                b.bind(("127.0.0.1", port + 200))
            except OSError:
                continue
        return port


class Cluster:
    """The three Kafka nodes, supervised, and the settings that reach them."""

    def __init__(self, settings: Settings, state: Path) -> None:
        self.settings = settings
        self.nodes = components.kafka(settings, state)
        self.supervisor = Supervisor(state)

    def start(self) -> None:
        """Format and start every node, and wait until each is a registered broker."""
        for node in self.nodes:
            node.prepare()
        self.supervisor.write_config(self.nodes)
        self.supervisor.start()
        for node in self.nodes:
            self.wait_healthy(node)

    def wait_healthy(self, node: Component) -> None:
        """Wait until ``node`` answers as a broker of the cluster."""
        deadline = time.monotonic() + self.settings.stack.start_timeout_s
        while True:
            try:
                node.check()
                return
            except Exception:  # not up yet: the check raises until the node answers
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def kill(self, name: str) -> None:
        """SIGKILL one node, and keep it down (the supervisor would restart it)."""
        rpc = self.supervisor.rpc()
        os.kill(rpc.getProcessInfo(name)["pid"], signal.SIGKILL)
        with suppress(xmlrpc.client.Fault):  # already exited and not restarted yet
            rpc.stopProcess(name)

    def stop(self) -> None:
        """SIGKILL every node at once, stop supervisord, and fail if a node's process survives.

        A throwaway cluster has nothing to keep: stopped in turn, each node's controlled
        shutdown would wait out the quorum that the nodes stopped before it took away.
        """
        if self.supervisor.pid() is None:  # it never started
            return
        rpc = self.supervisor.rpc()
        running = [p for p in rpc.getAllProcessInfo() if p["pid"]]
        for process in running:
            # Stopping, not exited: supervisord restarts none of them once they die.
            with suppress(xmlrpc.client.Fault):  # exited meanwhile
                rpc.stopProcess(process["name"], False)
            with suppress(ProcessLookupError):  # gone already
                os.killpg(process["pid"], signal.SIGKILL)
        self.supervisor.stop()
        survivors = [p["pid"] for p in running if alive(p["pid"])]
        assert not survivors, f"Kafka nodes left behind by the test cluster: {survivors}"

    def restart(self, name: str) -> None:
        """Start a node killed by :meth:`kill` and wait until it is back in the cluster."""
        self.supervisor.rpc().startProcess(name)
        self.wait_healthy(next(n for n in self.nodes if n.name == name))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three KRaft nodes on free ports, for this module's tests."""
    state = tmp_path_factory.mktemp("cluster")
    addresses = ",".join(f"127.0.0.1:{port}" for port in free_ports(BROKERS))
    settings = Settings(
        kafka_brokers=BROKERS,
        kafka_bootstrap_servers=addresses,
        stack_kafka_controller_port=_controller_ports(),
        kafka_session_timeout_ms=6_000,
        stack_state_dir=state,
        stack_start_timeout_s=300,
    )
    running = Cluster(settings, state)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
def cluster_streams(cluster: Cluster, streams: Settings) -> Settings:
    """The test's own topics and database, with Kafka on the cluster."""
    settings = streams.override(
        kafka_brokers=BROKERS,
        kafka_bootstrap_servers=cluster.settings.kafka.bootstrap_servers,
        kafka_replication_factor=cluster.settings.kafka.replication_factor,
        kafka_min_insync_replicas=cluster.settings.kafka.min_insync_replicas,
    )
    kafka_io.ensure_topics(settings.kafka)
    return settings


@pytest.fixture
def start_on_cluster(
    cluster_streams: Settings, tmp_path: Path
) -> Iterator[Callable[[str], Service]]:
    """Start ``tidemark score`` or ``tidemark join`` against the cluster; all stop at teardown."""
    started: list[Service] = []

    def start(command: str) -> Service:
        (port,) = free_ports(1)
        service = Service(cluster_streams, command, port, tmp_path / f"{command}.log")
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def test_topics_are_replicated_on_three_nodes(cluster_streams: Settings) -> None:
    client = kafka_io.admin(cluster_streams.kafka)
    try:
        (topic,) = client.describe_topics([cluster_streams.kafka.topics.input])
        configs = client.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, cluster_streams.kafka.topics.input)]
        )
    finally:
        client.close()
    assert {len(p["replica_nodes"]) for p in topic["partitions"]} == {BROKERS}
    topic_configs = configs["topic"][cluster_streams.kafka.topics.input]
    assert topic_configs["min.insync.replicas"]["value"] == "2"


def test_killing_a_broker_mid_run_loses_and_doubles_nothing_and_scoring_goes_on(
    stack: Stack,
    cluster: Cluster,
    cluster_streams: Settings,
    start_on_cluster: Callable[[str], Service],
    simulate_in_background: SimulateInBackground,
) -> None:
    del stack  # MongoDB and MLflow are the session stack's
    # Held until the services score: they take longer to start than the whole run lasts.
    hold = Hold(FISH // 4)
    simulator = simulate_in_background(cluster_streams, 1_000, hold)
    scorer, joiner = start_on_cluster("score"), start_on_cluster("join")

    def predicted() -> int:
        return topic_size(cluster_streams, cluster_streams.kafka.topics.predictions)

    # Generous: on a loaded machine a service process takes minutes to import and join.
    wait_for(lambda: predicted() >= hold.at, 600, "scoring")
    hold.release()
    cluster.kill("kafka")
    # At 1,000 fish a second the rest of the line lasts 15 s: it is still coming.
    assert simulator.is_alive(), "the line ended before the broker was killed"
    wait_for(lambda: predicted() >= hold.at + 3_000, 300, "scoring with one broker down")
    cluster.restart("kafka")
    simulator.join(180)
    # The killed node's partitions and group coordinators move to the others, and may move
    # again when it is back: each move can process once more what was in flight then.
    print(assert_nothing_lost_nothing_doubled(cluster_streams, Copies(predictions=3, scored=3)))
    assert scorer.alive()
    assert joiner.alive()
