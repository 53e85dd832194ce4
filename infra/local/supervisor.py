"""Run components under supervisord: one config, one log per process, restarts on crash.

supervisord runs in the foreground of its own session (``-n``), detached from whoever started
it, so ``make up`` can return while the stack lives on, and a test session can wait for it to
exit. It is driven through its XML-RPC interface on a Unix socket inside the state folder,
which is what lets two stacks (``make up`` and a test run) live side by side.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any, TypedDict

from supervisor.xmlrpc import SupervisorTransport

from infra.local.components import Component


class ProcessInfo(TypedDict):
    """The part of supervisor's getProcessInfo answer that the stack reads."""

    name: str
    statename: str
    pid: int
    start: int
    now: int


def _command(parts: list[str]) -> str:
    # supervisor splits the command like a POSIX shell and expands %(name)s, so % is doubled.
    return shlex.join(parts).replace("%", "%%")


def _env_value(value: str) -> str:
    # supervisor reads environment= with a non-POSIX lexer that strips quotes from the ends of
    # a value and knows no escapes: a value can be quoted with the quote it does not contain.
    quote = "'" if "'" not in value else '"'
    if quote in value or value.startswith(("'", '"')) or value.endswith(("'", '"')):
        raise ValueError(f"supervisor cannot carry this environment value: {value!r}")
    return f"{quote}{value.replace('%', '%%')}{quote}"


class Supervisor:
    """A supervisord instance that owns one state folder."""

    def __init__(self, state: Path) -> None:
        self.state = state.resolve()
        self.logs = self.state / "logs"
        self.config = self.state / "supervisord.conf"
        self.socket = self.state / "supervisor.sock"
        self.pidfile = self.state / "supervisord.pid"
        self._process: subprocess.Popen[bytes] | None = None

    def log_of(self, name: str) -> Path:
        """The log file of one component."""
        return self.logs / f"{name}.log"

    def write_config(self, components: Iterable[Component]) -> None:
        """Write supervisord.conf for these components; services start later, on request."""
        self.logs.mkdir(parents=True, exist_ok=True)
        lines = [
            "[unix_http_server]",
            f"file={self.socket}",
            "chmod=0700",
            "[supervisord]",
            f"logfile={self.logs / 'supervisord.log'}",
            f"pidfile={self.pidfile}",
            f"childlogdir={self.logs}",
            f"directory={self.state}",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]",
            f"serverurl=unix://{self.socket}",
        ]
        for component in components:
            env = ",".join(f"{k}={_env_value(v)}" for k, v in component.env.items())
            lines += [
                f"[program:{component.name}]",
                f"command={_command(component.command)}",
                f"directory={self.state}",
                f"autostart={'false' if component.service else 'true'}",
                # supervisord stops higher priorities first: services before what they use.
                f"priority={900 if component.service else 100}",
                "autorestart=true",
                "startsecs=2",
                "startretries=5",
                # The whole process group, so that servers' worker children go too.
                "stopasgroup=true",
                "killasgroup=true",
                "stopwaitsecs=30",
                "redirect_stderr=true",
                f"stdout_logfile={self.log_of(component.name)}",
                "stdout_logfile_maxbytes=20MB",
                "stdout_logfile_backups=2",
            ]
            if env:
                lines.append(f"environment={env}")
        # The services' environment carries the admin token: readable by the owner only.
        self.config.touch(mode=0o600)
        self.config.chmod(0o600)
        self.config.write_text("\n".join(lines) + "\n")

    def rpc(self) -> Any:
        """The supervisor XML-RPC namespace (``.supervisor.getAllProcessInfo()`` …)."""
        transport = SupervisorTransport(None, None, serverurl=f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def pid(self) -> int | None:
        """The pid of a live supervisord of this state folder, or None."""
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    def running(self) -> bool:
        """Whether supervisord answers on its socket."""
        try:
            return bool(self.rpc().getState()["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.Fault):
            return False

    def start(self, timeout_s: float = 20.0) -> None:
        """Start supervisord (and with it the infrastructure) and wait until it answers."""
        with (self.logs / "supervisord.out").open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._process = process
        deadline = time.monotonic() + timeout_s
        while not self.running():
            if process.poll() is not None:
                raise RuntimeError(f"supervisord exited with {process.returncode}; see {self.logs}")
            if time.monotonic() > deadline:
                process.terminate()
                raise RuntimeError(f"supervisord did not answer within {timeout_s:.0f} s")
            time.sleep(0.2)

    def start_services(self, names: Iterable[str]) -> None:
        """Start the platform services, once the infrastructure they need is healthy."""
        for name in names:
            self.rpc().startProcess(name, False)

    def stop_services(self, names: Iterable[str], timeout_s: float = 45.0) -> None:
        """Stop the platform services, all at once, and wait until none is running.

        They go first: a Prefect runner or a Kafka client whose server is gone hangs on its
        way out instead of closing cleanly.
        """
        stopping = set(names)
        if not stopping:
            return
        rpc = self.rpc()
        for name in stopping:
            with suppress(xmlrpc.client.Fault):  # already stopped
                rpc.stopProcess(name, False)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = {p["name"]: p["statename"] for p in rpc.getAllProcessInfo()}
            if not any(states.get(n) in {"RUNNING", "STOPPING", "STARTING"} for n in stopping):
                return
            time.sleep(0.2)

    def stop(self, timeout_s: float = 90.0) -> None:
        """Stop every process and supervisord itself, then make sure they are gone."""
        pid = self.pid()
        if pid is None:
            return
        try:
            self.rpc().shutdown()
        except (OSError, xmlrpc.client.Fault):
            os.kill(pid, signal.SIGTERM)
        if self._process is not None:
            # We are its parent: reap it, or its pid would linger as a zombie.
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
            return
        deadline = time.monotonic() + timeout_s
        while self.pid() is not None:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.2)
