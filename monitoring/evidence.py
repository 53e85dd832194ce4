"""Per-segment evidence: a segment is judged (its error and its drift) on enough items, pooled
over windows if need be.

A stream that brings a few items of a segment per window would otherwise never be judged (each
window short of ``min_count``), or be judged on a handful of items. Its judged items are kept,
window after window, until together they reach ``min_count``; they are then judged as one
sample that starts at the first of those windows (where a retrain's data must begin), and the
segment starts afresh. At most ``max_windows`` windows are pooled: older items drop out, so
that an old stretch never speaks for the present. A new production version starts every
segment afresh: items scored by the previous version say nothing about the new one.

A judged segment also says where a retrain's items of it should begin: at the change-point of
its items' errors when they show one (:func:`find_shift`), else at its first item judged on the
production version (after a promotion: the first item the new version scored).

The change-point: a segment alarms once its judged items' mean error is above the threshold,
but the law can have changed anywhere inside the first window that showed it: the items before
that moment follow the old law, and a retrain that reads them learns a blend. The items' errors,
in event-time order, are split where one shift of the mean explains them best (the split that
minimises the two sides' summed squared deviations, at least ``min_side`` items on each side).
The split is a change only when the items before it look like the old law (their mean error at
most the threshold), those after it do not (above it), and the later errors are larger by a
one-sided Mann-Whitney test at ``alpha``: a segment whose whole evidence is on the new law has
no such split, and its data then begin at its first judged item.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy.stats import mannwhitneyu

from monitoring.policy import JudgedSegment
from tidemark.judging.scored import WHOLE, error_of, scored_metrics, segment_of
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind

# A change is claimed only at this significance: a wrong split drops good items, a missed one
# keeps old-law items (the evidence's first window still bounds those).
ALPHA = 0.01
MIN_SIDE = 3


@dataclass(frozen=True, slots=True)
class Shift:
    """A change inside the evidence: the first item on the new law, and what shows it."""

    at: datetime
    before: int
    after: int
    mean_before: float
    mean_after: float
    p_value: float

    def reason(self) -> str:
        """Why the data begin at ``at``, in words for the retrain's tags."""
        return (
            f"change-point on the item errors at {self.at.isoformat()}: mean error "
            f"{self.mean_before:.3f} over the {self.before} items before, {self.mean_after:.3f} "
            f"over the {self.after} from there (one-sided Mann-Whitney p = {self.p_value:.2g})"
        )


def find_shift(
    times: Sequence[datetime],
    errors: Sequence[float],
    threshold: float,
    *,
    alpha: float = ALPHA,
    min_side: int = MIN_SIDE,
) -> Shift | None:
    """The change inside items measured at ``times`` with ``errors`` (any order), or None when
    their errors show none (see the module docstring)."""
    if len(times) != len(errors):
        raise ValueError("times and errors differ in length")
    n = len(errors)
    if n < 2 * min_side:
        return None
    order = sorted(range(n), key=lambda i: times[i])
    values = np.asarray([errors[i] for i in order], dtype=float)
    # Summed squared deviations of every prefix and suffix, from cumulative sums.
    total, squares = np.cumsum(values), np.cumsum(values**2)
    k = np.arange(1, n)
    left = squares[:-1] - total[:-1] ** 2 / k
    right = (squares[-1] - squares[:-1]) - (total[-1] - total[:-1]) ** 2 / (n - k)
    cost = left + right
    allowed = (k >= min_side) & (n - k >= min_side)
    split = int(k[allowed][np.argmin(cost[allowed])])
    before, after = values[:split], values[split:]
    mean_before, mean_after = float(before.mean()), float(after.mean())
    if not mean_before <= threshold < mean_after:
        return None
    p_value = float(mannwhitneyu(after, before, alternative="greater").pvalue)
    if p_value >= alpha:
        return None
    return Shift(
        at=times[order[split]],
        before=split,
        after=n - split,
        mean_before=mean_before,
        mean_after=mean_after,
        p_value=p_value,
    )


class SegmentPool:
    """Pools each segment's judged items until there are enough to judge it."""

    def __init__(
        self,
        min_count: int,
        max_windows: int,
        threshold: float = float("inf"),
        *,
        judged_by: ErrorKind,
    ) -> None:
        if min_count < 1 or max_windows < 1:
            raise ValueError("min_count and max_windows must be at least 1")
        self.min_count = min_count
        self.max_windows = max_windows
        # The error threshold: a change-point is a move from under it to above it.
        self.threshold = threshold
        self.judged_by = judged_by
        self._short: dict[str, deque[tuple[datetime, list[Scored]]]] = {}
        self._version: str | None = None
        # Windows added so far, and the last window in which each pooled segment had items: a
        # segment absent for max_windows windows drops out (its evidence is too old anyway).
        self._added = 0
        self._seen: dict[str, int] = {}

    def add(
        self,
        start: datetime,
        judged: Sequence[Scored],
        known: frozenset[str] | None,
        version: str | None = None,
    ) -> list[JudgedSegment]:
        """Add a window's items judged on production ``version``; return the segments that now
        have enough of them.

        ``known`` lists the segments the production version was trained on (None when
        unknown): a segment outside it, or any item the model flagged as of an unknown
        segment, is unseen.
        """
        if version != self._version:
            self._short.clear()
            self._version = version
        self._added += 1
        for stale in [s for s in self._short if self._added - self._seen[s] >= self.max_windows]:
            del self._short[stale]
        by_segment: defaultdict[str, list[Scored]] = defaultdict(list)
        for record in judged:
            by_segment[segment_of(record)].append(record)
        ready = []
        for segment, records in sorted(by_segment.items()):
            pooled = self._short.setdefault(segment, deque(maxlen=self.max_windows))
            self._seen[segment] = self._added
            pooled.append((start, records))
            items = [r for _, rs in pooled for r in rs]
            if len(items) < self.min_count:
                continue
            start, why = self._start(items, version)
            ready.append(
                JudgedSegment(
                    segment=segment,
                    since=pooled[0][0],
                    stats=scored_metrics(items, self.judged_by),
                    unseen=self._unseen(segment, items, known),
                    start=start,
                    start_reason=why,
                    items=tuple(items),
                )
            )
            del self._short[segment]
        self._seen = {s: n for s, n in self._seen.items() if s in self._short}
        return ready

    @staticmethod
    def _unseen(segment: str, items: Sequence[Scored], known: frozenset[str] | None) -> bool:
        """Whether the production version never saw ``segment``: it is not among the ``known``
        ones, or the model flagged an item of it. The one segment of a project without a
        segment is never unseen."""
        if segment == WHOLE:
            return False
        return (known is not None and segment not in known) or not all(
            r.prediction.segment_known for r in items
        )

    def _start(self, items: Sequence[Scored], version: str | None) -> tuple[datetime, str]:
        """Where a retrain's items of a segment begin, and why."""
        shift = find_shift(
            [r.at for r in items], [error_of(r, self.judged_by) for r in items], self.threshold
        )
        if shift is not None:
            return shift.at, shift.reason()
        first = min(r.at for r in items)
        on = f"v{version}" if version is not None else "production"
        return first, (
            f"its first item judged on {on} in the evidence ({len(items)} items, "
            "no change-point inside it)"
        )

    def pending(self) -> dict[str, int]:
        """Per segment still short of evidence, how many judged items it has pooled."""
        return {s: sum(len(rs) for _, rs in pooled) for s, pooled in self._short.items()}
