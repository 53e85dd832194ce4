"""The local stack: start, check, and stop the real components of one state folder.

``make up`` and the integration tests both go through :class:`Stack`; they differ only in the
settings (ports) and the state folder they hand it, so a test run never touches a stack that
``make up`` started.
"""

from __future__ import annotations

import socket
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from infra.local import components as infra
from infra.local.admin_token import with_admin_token
from infra.local.components import MLFLOW_ENV, Component
from infra.local.supervisor import ProcessInfo, Supervisor
from tidemark import kafka_io
from tidemark.config import KafkaSettings, Settings
from tidemark.logs import get_logger
from tidemark.project.catalog import stack_catalog
from tidemark.project.spec import ProjectError

log = get_logger("stack")

ServiceFactory = Callable[[Settings, Path], list[Component]]


class StackError(RuntimeError):
    """The stack could not start; the message names the component and shows its log."""


@dataclass(frozen=True)
class ComponentStatus:
    """What ``make status`` shows for one component."""

    name: str
    state: str
    pid: int | None
    uptime_s: int
    healthy: bool
    detail: str
    url: str


def _listening(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url if "//" in url else f"//{url.split(',')[0]}")
    return (parts.hostname, parts.port) if parts.hostname and parts.port else None


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log yet)"


class Stack:
    """The real components of one state folder, supervised."""

    def __init__(
        self,
        settings: Settings,
        state: Path | None = None,
        services: ServiceFactory | None = None,
    ) -> None:
        self.settings = settings
        self.state = (state or settings.stack.state_dir).resolve()
        self.supervisor = Supervisor(self.state)
        self._services = services
        self._components: list[Component] | None = None

    def components(self) -> list[Component]:
        """Infrastructure first, then the platform services (fetching and building as needed)."""
        if self._components is None:
            self.state.mkdir(parents=True, exist_ok=True)
            found = infra.infrastructure(self.settings, self.state)
            if self._services is not None:
                # Each service reads exactly the stack's settings of its own sections (a .env
                # included), whatever its working directory, and no others, and MLflow as the
                # stack wants it.
                settings = with_admin_token(self.settings, self.state)
                found += [
                    replace(
                        service, env=settings.as_env(*service.sections) | MLFLOW_ENV | service.env
                    )
                    for service in self._services(self.settings, self.state)
                ]
            self._components = found
        return self._components

    def up(self) -> None:
        """Start whatever is not running yet and wait until every component is healthy."""
        everything = self.components()
        if not self.supervisor.running():
            self._refuse_taken_ports(everything)
            for component in everything:
                component.prepare()
            self.supervisor.write_config(everything)
            self.supervisor.start()
        self._wait_healthy([c for c in everything if not c.service])
        created = [t for kafka in self._projects_kafka() for t in kafka_io.ensure_topics(kafka)]
        if created:
            log.info("created topics", topics=created)
        self._refuse_too_few_partitions()
        services = [c for c in everything if c.service]
        if services:
            running = {p["name"] for p in self._processes() if p["statename"] == "RUNNING"}
            self.supervisor.start_services(c.name for c in services if c.name not in running)
            self._wait_healthy(services)

    def down(self) -> bool:
        """Stop every process of this stack; False when nothing was running."""
        if self.supervisor.pid() is None:
            return False
        infrastructure = {c.name for c in self.components() if not c.service}
        self.supervisor.stop_services(
            p["name"] for p in self._processes() if p["name"] not in infrastructure
        )
        self.supervisor.stop()
        return True

    def status(self) -> list[ComponentStatus]:
        """Process state and health of every component."""
        processes = {p["name"]: p for p in self._processes()}
        rows = []
        for component in self.components():
            process = processes.get(component.name)
            state = process["statename"] if process else "NOT RUNNING"
            healthy, detail = False, state.lower()
            if state == "RUNNING":
                healthy, detail = self._probe(component)
            rows.append(
                ComponentStatus(
                    name=component.name,
                    state=state,
                    pid=(process["pid"] or None) if process else None,
                    uptime_s=max(0, process["now"] - process["start"]) if process else 0,
                    healthy=healthy,
                    detail=detail,
                    url=component.url,
                )
            )
        return rows

    @contextmanager
    def paused(self, name: str) -> Iterator[None]:
        """Stop one component for the duration of the block, then start it and wait for health.

        For failure tests: a broker restart, a registry that goes away.
        """
        component = next(c for c in self.components() if c.name == name)
        self.supervisor.rpc().stopProcess(name)
        try:
            yield
        finally:
            self.supervisor.rpc().startProcess(name)
            self._wait_healthy([component])

    def log_of(self, name: str) -> Path:
        """The log file of one component."""
        return self.supervisor.log_of(name)

    def _processes(self) -> list[ProcessInfo]:
        try:
            processes: list[ProcessInfo] = self.supervisor.rpc().getAllProcessInfo()
        except (OSError, xmlrpc.client.Fault):
            return []
        return processes

    @staticmethod
    def _probe(component: Component) -> tuple[bool, str]:
        try:
            component.check()
        except Exception as error:  # any failure of a probe means unhealthy
            return False, f"{type(error).__name__}: {error}"[:200]
        return True, "healthy"

    def _refuse_taken_ports(self, everything: Sequence[Component]) -> None:
        for component in everything:
            address = _listening(component.url)
            if address and _port_taken(*address):
                raise StackError(
                    f"{component.name}: {address[0]}:{address[1]} is already in use by another "
                    "process; stop it or choose another port (see tidemark/config.py)"
                )

    def _projects_kafka(self) -> list[KafkaSettings]:
        """The Kafka settings of every project the stack runs (their own topics)."""
        try:
            catalog = stack_catalog(self.settings.projects)
        except ProjectError as error:
            raise StackError(f"projects: {error}") from None
        return [catalog.settings(self.settings, project.name).kafka for project in catalog]

    def _refuse_too_few_partitions(self) -> None:
        """Topics keep the partitions they were created with: each scorer needs one of its own."""
        inputs = [kafka.topics.input for kafka in self._projects_kafka()]
        client = kafka_io.admin(self.settings.kafka)
        try:
            described = client.describe_topics(inputs)
        finally:
            client.close()
        for topic in described:
            self._refuse_too_few(topic)

    def _refuse_too_few(self, topic: dict[str, Any]) -> None:
        if len(topic["partitions"]) < self.settings.stack.scorers:
            raise StackError(
                f"{topic['name']} has {len(topic['partitions'])} partitions, fewer than "
                f"TIDEMARK_STACK_SCORERS={self.settings.stack.scorers}: a partition feeds one "
                "scorer at a time. Run fewer scorers, or start from a fresh state folder "
                "(`make clean`) with TIDEMARK_KAFKA_PARTITIONS at least the number of scorers."
            )

    def _wait_healthy(self, waiting_for: Sequence[Component]) -> None:
        deadline = time.monotonic() + self.settings.stack.start_timeout_s
        pending = {c.name: c for c in waiting_for}
        last: dict[str, str] = {}
        while pending:
            states = {p["name"]: p["statename"] for p in self._processes()}
            for name, component in list(pending.items()):
                if states.get(name) in {"FATAL", "EXITED", "STOPPED"}:
                    raise StackError(
                        f"{name} did not come up: its process is {states[name]}.\n"
                        f"Last lines of {self.log_of(name)}:\n{_tail(self.log_of(name))}"
                    )
                healthy, last[name] = self._probe(component)
                if healthy:
                    log.info("healthy", component=name, url=component.url)
                    del pending[name]
            if pending and time.monotonic() > deadline:
                name = next(iter(pending))
                raise StackError(
                    f"{name} did not become healthy within "
                    f"{self.settings.stack.start_timeout_s:.0f} s ({last.get(name)}).\n"
                    f"Last lines of {self.log_of(name)}:\n{_tail(self.log_of(name))}"
                )
            if pending:
                time.sleep(0.5)
