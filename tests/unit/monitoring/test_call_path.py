"""Issue 22: the calls from a closed window to its retrain request, counted module by module.

A real :class:`Monitor` (Prefect's runs and the registry played by the fakes of test_monitor.py)
reads a minute of salmon whose error is three times the threshold, with a drift reference in
production; ``sys.setprofile`` records every call from the moment ``Monitor.tick`` hands the
closed window on (``Monitor._closed``) to the moment the retrain run is started
(``start_run``). Counted are the calls that pass from one module of the monitoring service to
another: the path a reader follows from file to file. The kernel (``tidemark/``), on which
every module stands, and the Prometheus instrumentation (``monitoring/metrics.py`` and the
segment labels it uses), which the path only reports to, are listed apart and not counted; the
calls made beneath them are theirs.

The test prints the path (run pytest with ``-s`` to read it) and fails when it passes through
more than :data:`MAX_MODULES` modules, or returns into ``monitor.py`` between them: the monitor
hands the window to the judgement and is given back the answer, nothing in between.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any, cast

from monitoring.judgement import WindowJudgement
from tests.unit.monitoring.scored import scored
from tests.unit.monitoring.test_monitor import (
    SPRING,
    FakeFollower,
    monitor,
    on_reference,
    polled,
)

ROOT = Path(__file__).resolve().parents[3]
SERVICE = "monitoring"
KERNEL = "tidemark"
# Modules the path reports to without being steered by them.
INSTRUMENTATION = frozenset({"monitoring.metrics", "monitoring.segments"})
MONITOR = "monitoring.monitor"
# Twelve before issue 22's restructuring: the monitor asked production, the judgement and the
# incidents in turn (three returns into monitor.py), read the truth's coverage first, and the
# change-point had a module of its own; nine after it, with the windows still computing the
# error stats and picking the production version's records (now the kernel's scored_metrics
# and scored_by).
MAX_MODULES = 8
# The fakes of test_monitor.py stand in for the modules whose Prefect and registry calls they
# play: a call into a fake is a call into the module it replaces.
STAND_INS = {
    "FakeTrigger": "monitoring.trigger",
    "FakeFollower": "monitoring.production",
    "FakeReports": "monitoring.reports",
}
# The call that starts the retrain: the end of the path.
STARTS = ("monitoring.trigger", "start_run")


@cache
def _module_named(filename: str) -> str | None:
    """The dotted name of the repository module in ``filename`` (None: outside it)."""
    try:
        relative = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    return ".".join(relative.with_suffix("").parts) if relative.suffix == ".py" else None


def module_of(frame: FrameType) -> str | None:
    """The repository module a frame runs in (None: outside it); a fake's, the one it plays."""
    module = _module_named(frame.f_code.co_filename)
    if module is not None and module.startswith("tests."):
        owner = frame.f_code.co_qualname.rpartition(".")[0].rpartition(".")[2]
        return STAND_INS.get(owner, module)
    return module


@dataclass
class CallPath:
    """The cross-module calls recorded between a window's closing and its retrain's start."""

    # (caller module, callee module, callee's qualified name), in call order.
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    # How often control came back into monitor.py from another service module.
    returns_to_monitor: int = 0
    # Calls into the kernel and the instrumentation, by module (not counted).
    aside: Counter[str] = field(default_factory=Counter)
    recording: bool = False

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        """The ``sys.setprofile`` hook: note each call between service modules."""
        if event not in ("call", "return") or not self.recording:
            return
        callee = module_of(frame)
        if callee is None or not callee.startswith((f"{SERVICE}.", f"{KERNEL}.")):
            return
        caller = self._counted_caller(frame.f_back)
        if caller is None:
            return
        if event == "return":
            if caller == MONITOR and callee != MONITOR and self._counted(callee):
                self.returns_to_monitor += 1
            return
        if not self._counted(callee):
            self.aside[callee] += 1
        elif callee != caller:
            name = frame.f_code.co_qualname
            self.calls.append((caller, callee, name))
            if (callee, name.rpartition(".")[2]) == STARTS:
                self.recording = False

    @staticmethod
    def _counted(module: str) -> bool:
        return module.startswith(f"{SERVICE}.") and module not in INSTRUMENTATION

    def _counted_caller(self, frame: FrameType | None) -> str | None:
        """The service module that made this call, None when it was made beneath the kernel or
        the instrumentation (theirs, not the path's) or from outside the repository."""
        while frame is not None:
            module = module_of(frame)
            if module is None:
                # Library code (dataclasses, pydantic) calling back: the frame beneath decides.
                frame = frame.f_back
                continue
            return module if self._counted(module) else None
        return None

    @property
    def modules(self) -> list[str]:
        """The service modules the path passes through, in the order it reaches them."""
        seen = [MONITOR]
        for _, callee, _ in self.calls:
            if callee not in seen:
                seen.append(callee)
        return seen

    def printout(self) -> str:
        """The path in lines: the totals, then each module with the calls into it in order."""
        per_module: dict[str, list[str]] = {m: [] for m in self.modules}
        for caller, callee, name in self.calls:
            per_module[callee].append(f"{name} (from {caller.removeprefix('monitoring.')})")
        lines = [
            f"closed window -> retrain request: {len(self.calls)} calls across "
            f"{len(self.modules)} modules, {self.returns_to_monitor} back into monitor.py"
        ]
        for module, names in per_module.items():
            lines.append(f"  {module.removeprefix('monitoring.')}: {len(names)} calls")
            lines += [f"    {name}" for name in names]
        aside = ", ".join(f"{m} {n}" for m, n in sorted(self.aside.items()))
        lines.append(f"  not counted (kernel, instrumentation): {aside}")
        return "\n".join(lines)


def recorded_path() -> tuple[CallPath, list[WindowJudgement]]:
    """The path of a window of salmon whose error fires, from ``_closed`` to ``start_run``."""
    path = CallPath()
    judged: list[WindowJudgement] = []
    follower = FakeFollower()
    follower.current = on_reference("1", SPRING)
    watched, trigger = monitor(follower=follower, on_judgement=judged.append)
    closed = watched._closed

    def closing(window: Any) -> None:
        path.recording = True
        closed(window)
        path.recording = False

    watched._closed = closing  # type: ignore[method-assign]
    spring = SPRING.iloc[:60]
    watched.resume({})
    watched.process(
        polled(
            *(
                (i, scored(i, rel_error=0.3, length_cm=f.length_cm, height_cm=f.height_cm))
                for i, f in enumerate(spring.itertuples())
            )
        ),
        cast(Any, None),
    )
    # A record a minute later closes the first minute.
    watched.process(polled((60, scored(130))), cast(Any, None))
    sys.setprofile(path.profile)
    try:
        watched.tick()
    finally:
        sys.setprofile(None)
    assert len(trigger.runs) == 1, "the window's error did not start a retrain"
    return path, judged


def test_a_closed_window_reaches_its_retrain_request_through_few_modules() -> None:
    path, judged = recorded_path()
    print()
    print(path.printout())
    [fired] = judged
    assert fired.triggered
    assert fired.segment_drift, "the window was not tested for drift: its path is not the full one"
    assert path.calls, "nothing was recorded"
    assert (path.calls[-1][1], path.calls[-1][2].rpartition(".")[2]) == STARTS
    assert len(path.modules) <= MAX_MODULES, path.printout()
    assert path.returns_to_monitor == 0, path.printout()
