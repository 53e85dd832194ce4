"""Fetch and build the real components once, into a cache outside the checkout.

Kafka comes as the official jars from Maven Central (gathered by Maven), FerretDB as a Go build of
its module from the Go module proxy. Both land in ``stack.cache_dir`` under a versioned name
and are reused by every later ``make up`` and test session. A file lock makes two concurrent
sessions (``make up`` beside ``make test``) build once, not twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
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
