"""A stand-in ``retrain`` flow with the contract's parameters, served as ``retrain/retrain``.

The monitor's tests need a deployment of that name to trigger and count runs of; this one does
nothing but finish after a short while. Run as a script: ``python retrain_stub.py``.
"""

# No `from __future__ import annotations`: Prefect builds the parameter model from the real types.
import time
from datetime import datetime

from prefect import flow

from tidemark.orchestration import RETRAIN_FLOW, SegmentStart


@flow(name=RETRAIN_FLOW)
def retrain(
    reason: str,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    last_n: int | None = None,
    metric: str | None = None,
    metric_value: float | None = None,
    threshold: float | None = None,
    segments: list[str] | None = None,
    segment_starts: dict[str, SegmentStart] | None = None,
    project: str | None = None,
) -> str:
    """Pretend to retrain: wait a little, so that the run is in flight for a moment."""
    del window_start, window_end, last_n, metric, metric_value, threshold, segments
    del segment_starts, project
    time.sleep(3)
    return reason


if __name__ == "__main__":
    retrain.serve(name=RETRAIN_FLOW)
