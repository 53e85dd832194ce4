"""The story of one shift, told from what the loop published: what ``make demo`` prints and what
the end-to-end test asserts.

Given the scored fish, the retrain requests and the promotions that an observer collected, and
when the shift began (on the wall clock and in event time), it finds: the first window after the
shift whose error crossed the threshold, the retrain requests of the incident, the version
promoted after the first of them and its first prediction, the error before, during (after the
shift, until the new version) and after (new version), and the windows fully scored by the new
version. "Before" and "during" count the predictions of whichever version was in production,
as the window lines do: on a stack that ran before, that need not be the version the demo
started with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from demo.observer import LoopObserver, Promotion
from demo.player import PhaseStart
from monitoring.windows import ClosedWindow, TumblingWindows
from tidemark.config import Settings
from tidemark.judging.scored import scored_metrics
from tidemark.modelling.metrics import Metrics
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind
from tidemark.schemas import RetrainRequest


@dataclass(frozen=True)
class Incident:
    """One shift and the loop's reaction to it."""

    threshold: float
    shift_wall: datetime
    shift_event: datetime
    end_event: datetime | None
    old_version: str | None
    windows: tuple[ClosedWindow, ...]
    crossed: ClosedWindow | None
    requests: tuple[RetrainRequest, ...]
    promoted: Promotion | None
    first_prediction: datetime | None
    before: Metrics | None
    during: Metrics | None
    after: Metrics | None
    recovered: tuple[ClosedWindow, ...]

    def since_shift(self, moment: datetime | None) -> float | None:
        """Wall-clock seconds from the shift to ``moment``."""
        return None if moment is None else (moment - self.shift_wall).total_seconds()

    def lines(self, unit: str = "kg", items: str = "fish") -> list[str]:
        """The story in a few lines of text; errors in the target's ``unit``, counts of
        ``items`` (the demo's fish by default)."""

        def stats(label: str, s: Metrics | None) -> str:
            if s is None:
                return f"  {label:<8} no {items}"
            return (
                f"  {label:<8} mean relative error {s.judged:.3f}  "
                f"MAE {s.mae:.3f} {unit}  RMSE {s.rmse:.3f} {unit}  ({s.n} {items})"
            )

        def at(moment: datetime | None) -> str:
            seconds = self.since_shift(moment)
            return "never" if moment is None else f"{moment:%H:%M:%S} UTC (+{seconds:.1f} s)"

        out = [f"shift at {self.shift_wall:%H:%M:%S} UTC (event time {self.shift_event:%H:%M:%S})"]
        if self.crossed is not None:
            value = _error_before(self.crossed, self.promoted.version if self.promoted else None)
            out.append(
                f"error crossed {self.threshold:.2f} in the window "
                f"{self.crossed.start:%H:%M:%S}-{self.crossed.end:%H:%M:%S} (event time): "
                f"{value:.3f}"
            )
        else:
            out.append(f"error never crossed {self.threshold:.2f}")
        first = self.requests[0] if self.requests else None
        out.append(
            f"retrain triggered: {at(first.requested_at if first else None)}"
            + (f", reason {first.reason.value}, v{first.model_version}" if first else "")
            + (f" ({len(self.requests)} requests for this incident)" if first else "")
        )
        promoted = self.promoted
        out.append(
            f"promoted: v{promoted.version} at {at(promoted.seen_at)}"
            if promoted
            else "promoted: none"
        )
        out.append(f"first prediction by the new version: {at(self.first_prediction)}")
        out.append("error:")
        out.append(stats("before", self.before))
        out.append(stats("during", self.during))
        out.append(stats("after", self.after))
        return out


def _error_before(window: ClosedWindow, new_version: str | None) -> float:
    """The window's mean relative error of the predictions not made by ``new_version`` (0 when
    it has none)."""
    stats = [s for v, s in window.by_version.items() if v != new_version]
    count = sum(s.n for s in stats)
    return sum(s.judged * s.n for s in stats) / count if count else 0.0


def summarize(
    *,
    scored: Sequence[Scored],
    requests: Sequence[RetrainRequest],
    promotions: Sequence[Promotion],
    first_prediction: Mapping[str, datetime],
    old_version: str | None,
    shift_wall: datetime,
    shift_event: datetime,
    end_event: datetime | None,
    threshold: float,
    window_s: float,
) -> Incident:
    """Tell the story of the shift that began at ``shift_event`` and lasted until ``end_event``."""

    def in_shift(moment: datetime) -> bool:
        return moment >= shift_event and (end_event is None or moment < end_event)

    windows = TumblingWindows(window_s, allowed_lateness_s=0, judged_by=ErrorKind.RELATIVE)
    for record in sorted(scored, key=lambda r: r.at):
        windows.add(record)
    closed = tuple(windows.flush())
    incident_requests = tuple(
        sorted(
            (
                r
                for r in requests
                if r.window_end > shift_event and (end_event is None or r.window_start < end_event)
            ),
            key=lambda r: r.requested_at,
        )
    )
    promoted = None
    if incident_requests:
        promoted = next(
            (p for p in promotions if p.seen_at >= incident_requests[0].requested_at), None
        )
    new_version = promoted.version if promoted else None
    # What the window lines show: the windows' errors whichever version was in production (on a
    # used stack it need not be ``old_version``), up to the new version's predictions.
    crossed = next(
        (
            w
            for w in closed
            if w.end > shift_event
            and in_shift(w.start)
            and _error_before(w, new_version) > threshold
        ),
        None,
    )
    earlier = [
        r for r in scored if new_version is None or r.prediction.model_version != new_version
    ]
    return Incident(
        threshold=threshold,
        shift_wall=shift_wall,
        shift_event=shift_event,
        end_event=end_event,
        old_version=old_version,
        windows=closed,
        crossed=crossed,
        requests=incident_requests,
        promoted=promoted,
        first_prediction=first_prediction.get(new_version) if new_version else None,
        before=_stats([r for r in earlier if r.at < shift_event]),
        during=_stats([r for r in earlier if in_shift(r.at)]),
        after=_stats(
            [r for r in scored if r.prediction.model_version == new_version and in_shift(r.at)]
        ),
        recovered=tuple(
            w
            for w in closed
            if new_version is not None
            and set(w.by_version) == {new_version}
            and in_shift(w.start)
            and (end_event is None or w.end <= end_event)
        ),
    )


def _stats(records: Sequence[Scored]) -> Metrics | None:
    return scored_metrics(records, ErrorKind.RELATIVE) if records else None


def observed_incident(
    observer: LoopObserver,
    settings: Settings,
    *,
    old_version: str | None,
    shift: PhaseStart,
    end: PhaseStart | None,
) -> Incident:
    """The story of the shift as ``observer`` saw it, judged with the monitor's threshold and
    windows; it ends when the ``end`` phase began (or with the last fish seen)."""
    return summarize(
        scored=observer.scored,
        requests=observer.requests,
        promotions=observer.promotions,
        first_prediction=observer.first_prediction,
        old_version=old_version,
        shift_wall=shift.wall,
        shift_event=shift.event,
        end_event=end.event if end else None,
        threshold=settings.monitor.error_threshold,
        window_s=settings.monitor.window_s,
    )
