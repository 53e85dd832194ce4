"""What the local stack runs: each real component's command, environment, health check and URL.

The addresses come from the same settings that clients read, so the stack serves exactly where
Tidemark's code will look for it. Describing a component has no side effect; its ``prepare``
step (fetching, building, config files, Kafka's storage format) runs only when the stack starts.
"""

from __future__ import annotations

import base64
import shlex
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from infra.local import provision
from tidemark import kafka_io
from tidemark.config import Section, Settings, port_of
from tidemark.stream import health

Check = Callable[[], None]


def _nothing_to_prepare() -> None:
    return None


@dataclass(frozen=True)
class Component:
    """One supervised process of the stack."""

    name: str
    command: list[str]
    url: str
    check: Check
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] = _nothing_to_prepare
    # Infrastructure starts first; platform services start once it is healthy.
    service: bool = False
    # The settings sections a service reads: its process gets them (and no others) as
    # TIDEMARK_* variables, so it reads exactly the stack's values whatever its working folder.
    sections: tuple[Section, ...] = ()

    def describe(self) -> str:
        """The command line, for logs."""
        return shlex.join(self.command)


def venv_bin(name: str) -> str:
    """A console script of the venv that runs us, so the stack never picks another install."""
    return str(Path(sys.executable).parent / name)


def host_of(address: str) -> str:
    """The host of a URL or ``host:port`` pair."""
    return urlsplit(address if "//" in address else f"//{address}").hostname or "127.0.0.1"


def http_ok(url: str) -> Check:
    """A check that ``url`` answers 2xx."""

    def check() -> None:
        response = httpx.get(url, timeout=3.0)
        response.raise_for_status()

    return check


def port_answers(port: int) -> Check:
    """A check that something accepts connections on ``port`` of the loopback address."""

    def check() -> None:
        socket.create_connection(("127.0.0.1", port), timeout=2.0).close()

    return check


def makes_progress(port: int) -> Check:
    """A stream service's check: its metrics answer on ``port`` and say it makes progress.

    A port that answers says nothing of a loop that restarts for ever or a batch stuck
    uncommitted: the service reports both (:mod:`tidemark.stream.health`), and the check
    fails with them; a service of one loop per project (the monitor) reports each project's,
    and fails with those that make no progress.
    """
    url = f"http://127.0.0.1:{port}/metrics"

    def check() -> None:
        response = httpx.get(url, timeout=3.0)
        response.raise_for_status()
        # Each loop's samples, by its project ("" for a service of one loop).
        loops: dict[str, dict[str, float]] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name.startswith("tidemark_stream_"):
                    project = sample.labels.get("project", "")
                    loops.setdefault(project, {})[sample.name] = sample.value
        stuck = [
            f"{project + ': ' if project else ''}"
            f"{samples.get(health.RESTARTS_IN_A_ROW, 0):.0f} loop restarts in a row, "
            f"input uncommitted for {samples.get(health.UNCOMMITTED_SECONDS, 0):.0f} s"
            for project, samples in sorted(loops.items())
            if samples.get(health.HEALTHY, 1.0) == 0.0
        ]
        if stuck:
            raise RuntimeError(f"no progress: {'; '.join(stuck)}")

    return check


def supervised_state() -> None:
    """The check of a process that serves nothing to probe: supervisor's state says it runs."""
    return


def _mongo_ok(settings: Settings) -> Check:
    def check() -> None:
        client: MongoClient[dict[str, Any]] = MongoClient(
            settings.store.uri, serverSelectionTimeoutMS=2000
        )
        with client:
            client.admin.command("ping")

    return check


def _kafka_ok(settings: Settings, node: KafkaNode) -> Check:
    """A check that ``node`` answers and has joined the cluster as a broker."""
    # This node alone: a copy of the section, so that no cluster list is derived from it.
    quick = settings.kafka.model_copy(
        update={"client_timeout_ms": 2000, "bootstrap_servers": node.address}
    )
    address = (host_of(node.address), port_of(node.address, 9092))

    def check() -> None:
        # A refused connection fails here, quietly, before the client would log it as an error.
        socket.create_connection(address, timeout=2.0).close()
        client = kafka_io.admin(quick)
        try:
            brokers = {
                b["broker_id"]
                for b in client.describe_cluster()["brokers"]
                if not b.get("is_fenced", False)
            }
        finally:
            client.close()
        if node.node_id not in brokers:
            raise RuntimeError(f"node {node.node_id} is not a registered broker yet")

    return check


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node of the local stack: a broker and a controller in one process."""

    node_id: int
    name: str
    address: str
    controller: str
    home: Path


def kafka_node_layout(settings: Settings, state: Path) -> list[KafkaNode]:
    """Where each of the ``kafka_brokers`` nodes listens and keeps its logs.

    The first node keeps the one-node stack's name and folder, so the stack, its checks and its
    tests name it ``kafka`` whatever the cluster's size.
    """
    addresses = settings.kafka.addresses
    if len(addresses) < settings.kafka.brokers:
        raise ValueError(
            f"kafka_bootstrap_servers lists {len(addresses)} addresses for "
            f"{settings.kafka.brokers} local Kafka nodes"
        )
    controller_port = settings.stack.kafka_controller_port
    nodes = []
    for index in range(settings.kafka.brokers):
        name = "kafka" if index == 0 else f"kafka-{index + 1}"
        address = addresses[index]
        nodes.append(
            KafkaNode(
                node_id=index + 1,
                name=name,
                address=address,
                controller=f"{host_of(address)}:{controller_port + 100 * index}",
                home=state / name,
            )
        )
    return nodes


_KAFKA_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
"""


