"""Fetch and build the real components once, into a cache outside the checkout.

Kafka comes as the official jars from Maven Central (gathered by Maven), FerretDB as a Go build of
its module from the Go module proxy, the Prefect server as a virtual environment of its own
installed by uv from ``prefect-server.lock``. They land in ``stack.cache_dir`` under a versioned
name and are reused by every later ``make up`` and test session. A file lock makes two concurrent
sessions (``make up`` beside ``make test``) build once, not twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tidemark.config import StackSettings
from tidemark.logs import get_logger

log = get_logger("provision")

# log4j2-slf4j binds the slf4j API that Kafka logs through to the log4j2 that it ships.
_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.tidemark</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
"""


# The Prefect server's own pins (`make lock`): the Prefect release of requirements.lock with the
# dependencies that release declares, FastAPI below its cap among them. Tidemark's environment
# overrides that cap (pyproject's [tool.uv]), which Prefect's client takes but its server does not.
PREFECT_SERVER_LOCK = Path(__file__).with_name("prefect-server.lock")


class ProvisionError(RuntimeError):
    """A component could not be fetched or built; the message says which and why."""


@contextmanager
def _locked(cache_dir: Path, name: str) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(what: str, command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    if shutil.which(command[0]) is None:
        raise ProvisionError(f"{what}: `{command[0]}` is not on PATH")
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise ProvisionError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def kafka_libs_dir(stack: StackSettings) -> Path:
    """Where the jars of ``stack.kafka_version`` live once fetched."""
    return stack.cache_dir / f"kafka-{stack.kafka_version}" / "libs"


def ferretdb_path(stack: StackSettings) -> Path:
    """Where the FerretDB executable of ``stack.ferretdb_version`` lives once built."""
    return stack.cache_dir / f"ferretdb-{stack.ferretdb_version}" / "ferretdb"


def prefect_server_dir(stack: StackSettings, lock: Path = PREFECT_SERVER_LOCK) -> Path:
    """Where the Prefect server's environment built from ``lock`` lives.

    Named after the lock's content and the interpreter that runs us, so a new lock or a new
    Python builds a new environment instead of reusing one that no longer matches.
    """
    digest = hashlib.sha256(lock.read_bytes())
    digest.update(os.path.realpath(sys.executable).encode())
    digest.update(sys.version.encode())
    return stack.cache_dir / f"prefect-server-{digest.hexdigest()[:12]}"


def prefect_server_bin(stack: StackSettings) -> Path:
    """The ``prefect`` command of the server's environment (there once it is built)."""
    return prefect_server_dir(stack) / "bin" / "prefect"


def _uv() -> str:
    """The uv that installed our own environment (``make install`` puts it there), else PATH's."""
    ours = Path(sys.executable).parent / "uv"
    return str(ours) if ours.is_file() else "uv"


def prefect_server(stack: StackSettings) -> Path:
    """Build (once) the Prefect server's environment from its lock, with uv's cache.

    The environment is relocatable (its scripts find their interpreter beside them), so it is
    built in a scratch folder and moved in place whole. ``--no-config`` keeps any project's
    ``[tool.uv]`` (Tidemark's overrides FastAPI's cap) out of the server's install; the modules
    are compiled to bytecode, so that the server does not compile them at each start.
    """
    target = prefect_server_dir(stack)
    uv = _uv()

    def build(work: Path) -> Path:
        log.info("building the Prefect server's environment", lock=str(PREFECT_SERVER_LOCK))
        venv = work / "venv"
        _run(
            "creating the Prefect server's environment",
            [uv, "venv", "--no-config", "-q", "--relocatable", "--python", sys.executable, "venv"],
            cwd=work,
        )
        _run(
            "installing the Prefect server",
            [
                *(uv, "pip", "install", "--no-config", "-q", "--compile-bytecode"),
                *("--python", str(venv / "bin" / "python"), "-r", str(PREFECT_SERVER_LOCK)),
            ],
            cwd=work,
        )
        return venv

    return _once(stack, "prefect-server", target, (target / "bin" / "prefect").is_file, build)


def kafka_libs(stack: StackSettings) -> Path:
    """Fetch (once) the folder of jars that runs a Kafka broker of ``stack.kafka_version``."""
    target = kafka_libs_dir(stack)

    def fetch(work: Path) -> Path:
        log.info("fetching Kafka jars", version=stack.kafka_version)
        (work / "pom.xml").write_text(_KAFKA_POM.format(version=stack.kafka_version))
        _run(
            f"fetching Kafka {stack.kafka_version} from Maven Central",
            ["mvn", "-q", "-B", "dependency:copy-dependencies", "-DoutputDirectory=libs"],
            cwd=work,
        )
        return work / "libs"

    return _once(stack, "kafka", target, target.is_dir, fetch)


def ferretdb_binary(stack: StackSettings) -> Path:
    """Build (once) the FerretDB executable of ``stack.ferretdb_version`` from its module."""
    target = ferretdb_path(stack)
    version = stack.ferretdb_version

    def build(work: Path) -> Path:
        log.info("building FerretDB", version=version)
        module = f"github.com/FerretDB/FerretDB@{version}"
        info = json.loads(
            _run(
                "downloading the FerretDB module",
                ["go", "mod", "download", "-json", module],
                cwd=work,
            )
        )
        source = work / "src"
        shutil.copytree(info["Dir"], source)
        for path in source.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        # The module zip leaves out the version file that FerretDB's own build generates
        # from git; without it the binary refuses to start.
        (source / "build" / "version" / "version.txt").write_text(f"{version}\n")
        (source / "build" / "version" / "package.txt").write_text("tidemark\n")
        built = work / "ferretdb"
        _run(
            f"building FerretDB {version}",
            ["go", "build", "-o", str(built), "./cmd/ferretdb"],
            cwd=source,
            env={**os.environ, "CGO_ENABLED": "0"},
        )
        return built

    return _once(stack, "ferretdb", target, target.is_file, build)


def _once(
    stack: StackSettings,
    name: str,
    target: Path,
    present: Callable[[], bool],
    make: Callable[[Path], Path],
) -> Path:
    """``target``, made by ``make`` in a scratch folder of the cache and moved in place.

    Under a lock, checked again once held: stacks started at the same time wait for the first
    one's download or build instead of repeating it, and never see half a target.
    """
    if present():
        return target
    with _locked(stack.cache_dir, name):
        if present():
            return target
        with tempfile.TemporaryDirectory(dir=stack.cache_dir) as tmp:
            made = make(Path(tmp))
            target.parent.mkdir(parents=True, exist_ok=True)
            made.rename(target)
    return target
