"""How much memory the running local stack holds, by component, and how long `make up` takes.

The stack of the settings' state folder is read through its supervisord: each program's pid and
every process below it (a server's workers, a launcher's child), from ``/proc``. RSS counts each
process's resident pages, shared ones included, as ``ps`` does; PSS splits shared pages between
the processes that map them, so the PSS total is what the machine really gives the stack.

With ``--time-up`` it first times ``make up`` cold (empty state folder; the download caches
under ``~/.cache``, ``~/.m2`` and ``~/go`` stay warm) and warm (the same state folder started a
second time), each until its commands return, that is until every component is healthy and
``tidemark train --if-no-production`` is done. Then it waits ``--settle`` seconds and measures.

Usage (with the ``TIDEMARK_*`` variables of the stack to read, e.g. other ports and state dir)::

    python -m benchmarks.stack.rss                 # the running stack
    python -m benchmarks.stack.rss --time-up       # cold and warm make up, then the stack's RSS

Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from infra.local.supervisor import Supervisor
from tidemark.config import get_settings

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "stack_rss.json"
TARGET_MB = 2_500
BASELINE_MB = 3_700
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Usage:
    """One component's processes and their memory, in MB."""

    name: str
    pids: list[int]
    rss_mb: float
    pss_mb: float


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # The command name is in parentheses and may hold spaces: fields follow the last ')'.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _tree(pid: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB; zeros when it is gone."""
    try:
        rss = int((Path(f"/proc/{pid}/statm")).read_text().split()[1]) * _PAGE_KB
        pss = next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            if line.startswith("Pss:")
        )
    except (OSError, StopIteration):
        return 0, 0
    return rss, pss


def measure(supervisor: Supervisor) -> list[Usage]:
    """Each supervised program with its descendants, and supervisord itself."""
    pid = supervisor.pid()
    if pid is None:
        raise SystemExit(f"no stack is running in {supervisor.state}")
    programs: list[dict[str, Any]] = supervisor.rpc().getAllProcessInfo()
    children = _children()
    usages = []
    owned: set[int] = set()
    for program in sorted(programs, key=lambda p: str(p["name"])):
        if not program["pid"]:
            continue
        pids = _tree(int(program["pid"]), children)
        owned.update(pids)
        usages.append(_usage(str(program["name"]), pids))
    # supervisord and anything it runs outside a program (nothing, normally).
    rest = [p for p in _tree(pid, children) if p not in owned]
    usages.append(_usage("supervisord", rest))
    return usages


def _usage(name: str, pids: list[int]) -> Usage:
    sizes = [_memory_kb(p) for p in pids]
    return Usage(
        name=name,
        pids=sorted(pids),
        rss_mb=sum(r for r, _ in sizes) / 1024,
        pss_mb=sum(p for _, p in sizes) / 1024,
    )


def time_make_up(state: Path, cold: bool) -> float:
    """Seconds for ``make up`` from a stopped stack (cold: with its state folder removed).

    It runs the two commands of the ``up`` target with this interpreter's ``tidemark``, so the
    figure leaves out only make's check that the venv is installed.
    """
    _tidemark("stack", "down")
    if cold and state.exists():
        shutil.rmtree(state)
    started = time.monotonic()
    _tidemark("stack", "up")
    _tidemark("train", "--if-no-production")
    return time.monotonic() - started


def _tidemark(*args: str) -> None:
    command = [str(Path(sys.executable).parent / "tidemark"), *args]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def report(usages: list[Usage], timings: dict[str, float]) -> dict[str, Any]:
    """Print the table and return the results for the JSON file."""
    total_rss = sum(u.rss_mb for u in usages)
    total_pss = sum(u.pss_mb for u in usages)
    table = Table(title="The local stack's memory, by supervised component")
    table.add_column("component")
    for column in ("processes", "RSS MB", "PSS MB"):
        table.add_column(column, justify="right")
    for usage in sorted(usages, key=lambda u: u.rss_mb, reverse=True):
        table.add_row(
            usage.name, str(len(usage.pids)), f"{usage.rss_mb:,.0f}", f"{usage.pss_mb:,.0f}"
        )
    table.add_section()
    table.add_row("total", str(sum(len(u.pids) for u in usages)),
                  f"{total_rss:,.0f}", f"{total_pss:,.0f}")  # fmt: skip
    console = Console()
    console.print(table)
    verdict = "[green]within[/]" if total_rss <= TARGET_MB else "[red]above[/]"
    console.print(
        f"total RSS {total_rss:,.0f} MB: {verdict} the target of {TARGET_MB:,} MB "
        f"(baseline {BASELINE_MB:,} MB, issue 13)"
    )
    for name, seconds in timings.items():
        console.print(f"make up {name}: {seconds:.1f} s")
    return {
        "components": [asdict(u) for u in usages],
        "total_rss_mb": total_rss,
        "total_pss_mb": total_pss,
        "target_rss_mb": TARGET_MB,
        "baseline_rss_mb": BASELINE_MB,
        "make_up_s": timings,
    }


def main() -> None:
    """Parse arguments, optionally time make up, measure, print, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--time-up", action="store_true", help="time make up cold then warm before measuring"
    )
    parser.add_argument(
        "--settle", type=float, default=60.0, help="seconds between make up and the measure"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON file to write")
    args = parser.parse_args()
    settings = get_settings()
    supervisor = Supervisor(settings.stack.state_dir)
    timings: dict[str, float] = {}
    if args.time_up:
        timings["cold"] = time_make_up(supervisor.state, cold=True)
        timings["warm"] = time_make_up(supervisor.state, cold=False)
        time.sleep(args.settle)
    try:
        usages = measure(supervisor)
    except (OSError, xmlrpc.client.Fault) as error:
        raise SystemExit(f"cannot read the stack of {supervisor.state}: {error}") from error
    results = report(usages, timings)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
