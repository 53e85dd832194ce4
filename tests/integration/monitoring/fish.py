"""Synthetic ``fish.scored`` records for the monitoring tests, scored by a real model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sklearn.pipeline import Pipeline

from benchmarks.fish import FISH, fish_scenario
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.modelling.training import predict
from tidemark.project.contracts import Contracts, Scored
from tidemark.simulation.generate import generate_frame

CONTRACTS = Contracts(FISH)

PER_WINDOW = 80


def scored_fish(
    model: Pipeline,
    version: str,
    phase: str,
    windows: int,
    first: datetime,
    settings: Settings,
    *,
    species: str | None = None,
    bias: float = 1.0,
    scenario: str | None = None,
    only: str | None = None,
) -> list[Scored]:
    """``windows`` windows' worth of fish of one phase, scored by ``model``, from ``first`` on.

    ``species`` renames the phase's species (a name the model never saw); ``bias`` scales the
    predictions, as a model that went wrong for them would; ``scenario`` is the fish scenario
    (the default one for None), and ``only`` keeps the fish of one species of the phase.
    """
    frame = generate_frame(fish_scenario(scenario), seed=7, phases=[phase])
    if only:
        frame = frame[frame.species == only].reset_index(drop=True)
    frame = frame.iloc[: windows * PER_WINDOW]
    if species:
        frame = frame.assign(species=species)
    predicted = predict(FISH, model, frame)
    step = timedelta(seconds=settings.monitor.window_s / PER_WINDOW)
    records = []
    for i, (row, weight, known) in enumerate(
        zip(frame.itertuples(), predicted.values, predicted.segment_known, strict=True)
    ):
        measured_at = first + i * step
        predicted_kg = float(weight) * bias
        abs_error = abs(predicted_kg - row.weight_kg)
        records.append(
            CONTRACTS.scored_from(
                {
                    "fish_id": f"{phase}-{uuid.uuid4().hex[:12]}",
                    "species": row.species,
                    "length_cm": row.length_cm,
                    "height_cm": row.height_cm,
                    "measured_at": measured_at,
                    "predicted_weight_kg": predicted_kg,
                    "species_known": bool(known),
                    "model_name": settings.registry.model_name,
                    "model_version": version,
                    "predicted_at": measured_at,
                    "weight_kg": row.weight_kg,
                    "abs_error_kg": abs_error,
                    "rel_error": abs_error / row.weight_kg,
                    "joined_at": measured_at + timedelta(seconds=1),
                }
            )
        )
    return records


def produce(settings: Settings, records: list[Scored]) -> None:
    producer = kafka_io.producer(settings.kafka)
    for record in records:
        producer.send(
            settings.kafka.topics.scored,
            key=record.key.encode(),
            value=CONTRACTS.encode_scored(record),
        )
    producer.flush(30)
    producer.close()


def window_aligned_start(settings: Settings) -> datetime:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return now - timedelta(seconds=now.second % int(settings.monitor.window_s))
