"""Where a segment's change began inside its evidence: a change-point on its items' errors.

A segment alarms once its judged items' mean error is above the threshold, but the law can have
changed anywhere inside the first window that showed it: the items before that moment follow
the old law, and a retrain that reads them learns a blend. The items' errors, in event-time
order, are split where one shift of the mean explains them best (the split that minimises the
two sides' summed squared deviations, at least ``min_side`` items on each side). The split is a
change only when the items before it look like the old law (their mean error at most the
threshold), those after it do not (above it), and the later errors are larger by a one-sided
Mann-Whitney test at ``alpha``: a segment whose whole evidence is on the new law has no such
split, and its data then begin at its first judged item.

Pure logic on floats and times: no Kafka, no registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy.stats import mannwhitneyu

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
