"""Joined items put straight into the training store, as the joiner would have stored them."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson

from tidemark.config import Settings
from tidemark.project.catalog import load_catalog
from tidemark.project.contracts import Scored
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario
from tidemark.store import TrainingStore

FISH = load_catalog(Path("projects")).contracts("fish-weight")


def store_phase(
    settings: Settings,
    phase: str,
    seed: int,
    start: datetime,
    count: int,
    *,
    prefix: str,
    joined_after: timedelta = timedelta(0),
) -> list[Scored]:
    """Store ``count`` fish of a phase of the fish scenario as joined records, a second apart
    from ``start`` and joined ``joined_after`` that, each predicted exactly by version 1 of the
    settings' model (ids ``prefix-<fish id>``); return the records stored."""
    frame = generate_frame(load_scenario(FISH.project), seed, [phase]).head(count)
    records = []
    for i, row in enumerate(frame.itertuples(index=False)):
        at = start + timedelta(seconds=i)
        fields = {
            "fish_id": f"{prefix}-{row.fish_id}",
            "species": row.species,
            "length_cm": row.length_cm,
            "height_cm": row.height_cm,
            "measured_at": at,
            "predicted_weight_kg": row.weight_kg,
            "species_known": True,
            "model_name": settings.registry.model_name,
            "model_version": "1",
            "predicted_at": at,
            "weight_kg": row.weight_kg,
            "abs_error_kg": 0.0,
            "rel_error": 0.0,
            "joined_at": at + joined_after,
        }
        # Through JSON, as a record read from the scored topic.
        records.append(FISH.decode_scored(orjson.dumps(fields)))
    with TrainingStore(settings.store, FISH) as store:
        assert store.upsert_many(records) == count
    return records
