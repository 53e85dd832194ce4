"""Segments are bounded: the labels the monitor's metrics and reports give them.

A segment's values come from the stream, and a stream may carry any number of them (a typo,
a stray label, an attacker's records). Each label is a Prometheus series and an Evidently
series, so the monitor names at most ``max_segments`` of them: the production version's known
segments first, then the others in the order they appear; every later one shares the label
:data:`OTHER`. The error of the segments under ``OTHER`` is computed over their items together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

OTHER = "other"

R = TypeVar("R")


class SegmentLabels:
    """The label of each segment value: its own while there is room, else :data:`OTHER`."""

    def __init__(self, max_segments: int) -> None:
        if max_segments < 1:
            raise ValueError(f"max_segments must be at least 1, got {max_segments}")
        self.max_segments = max_segments
        self._named: dict[str, None] = {}

    def know(self, segments: Iterable[str]) -> None:
        """Name these segments first (the production version's), as far as there is room."""
        for segment in sorted(segments):
            self.label(segment)

    def label(self, segment: str) -> str:
        """The label of ``segment`` in metrics and reports."""
        if segment in self._named:
            return segment
        if len(self._named) < self.max_segments and segment != OTHER:
            self._named[segment] = None
            return segment
        return OTHER

    def group(self, records: Sequence[R], segment_of: Callable[[R], str]) -> dict[str, list[R]]:
        """The ``records`` by the label of their segment."""
        grouped: defaultdict[str, list[R]] = defaultdict(list)
        for record in records:
            grouped[self.label(segment_of(record))].append(record)
        return dict(grouped)
