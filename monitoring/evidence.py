"""Per-species evidence: a species is judged on enough fish, pooled over windows if need be.

A line that brings a few fish of a species per window would otherwise never be judged (each
window short of ``min_count``), or be judged on a handful of fish. Its judged fish are kept,
window after window, until together they reach ``min_count``; they are then judged as one
sample that starts at the first of those windows (where a retrain's data must begin), and the
species starts afresh. At most ``max_windows`` windows are pooled: older fish drop out, so that
an old stretch never speaks for the present. A new production version starts every species
afresh: fish scored by the previous version say nothing about the new one.

A judged species also says where a retrain's fish of it should begin: at the change-point of
its fish's errors when they show one (:mod:`monitoring.shift`), else at its first fish judged on
the production version (after a promotion: the first fish the new version scored).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from datetime import datetime

from monitoring.policy import JudgedSpecies
from monitoring.shift import find_shift
from monitoring.windows import ErrorStats
from tidemark.schemas import Scored


class SpeciesPool:
    """Pools each species' judged fish until there are enough to judge it."""

    def __init__(self, min_count: int, max_windows: int, threshold: float = float("inf")) -> None:
        if min_count < 1 or max_windows < 1:
            raise ValueError("min_count and max_windows must be at least 1")
        self.min_count = min_count
        self.max_windows = max_windows
        # The error threshold: a change-point is a move from under it to above it.
        self.threshold = threshold
        self._short: dict[str, deque[tuple[datetime, list[Scored]]]] = {}
        self._version: str | None = None
        # Windows added so far, and the last window in which each pooled species had fish: a
        # species absent for max_windows windows drops out (its evidence is too old anyway).
        self._added = 0
        self._seen: dict[str, int] = {}

    def add(
        self,
        start: datetime,
        judged: Sequence[Scored],
        known: frozenset[str] | None,
        version: str | None = None,
    ) -> list[JudgedSpecies]:
        """Add a window's fish judged on production ``version``; return the species that now
        have enough of them.

        ``known`` lists the species the production version was trained on (None when unknown):
        a species outside it, or any fish flagged ``species_known: false``, is unseen.
        """
        if version != self._version:
            self._short.clear()
            self._version = version
        self._added += 1
        for stale in [s for s in self._short if self._added - self._seen[s] >= self.max_windows]:
            del self._short[stale]
        by_species: defaultdict[str, list[Scored]] = defaultdict(list)
        for record in judged:
            by_species[record.species].append(record)
        ready = []
        for species, records in sorted(by_species.items()):
            pooled = self._short.setdefault(species, deque(maxlen=self.max_windows))
            self._seen[species] = self._added
            pooled.append((start, records))
            fish = [r for _, rs in pooled for r in rs]
            if len(fish) < self.min_count:
                continue
            start, why = self._start(species, fish, version)
            ready.append(
                JudgedSpecies(
                    species=species,
                    since=pooled[0][0],
                    stats=ErrorStats.of(fish),
                    unseen=(known is not None and species not in known)
                    or not all(r.species_known for r in fish),
                    start=start,
                    start_reason=why,
                )
            )
            del self._short[species]
        self._seen = {s: n for s, n in self._seen.items() if s in self._short}
        return ready

    def _start(
        self, species: str, fish: Sequence[Scored], version: str | None
    ) -> tuple[datetime, str]:
        """Where a retrain's fish of ``species`` begin, and why."""
        shift = find_shift(
            [r.measured_at for r in fish], [r.rel_error for r in fish], self.threshold
        )
        if shift is not None:
            return shift.at, shift.reason()
        first = min(r.measured_at for r in fish)
        on = f"v{version}" if version is not None else "production"
        return first, (
            f"its first item judged on {on} in the evidence ({len(fish)} items, "
            "no change-point inside it)"
        )

    def pending(self) -> dict[str, int]:
        """Per species still short of evidence, how many judged fish it has pooled."""
        return {s: sum(len(rs) for _, rs in pooled) for s, pooled in self._short.items()}
