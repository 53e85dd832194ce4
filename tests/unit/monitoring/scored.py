"""Scored fish and retrain requests for the monitoring and demo unit tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from tests.integration.projects import example
from tidemark.project.contracts import Contracts, Scored
from tidemark.project.spec import Project, parse_project
from tidemark.schemas import RetrainReason, RetrainRequest

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FISH = Contracts(example("fish-weight"))
# The fish without their segment: a project whose items are one implicit segment.
WHOLE_FISH: Project = parse_project(
    FISH.project.model_dump(mode="json") | {"name": "fish-whole", "segment": None},
    "the fish as one segment",
)
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
    known: bool = True,
    contracts: Contracts = FISH,
) -> Scored:
    """A fish measured ``seconds`` after T0 whose prediction was ``rel_error`` too heavy."""
    measured_at = T0 + timedelta(seconds=seconds)
    predicted = weight_kg * (1 + rel_error)
    record = {
        "fish_id": f"fish-{next(_ids)}",
        "species": species,
        "length_cm": length_cm,
        "height_cm": height_cm,
        "measured_at": measured_at,
        "predicted_weight_kg": predicted,
        "model_name": "fish-weight",
        "model_version": version,
        "predicted_at": measured_at,
        "weight_kg": weight_kg,
        "abs_error_kg": abs(predicted - weight_kg),
        "rel_error": abs(predicted - weight_kg) / weight_kg,
        "joined_at": measured_at + timedelta(seconds=2),
    }
    if contracts.names.known is not None:
        record[contracts.names.known] = known
    return contracts.scored_from(record)


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
