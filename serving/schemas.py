"""What the model server's endpoints accept and answer, as pydantic models.

The fish fields reuse the data contract's types (tidemark.schemas), so the API rejects exactly
what the streams send to the dead-letter topic: missing or unknown fields, wrong types, NaN,
infinities, and sizes that are negative or physically absurd.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tidemark.registry.history import ProductionInterval
from tidemark.schemas import Contract, FishId, HeightCm, LengthCm, Species


class Fish(Contract):
    """One fish as the line measures it; ``fish_id`` is optional and echoed back."""

    fish_id: FishId | None = None
    species: Species
    length_cm: LengthCm
    height_cm: HeightCm


class FishPrediction(BaseModel):
    """The predicted weight of one fish."""

    fish_id: str | None
    species: str
    predicted_weight_kg: float
    species_known: bool = Field(
        description="False when the model never saw this species: the weight then comes from "
        "the part of the model shared by all species and is less reliable"
    )


class PredictionResponse(FishPrediction):
    """The answer to one fish, naming the model version that produced it."""

    model_name: str
    model_version: str


class BatchPredictionResponse(BaseModel):
    """The answer to a batch: one prediction per fish, in order, all from one model version."""

    model_name: str
    model_version: str
    count: int
    predictions: list[FishPrediction]


class FieldError(BaseModel):
    """One reason a request was refused."""

    field: str = Field(description="dotted path of the bad field; batch items start at 0")
    reason: str
    type: str


class ErrorResponse(BaseModel):
    """Any refused request: a one-line summary, and for validation errors each bad field."""

    detail: str
    errors: list[FieldError] = Field(default_factory=list)


class Health(BaseModel):
    """Liveness: the process answers."""

    status: str = "ok"


class Readiness(BaseModel):
    """Whether the server can predict, and why not, plus the state of the registry link."""

    ready: bool
    reason: str
    model_version: str | None
    registry_reachable: bool
    registry_error: str | None
    registry_checked_at: datetime | None


class ChallengerInfo(BaseModel):
    """The version in shadow beside production and its running evidence on live fish."""

    version: str
    champion_version: str | None = Field(description="The production version it runs against")
    role: str | None = Field(
        description="challenger (promoted if it wins) or rollback-watch (the version a "
        "promotion replaced: production is rolled back if it wins)"
    )
    started_at: str | None
    start_reason: str | None
    verdict: str | None = Field(
        description="continue while undecided; promote, retire or no_evidence once final"
    )
    n: int = Field(description="Joined fish both versions predicted, counted so far")
    windows: int = Field(description="Monitor windows that brought fish")
    statistic: float | None = Field(description="Log likelihood ratio of the overall mSPRT")
    p_value: float | None = Field(description="Always-valid p-value of the overall test")
    alpha: float | None
    champion_mre: float | None
    challenger_mre: float | None
    reason: str | None


class ModelInfo(BaseModel):
    """The model in service: identity, when it was loaded, what it was trained on, its metrics."""

    name: str
    version: str
    run_id: str
    loaded_at: datetime
    training_window_start: str | None
    training_window_end: str | None
    known_species: list[str] = Field(
        description="Species the model was trained on; any other is scored as unknown"
    )
    champion_version: str | None = Field(
        description="The version this one was compared with before promotion; null for the "
        "first version"
    )
    fast_path: bool = Field(
        description="True when predictions are computed from the model's log-linear "
        "coefficients (verified equal to the pipeline's) rather than through the pipeline"
    )
    metrics: dict[str, float]
    tags: dict[str, str]
    challenger: ChallengerInfo | None = Field(
        default=None, description="The version in shadow, if any, with its live evidence"
    )
    challenger_error: str | None = Field(
        default=None, description="Why the challenger could not be read from the registry"
    )


class ReloadResponse(BaseModel):
    """The outcome of a forced registry check."""

    swapped: bool
    model_version: str | None
    registry_reachable: bool
    registry_error: str | None


class ProductionHistory(BaseModel):
    """Every interval in which a version of a model served, oldest first."""

    project: str
    model_name: str
    production_version: str | None = Field(
        description="The version serving now, as the history's last move says"
    )
    intervals: list[ProductionInterval]


class ServedModelInfo(BaseModel):
    """One project's model as this server serves it."""

    project: str
    model_name: str
    default: bool = Field(description="True for the project that /predict answers for")
    production_version: str | None = Field(description="The version loaded now, if any")
    target: str
    unit: str | None
    segment: str | None
    predict_path: str
    history_path: str
    explain_path: str
    input_schema: dict[str, Any] = Field(description="JSON Schema of one item to predict")
    error: str | None = Field(default=None, description="Why no model is loaded, if known")
