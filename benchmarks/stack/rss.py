"""How much memory the running local stack holds, by component, and how long `make up` takes.

The stack of the settings' state folder is read through its supervisord: each program's pid and
every process below it (a server's workers, a launcher's child), from ``/proc``. RSS counts each
process's resident pages, shared ones included, as ``ps`` does; PSS splits shared pages between
the processes that map them, so the PSS total is what the machine really gives the stack.

With ``--time-up`` it first times ``make up`` cold (empty state folder; the download caches
under ``~/.cache``, ``~/.m2`` and ``~/go`` stay warm) and warm (the same state folder started a
second time), each until its commands return, that is until every component is healthy and
``tidemark train --if-no-production`` is done. Then it waits ``--settle`` seconds and measures.

With ``--projects`` it starts stacks of its own instead (free ports, a temporary state folder,
never a stack ``make up`` started): one running the fish-weight project alone, then one running
fish-weight and penguin-mass, each with its services, its first models trained from the
projects' bootstrap CSVs. For each it measures the stack's memory after ``--settle`` seconds and
then the fish scorer's throughput (its simulator paused: ``--events`` fish sent as fast as one
producer can, ``--rounds`` times, the rate read from the predictions' CreateTime stamps), and
compares them with issue 23's goal: the second project adds at most 150 MB of RSS and the fish
scorer keeps at least 90 % of its single-project throughput. The stack's own scorer, joiner and
monitor serve every project, one process each (the benchmark checks that the scorer predicts
the second project and that the monitor runs a loop for it); the second project's simulator
(a load, not a component) is left out of the totals.

Usage (with the ``TIDEMARK_*`` variables of the stack to read, e.g. other ports and state dir)::

    python -m benchmarks.stack.rss                 # the running stack
    python -m benchmarks.stack.rss --time-up       # cold and warm make up, then the stack's RSS
    python -m benchmarks.stack.rss --projects      # private stacks: one project, then two

Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.stack.stream_rate import Rate, scorer_rate
from infra.local.components import prefect_env
from infra.local.services import platform_services
from infra.local.stack import Stack
from infra.local.supervisor import Supervisor
from tidemark import kafka_io
from tidemark.config import NAMES, SECTIONS, Settings, get_settings
from tidemark.project.catalog import Catalog, stack_catalog

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "stack_rss.json"
PROJECTS_RESULTS = ROOT / "benchmarks" / "results" / "stack_projects.json"
PROJECTS = ROOT / "projects"
FIRST, SECOND = "fish-weight", "penguin-mass"
# Issue 23: what a second project may cost.
SECOND_PROJECT_MB = 150
THROUGHPUT_KEPT = 0.90
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


# --- one project against two, on stacks of this benchmark's own ------------------------------


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for one in sockets:
            one.bind(("127.0.0.1", 0))
        return [one.getsockname()[1] for one in sockets]
    finally:
        for one in sockets:
            one.close()


def private_settings(state: Path, projects: tuple[str, ...]) -> Settings:
    """Settings of a stack on free ports under ``state`` running ``projects`` (the first the
    default), so that it never meets a stack ``make up`` started."""
    ports = [name for name in NAMES if name.endswith("_port")]
    kafka, mongo, mlflow, prefect, *others = _free_ports(4 + len(ports))
    return Settings(
        kafka_bootstrap_servers=f"127.0.0.1:{kafka}",
        store_uri=f"mongodb://127.0.0.1:{mongo}/",
        registry_tracking_uri=f"http://127.0.0.1:{mlflow}",
        orchestration_api_url=f"http://127.0.0.1:{prefect}/api",
        stack_state_dir=state,
        projects_dir=PROJECTS,
        projects_names=",".join(projects),
        # A shared 2-core machine may take minutes to deploy the flows.
        stack_start_timeout_s=900,
        **dict(zip(ports, others, strict=True)),
    )


class ProjectStack:
    """A private stack of some projects, and the loads this benchmark plays on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stack = Stack(settings, services=platform_services)
        self.catalog: Catalog = stack_catalog(settings.projects)
        self.env = os.environ | settings.as_env(*SECTIONS) | prefect_env(settings, self.stack.state)
        self.loads: list[subprocess.Popen[bytes]] = []

    def up(self) -> None:
        """Start the stack and train each project's first model from its bootstrap CSV."""
        self.stack.up()
        self._tidemark("train", "--if-no-production")

    def check_served(self, name: str, wait_s: float = 240.0) -> None:
        """Make sure the stack's own processes serve project ``name``: its scorer predicts it
        and its monitor runs a loop for it."""
        settings = self.catalog.settings(self.settings, name)
        kafka_io.ensure_topics(settings.kafka)
        if not _predicts(self.catalog.get(name), settings, wait_s):
            raise SystemExit(f"{name}: the stack's scorer gave no prediction in {wait_s:.0f} s")
        url = f"http://127.0.0.1:{self.settings.monitor.metrics_port}/metrics"
        if f'tidemark_stream_healthy{{project="{name}"}}' not in httpx.get(url, timeout=5).text:
            raise SystemExit(f"{name}: the stack's monitor runs no loop for it ({url})")

    def simulate(self, name: str) -> None:
        """A gentle stream of project ``name`` (as the stack's simulator plays the default)."""
        rate = str(self.settings.stack.simulator_rate)
        delay = str(self.settings.stack.simulator_label_delay_s)
        self.loads.append(
            self._start(
                f"simulate-{name}",
                "simulate",
                "--project",
                name,
                "--loop",
                "--no-progress",
                "--rate",
                rate,
                "--label-delay",
                delay,
            )
        )

    def usages(self) -> list[Usage]:
        """The stack's components."""
        return measure(self.stack.supervisor)

    def pause_loads(self) -> None:
        """Stop every simulator, the stack's and this benchmark's."""
        with contextlib.suppress(xmlrpc.client.Fault):
            self.stack.supervisor.rpc().stopProcess("simulator")
        for process in self.loads:
            process.terminate()
            process.wait(30)

    def down(self) -> None:
        """Stop the loads this benchmark started, then the stack."""
        for process in self.loads:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.stack.down()

    def _tidemark(self, *args: str) -> None:
        command = [str(Path(sys.executable).parent / "tidemark"), *args]
        subprocess.run(command, check=True, env=self.env, cwd=self.stack.state,
                       stdout=subprocess.DEVNULL)  # fmt: skip

    def _start(self, log: str, *args: str) -> subprocess.Popen[bytes]:
        command = [str(Path(sys.executable).parent / "tidemark"), *args]
        with (self.stack.state / f"{log}.log").open("ab") as out:
            return subprocess.Popen(command, env=self.env, cwd=self.stack.state, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip


def _predicts(project: Any, settings: Settings, wait_s: float) -> bool:
    try:
        scorer_rate(project, settings, 20, seed=1, timeout_s=wait_s)
    except TimeoutError:
        return False
    return True


@dataclass(frozen=True)
class StackRun:
    """One stack's projects, its memory and the fish scorer's throughput on it."""

    projects: list[str]
    components: list[Usage]
    total_rss_mb: float
    total_pss_mb: float
    rates: list[Rate]

    @property
    def rate(self) -> float:
        """The median throughput of the rounds, items/s."""
        return statistics.median(r.per_s for r in self.rates)


def run_projects(
    projects: tuple[str, ...], folder: Path, settle_s: float, events: int, rounds: int
) -> StackRun:
    """Start a private stack of ``projects``, measure it, stop it."""
    running = ProjectStack(private_settings(folder, projects))
    try:
        running.up()
        for name in projects[1:]:
            running.check_served(name)
            # The stack's simulator plays its default project: a gentle line of this one too.
            running.simulate(name)
        time.sleep(settle_s)
        usages = running.usages()
        running.pause_loads()
        fish = running.catalog.get(FIRST)
        fish_settings = running.catalog.settings(running.settings, FIRST)
        # A first short round warms the path (the scorer's first batches load nothing new).
        scorer_rate(fish, fish_settings, min(events, 2_000), seed=100)
        rates = [scorer_rate(fish, fish_settings, events, seed=200 + i) for i in range(rounds)]
    finally:
        running.down()
    return StackRun(
        projects=list(projects),
        components=usages,
        total_rss_mb=sum(u.rss_mb for u in usages),
        total_pss_mb=sum(u.pss_mb for u in usages),
        rates=rates,
    )


def report_projects(one: StackRun, two: StackRun) -> dict[str, Any]:
    """Print both stacks side by side against the goal; return the results for the JSON file."""
    console = Console()
    table = Table(title="The stack's memory with one project and with two, by component (RSS MB)")
    table.add_column("component")
    table.add_column(", ".join(one.projects), justify="right")
    table.add_column(", ".join(two.projects), justify="right")
    table.add_column("difference", justify="right")
    first = {u.name: u.rss_mb for u in one.components}
    second = {u.name: u.rss_mb for u in two.components}
    for name in sorted(first | second, key=lambda n: -max(first.get(n, 0), second.get(n, 0))):
        a, b = first.get(name, 0.0), second.get(name, 0.0)
        table.add_row(name, f"{a:,.0f}", f"{b:,.0f}", f"{b - a:+,.0f}")
    table.add_section()
    extra_rss = two.total_rss_mb - one.total_rss_mb
    extra_pss = two.total_pss_mb - one.total_pss_mb
    table.add_row("total RSS", f"{one.total_rss_mb:,.0f}", f"{two.total_rss_mb:,.0f}",
                  f"{extra_rss:+,.0f}")  # fmt: skip
    table.add_row("total PSS", f"{one.total_pss_mb:,.0f}", f"{two.total_pss_mb:,.0f}",
                  f"{extra_pss:+,.0f}")  # fmt: skip
    table.add_row(f"{FIRST} scorer, items/s (median)", f"{one.rate:,.0f}", f"{two.rate:,.0f}",
                  f"{two.rate / one.rate - 1:+.1%}" if one.rate else "-")  # fmt: skip
    console.print(table)
    for run in (one, two):
        rounds = ", ".join(f"{r.per_s:,.0f}" for r in run.rates)
        console.print(f"{', '.join(run.projects)}: fish rounds {rounds} items/s")
    kept = two.rate / one.rate if one.rate else 0.0
    memory_ok = extra_rss <= SECOND_PROJECT_MB
    rate_ok = kept >= THROUGHPUT_KEPT
    console.print(
        f"verdict: the second project adds {extra_rss:,.0f} MB RSS (goal ≤ {SECOND_PROJECT_MB} MB: "
        f"{'met' if memory_ok else 'NOT met'}); the {FIRST} scorer keeps {kept:.1%} of its "
        f"single-project throughput (goal ≥ {THROUGHPUT_KEPT:.0%}: "
        f"{'met' if rate_ok else 'NOT met'})"
    )
    return {
        "runs": [{**asdict(run), "rate_per_s": run.rate} for run in (one, two)],
        "second_project_rss_mb": extra_rss,
        "second_project_pss_mb": extra_pss,
        "fish_scorer_kept": kept,
        "goal_second_project_mb": SECOND_PROJECT_MB,
        "goal_throughput_kept": THROUGHPUT_KEPT,
        "memory_goal_met": memory_ok,
        "throughput_goal_met": rate_ok,
    }


def compare_projects(settle_s: float, events: int, rounds: int) -> dict[str, Any]:
    """One project, then two, each on a private stack of its own; the table and the results."""
    with tempfile.TemporaryDirectory(prefix="tidemark-rss-") as folder:
        one = run_projects((FIRST,), Path(folder) / "one", settle_s, events, rounds)
        print(f"{FIRST} alone: RSS {one.total_rss_mb:,.0f} MB, fish {one.rate:,.0f} items/s",
              file=sys.stderr)  # fmt: skip
        two = run_projects((FIRST, SECOND), Path(folder) / "two", settle_s, events, rounds)
    return report_projects(one, two)


def main() -> None:
    """Parse arguments, optionally time make up, measure, print, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--time-up", action="store_true", help="time make up cold then warm before measuring"
    )
    parser.add_argument(
        "--settle", type=float, default=60.0, help="seconds between make up and the measure"
    )
    parser.add_argument(
        "--projects",
        action="store_true",
        help=f"private stacks of {FIRST}, then {FIRST} and {SECOND}: memory and fish throughput",
    )
    parser.add_argument("--events", type=int, default=20_000, help="fish per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per stack")
    parser.add_argument("--output", type=Path, help="the JSON file to write")
    args = parser.parse_args()
    if args.projects:
        results = compare_projects(args.settle, args.events, args.rounds)
        output = args.output or PROJECTS_RESULTS
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2))
        print(f"wrote {output}", file=sys.stderr)
        return
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
    output = args.output or RESULTS
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"wrote {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