def kafka_properties(settings: Settings, node: KafkaNode, cluster: list[KafkaNode]) -> str:
    """The ``server.properties`` of one node of ``cluster``."""
    replicas = settings.kafka.replication_factor
    min_isr = settings.kafka.min_insync_replicas
    if len(cluster) == 1:
        quorum = [f"controller.quorum.bootstrap.servers={node.controller}"]
    else:
        # A static quorum of every node's controller: formatted once, no voter to add later.
        voters = ",".join(f"{n.node_id}@{n.controller}" for n in cluster)
        quorum = [f"controller.quorum.voters={voters}"]
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            *quorum,
            f"listeners=PLAINTEXT://{node.address},CONTROLLER://{node.controller}",
            f"advertised.listeners=PLAINTEXT://{node.address}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={node.home / 'data'}",
            f"num.partitions={settings.kafka.partitions}",
            # Internal topics (offsets, transactions, share groups) are replicated like ours.
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={replicas}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            # Nobody else will join the group soon on a local stack: do not wait before a rebalance.
            "group.initial.rebalance.delay.ms=0",
            # Topics are part of the contract: a typo in a topic name must fail, not create one.
            "auto.create.topics.enable=false",
            # The log cleaner keeps its dedupe map on the heap, 128 MB by default: most of a
            # small broker's live heap. The compacted topics here (consumer offsets) are tiny.
            "log.cleaner.dedupe.buffer.size=16777216",
            "",
        ]
    )


