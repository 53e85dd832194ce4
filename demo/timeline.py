"""The picture of the loop: relative error over time, model versions and retrain moments marked.

Like the original tutorial's chart of the error dropping after a retrain: every scored fish is a
faint dot, each window's mean relative error a line, both coloured by the model version that
made the prediction; the threshold is a dashed line, each retrain request a vertical line at
the end of the window that fired, and each version's first prediction a dotted line. Shadow
evaluation is marked in grey: the first fish a challenger predicted ("in shadow"), and each
decision of ``fish.model-decisions`` (promotion, retirement, rollback) at the time it was made.
The x axis is event time (``measured_at``), like the monitor's windows; a decision's time is the
wall clock, which on a live line runs with event time, so decisions outside the fish drawn are
left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.dates import date2num

from monitoring.windows import TumblingWindows
from tidemark.judging.scored import error_of
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind
from tidemark.schemas import ModelDecision, RetrainRequest

# Matplotlib's "tab10" palette, which tells lines apart at a glance.
_COLOURS = tuple(f"C{i}" for i in range(10))


def _num(times: Sequence[datetime]) -> npt.NDArray[np.float64]:
    """Datetimes as matplotlib's date numbers."""
    return np.asarray(date2num(list(times)), dtype=np.float64)  # type: ignore[no-untyped-call]


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)


def shadow_marks(
    scored: Sequence[Scored], decisions: Sequence[ModelDecision] = ()
) -> list[tuple[datetime, str]]:
    """Where and how the picture marks shadow evaluation, in time order: each challenger's
    first prediction, and each decision within the time the fish span."""
    marks: dict[str, datetime] = {}
    for record in scored:
        version = record.prediction.challenger_version
        if version is not None and (version not in marks or record.at < marks[version]):
            marks[version] = record.at
    found = [(at, f"v{version} in shadow") for version, at in marks.items()]
    if scored:
        first, last = min(r.at for r in scored), max(r.at for r in scored)
        for decision in decisions:
            if first <= decision.decided_at <= last:
                found.append((decision.decided_at, _decision_label(decision)))
    return sorted(found)


def _decision_label(decision: ModelDecision) -> str:
    versions = f"v{decision.challenger_version} vs v{decision.champion_version}"
    evidence = f", n {decision.n}" if decision.n else ""
    return f"{decision.kind.value}: {versions}{evidence}"


def draw_timeline(
    scored: Sequence[Scored],
    requests: Sequence[RetrainRequest],
    *,
    decisions: Sequence[ModelDecision] = (),
    threshold: float,
    window_s: float,
    path: Path,
    title: str = "Relative error of the predictions",
) -> Path:
    """Draw the chart of ``scored`` (at least one record) into the PNG file ``path``."""
    if not scored:
        raise ValueError("no scored records to draw")
    versions = sorted({r.prediction.model_version for r in scored}, key=_version_key)
    colour = {v: _COLOURS[i % len(_COLOURS)] for i, v in enumerate(versions)}
    fig, ax = plt.subplots(figsize=(13.5, 5.5), dpi=110)
    try:
        by_version: defaultdict[str, list[Scored]] = defaultdict(list)
        for record in scored:
            by_version[record.prediction.model_version].append(record)
        for version in versions:
            records = by_version[version]
            ax.scatter(
                _num([r.at for r in records]),
                [error_of(r, ErrorKind.RELATIVE) for r in records],
                s=4,
                alpha=0.18,
                color=colour[version],
                linewidths=0,
            )
        _draw_window_means(ax, scored, versions, colour, window_s)
        ax.axhline(threshold, color="crimson", linestyle="--", linewidth=1.2)
        ax.annotate(
            f"threshold {threshold:.2f}",
            (0.005, threshold),
            xycoords=("axes fraction", "data"),
            textcoords="offset points",
            xytext=(0, 4),
            color="crimson",
            fontsize=8,
        )
        for request in requests:
            label = f"retrain requested ({request.reason.value}, v{request.model_version})"
            _mark(ax, request.window_end, label, "black", "-", 1.2, va="top", ha="right")
        for version in versions[1:]:
            first = min(r.at for r in by_version[version])
            label = f"first prediction by v{version}"
            _mark(ax, first, label, colour[version], ":", 1.5, va="top", ha="left")
        for at, label in shadow_marks(scored, decisions):
            _mark(ax, at, label, "dimgrey", "-.", 1.2, va="bottom", ha="right")
        errors = np.array([error_of(r, ErrorKind.RELATIVE) for r in scored])
        ax.set_ylim(0, max(threshold * 2.5, float(np.quantile(errors, 0.995)) * 1.1))
        ax.set_xlabel("measured_at (UTC)")
        ax.set_ylabel("relative error |predicted - actual| / actual")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        # Outside the axes, so that it never hides a retrain or a version line.
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        ax.xaxis_date()
        fig.autofmt_xdate()
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def _mark(
    ax: Axes,
    at: datetime,
    label: str,
    color: str,
    linestyle: str,
    linewidth: float,
    *,
    va: str,
    ha: str,
) -> None:
    """A vertical line at ``at``, its label written along it at the top or the bottom (``va``)."""
    x = float(_num([at])[0])
    ax.axvline(x, color=color, linestyle=linestyle, linewidth=linewidth)
    ax.annotate(
        label,
        (x, 0.98 if va == "top" else 0.02),
        xycoords=("data", "axes fraction"),
        rotation=90,
        va=va,
        ha=ha,
        fontsize=8,
        color=color,
    )


def _draw_window_means(
    ax: Axes,
    scored: Sequence[Scored],
    versions: Sequence[str],
    colour: dict[str, str],
    window_s: float,
) -> None:
    windows = TumblingWindows(window_s, allowed_lateness_s=0, judged_by=ErrorKind.RELATIVE)
    for record in sorted(scored, key=lambda r: r.at):
        windows.add(record)
    closed = windows.flush()
    for version in versions:
        points = [
            (w.start + (w.end - w.start) / 2, w.by_version[version].judged)
            for w in closed
            if version in w.by_version
        ]
        ax.plot(
            _num([p[0] for p in points]),
            [p[1] for p in points],
            marker="o",
            markersize=3.5,
            linewidth=1.8,
            color=colour[version],
            label=f"v{version}: window mean ({window_s:g} s windows)",
        )
