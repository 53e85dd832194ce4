"""No process of a test run outlives it, however the run ends.

Each run (a serial one, or the xdist controller and its workers) carries a mark of its own in
its environment, which every process it starts inherits: the stacks' supervisord and their
components, the scorers, joiners, monitors and flow workers of the tests. A run that ends
normally stops them all in its fixtures' teardowns, which check it. One that is interrupted may
not get that far: xdist gives a worker ten seconds to finish when the run is interrupted, then
kills it in the middle of its teardown, and its stack (supervisord runs in a session of its own)
would live on. At the end of the run its controller kills whatever still carries its mark.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from contextlib import suppress
from pathlib import Path

# Not TIDEMARK_…: the settings refuse a variable of theirs that they do not know.
RUN_MARK = "TESTS_RUN_MARK"


def mark_run() -> None:
    """Give this run a mark of its own, which the processes it starts from now on inherit.

    A fresh one even if this process inherited one: a test run started by a test must not
    count its parent's processes as its own.
    """
    os.environ[RUN_MARK] = uuid.uuid4().hex


def _marked(mark: bytes) -> list[int]:
    """The other processes whose environment carries ``mark``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with suppress(OSError):  # exited meanwhile, or not ours to read
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                stat = (entry / "stat").read_text()
                # A zombie has exited; only its parent has not read its status yet.
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(entry.name))
    return found


def kill_leftovers(rounds: int = 5) -> list[str]:
    """SIGKILL every other process of this run that still runs; the command lines killed.

    A few rounds: a supervisord killed in the middle of a round may have started a process.
    """
    value = os.environ.get(RUN_MARK)
    if not value:
        return []
    mark = f"{RUN_MARK}={value}".encode()
    killed: list[str] = []
    for _ in range(rounds):
        pids = _marked(mark)
        if not pids:
            break
        for pid in pids:
            with suppress(OSError):
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                os.kill(pid, signal.SIGKILL)
                killed.append(f"{pid} {command.decode(errors='replace').strip()[:200]}")
        time.sleep(0.5)
    return killed
