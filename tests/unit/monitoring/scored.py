"""Scored records and retrain requests for the monitoring and demo unit tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from tidemark.schemas import RetrainReason, RetrainRequest, Scored

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def scored(
    seconds: float,
    *,
    rel_error: float = 0.05,
    weight_kg: float = 4.0,
    species: str = "salmon",
    version: str = "1",
    length_cm: float = 70.0,
    height_cm: float = 17.0,
) -> Scored:
    """A fish measured ``seconds`` after T0 whose prediction was ``rel_error`` too heavy."""
    measured_at = T0 + timedelta(seconds=seconds)
    predicted = weight_kg * (1 + rel_error)
    return Scored(
        fish_id=f"fish-{next(_ids)}",
        species=species,
        length_cm=length_cm,
        height_cm=height_cm,
        measured_at=measured_at,
        predicted_weight_kg=predicted,
        species_known=True,
        model_name="fish-weight",
        model_version=version,
        predicted_at=measured_at,
        weight_kg=weight_kg,
        abs_error_kg=abs(predicted - weight_kg),
        rel_error=abs(predicted - weight_kg) / weight_kg,
        joined_at=measured_at + timedelta(seconds=2),
    )


def retrain_request(window_start_s: float = 0.0, metric_value: float = 0.2) -> RetrainRequest:
    """An error alarm on the 60 s window that starts ``window_start_s`` after T0, sent 10 s
    after the window closed."""
    start = T0 + timedelta(seconds=window_start_s)
    return RetrainRequest(
        reason=RetrainReason.ERROR,
        window_start=start,
        window_end=start + timedelta(seconds=60),
        metric="mean_relative_error",
        metric_value=metric_value,
        threshold=0.10,
        model_version="1",
        requested_at=start + timedelta(seconds=70),
    )