def kafka_cluster_id() -> str:
    """A random KRaft cluster id, as Kafka's own ``random-uuid`` makes them.

    Kafka's ids never start with '-': its command-line parser would read one as an option.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _java(settings: Settings, config_dir: Path, main: str) -> list[str]:
    return [
        "java",
        f"-Xmx{settings.stack.kafka_heap_mb}m",
        # Start small: the heap grows only as far as the load needs, and gives back what a
        # burst took (down to 20 % free after a collection). G1, not the serial collector: on
        # this small heap the serial one held the broker in full collections of 60-110 ms,
        # which every record in flight waited out (benchmarks/streaming, latency at 1,000
        # events/s); G1's pauses stay under 20 ms at the same memory.
        "-Xms32m",
        "-XX:+UseG1GC",
        "-XX:MinHeapFreeRatio=10",
        "-XX:MaxHeapFreeRatio=20",
        f"-Dlog4j2.configurationFile={config_dir / 'log4j2.properties'}",
        "-cp",
        f"{provision.kafka_libs_dir(settings.stack)}/*",
        main,
    ]


def kafka(settings: Settings, state: Path) -> list[Component]:
    """The KRaft nodes (each a broker and a controller) run from the official jars.

    One node by default; ``kafka_brokers`` of them share a cluster id kept in the state folder.
    Changing the number of nodes needs a fresh state folder: a formatted log keeps its quorum.
    """
    cluster = kafka_node_layout(settings, state)
    cluster_id_file = state / "kafka-cluster.id"

    def cluster_id() -> str:
        if not cluster_id_file.exists():
            cluster_id_file.write_text(kafka_cluster_id())
        return cluster_id_file.read_text().strip()

    def component(node: KafkaNode) -> Component:
        config_dir = node.home / "config"
        properties = config_dir / "server.properties"

        def prepare() -> None:
            provision.kafka_libs(settings.stack)
            config_dir.mkdir(parents=True, exist_ok=True)
            (config_dir / "log4j2.properties").write_text(_KAFKA_LOG4J2)
            properties.write_text(kafka_properties(settings, node, cluster))
            if not (node.home / "data" / "meta.properties").exists():
                standalone = ["--standalone"] if len(cluster) == 1 else []
                format_storage = [
                    *_java(settings, config_dir, "kafka.tools.StorageTool"),
                    "format",
                    *standalone,
                    "--ignore-formatted",
                    "-t",
                    cluster_id() if len(cluster) > 1 else kafka_cluster_id(),
                    "-c",
                    str(properties),
                ]
                subprocess.run(format_storage, check=True, capture_output=True)

        return Component(
            name=node.name,
            command=[*_java(settings, config_dir, "kafka.Kafka"), str(properties)],
            url=node.address,
            check=_kafka_ok(settings, node),
            prepare=prepare,
        )

    return [component(node) for node in cluster]


def ferretdb(settings: Settings, state: Path) -> Component:
    """FerretDB on SQLite: a MongoDB-wire-protocol server with durable local storage."""
    data = state / "ferretdb" / "data"
    host = host_of(settings.store.uri)

    def prepare() -> None:
        provision.ferretdb_binary(settings.stack)
        data.mkdir(parents=True, exist_ok=True)

    return Component(
        name="ferretdb",
        command=[
            str(provision.ferretdb_path(settings.stack)),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--state-dir={state / 'ferretdb'}",
            f"--listen-addr={host}:{port_of(settings.store.uri, 27017)}",
            f"--debug-addr={host}:{settings.stack.ferretdb_debug_port}",
            "--telemetry=disable",
            "--log-format=json",
        ],
        url=settings.store.uri,
        check=_mongo_ok(settings),
        prepare=prepare,
    )


def mlflow(settings: Settings, state: Path) -> Component:
    """The MLflow tracking server and registry, lean: one process, no launcher, no job runner."""
    home = state / "mlflow"
    uri = settings.registry.tracking_uri
    return Component(
        name="mlflow",
        command=[
            sys.executable,
            "-m",
            "infra.local.mlflow_server",
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--artifacts-destination",
            str(home / "artifacts"),
            "--host",
            host_of(uri),
            "--port",
            str(port_of(uri, 5000)),
        ],
        url=uri,
        check=http_ok(f"{uri.rstrip('/')}/health"),
        env=MLFLOW_ENV,
        prepare=lambda: (home / "artifacts").mkdir(parents=True, exist_ok=True),
    )


# MLflow in every process of the stack: no download bars in the logs, and never a model
# unpickled (MLflow's default allows it): registering a version must not run code anywhere.
MLFLOW_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
}


def prefect_env(settings: Settings, state: Path) -> dict[str, str]:
    """The environment that points a Prefect process at this stack's server, and keeps it quiet."""
    return {
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_API_URL": settings.orchestration.api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def _local_origins(url: str) -> list[str]:
    """The origin of ``url`` and, for a loopback address, the same one named ``localhost``."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.hostname in ("127.0.0.1", "::1"):
        return [origin, f"{parts.scheme}://localhost:{parts.port}"] if parts.port else [origin]
    return [origin]


def prefect(settings: Settings, state: Path) -> Component:
    """The Prefect server (API and UI) on SQLite, run from its own environment.

    Infrastructure like Kafka: its environment keeps the pins Prefect declares (FastAPI below
    its cap: newer FastAPI makes the server refuse its own client), while Tidemark's processes,
    Prefect's client and worker among them, run on the current FastAPI.
    """
    home = state / "prefect"
    api = settings.orchestration.api_url
    ui = settings.orchestration.ui_url

    def prepare() -> None:
        provision.prefect_server(settings.stack)
        home.mkdir(parents=True, exist_ok=True)

    return Component(
        name="prefect",
        command=[
            str(provision.prefect_server_bin(settings.stack)),
            "server",
            "start",
            "--host",
            host_of(api),
            "--port",
            str(port_of(api, 4200)),
        ],
        url=settings.orchestration.ui_url,
        check=http_ok(f"{api.rstrip('/')}/health"),
        env={
            **prefect_env(settings, state),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_UI_API_URL": api,
            # A server that only this machine uses: a browser may call the API from the UI's
            # own page only (Prefect's default allows every origin), and a state-changing call
            # needs a CSRF token, which Prefect's clients and UI fetch from the server (it is
            # off by default).
            "PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS": ",".join(_local_origins(ui)),
            "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true",
            # Loops for features the flows never use: automations (the monitor runs the retrain
            # deployment itself), paused runs and concurrency-slot leases. The scheduler, late
            # runs, the foreman (deployment readiness), event and task-run recording stay.
            "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
        },
        prepare=prepare,
    )


def infrastructure(settings: Settings, state: Path) -> list[Component]:
    """The four real components (Kafka as one or more nodes), in the order they start."""
    return [
        *kafka(settings, state),
        *(factory(settings, state) for factory in (ferretdb, mlflow, prefect)),
    ]
