"""The data contract: every message that crosses a process boundary, as a pydantic model.

Units are in the field names. Validation is strict on purpose: a record that is missing a field,
carries an unknown one, has the wrong type (a number sent as a string), a NaN or an infinity, or
a size that is negative or physically absurd is rejected with a reason naming the field, and the
caller sends it to the dead-letter topic (streams) or answers 422 (API). An unknown species is
not a schema error: the model scores it from the shared part and flags it.
"""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

# Bounds beyond which a size is a sensor or typing error, not a fish. The largest fish ever
# weighed (a beluga sturgeon, about 7 m and 1.5 t) sets the scale.
MAX_LENGTH_CM = 800.0
MAX_HEIGHT_CM = 300.0
MAX_WEIGHT_KG = 2_000.0


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC, as every timestamp of the contract is."""
    return datetime.now(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
FishId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]
# Species arrive from scales and cameras in any case; the model sees one spelling.
Species = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9 _\-]*$"),
    AfterValidator(str.lower),
]
LengthCm = Annotated[float, Field(gt=0, le=MAX_LENGTH_CM, strict=True)]
HeightCm = Annotated[float, Field(gt=0, le=MAX_HEIGHT_CM, strict=True)]
WeightKg = Annotated[float, Field(gt=0, le=MAX_WEIGHT_KG, strict=True)]
PredictedKg = Annotated[float, Field(gt=0, strict=True)]
NonNegative = Annotated[float, Field(ge=0, strict=True)]


def _absent_if_nan(value: object) -> object:
    # A table (the store's DataFrame) says "absent" with NaN; the contract says it with None.
    return None if isinstance(value, float) and math.isnan(value) else value


# The shadow fields: optional, so records written before shadow evaluation still parse.
ShadowText = Annotated[Annotated[str, Field(min_length=1)] | None, BeforeValidator(_absent_if_nan)]
ShadowKg = Annotated[PredictedKg | None, BeforeValidator(_absent_if_nan)]
ShadowError = Annotated[NonNegative | None, BeforeValidator(_absent_if_nan)]


class Contract(BaseModel):
    """Common rules: no unknown fields, no NaN or infinity, immutable, trimmed strings."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, frozen=True, str_strip_whitespace=True
    )

    def to_json(self) -> bytes:
        """The message as UTF-8 JSON bytes, ready for Kafka."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        """Parse and validate one message; raises ``ValidationError`` with the reasons."""
        return cls.model_validate_json(raw)


class Measurement(Contract):
    """``fish.measurements``: a fish measured on the line, before anyone knows its weight."""

    fish_id: FishId
    species: Species
    length_cm: LengthCm
    height_cm: HeightCm
    measured_at: UtcDatetime


class Weight(Contract):
    """``fish.weights``: the same fish on the scale, a little later."""

    fish_id: FishId
    species: Species
    weight_kg: WeightKg
    weighed_at: UtcDatetime


class Prediction(Measurement):
    """``fish.predictions``: a measurement with the weight the production model predicted.

    While a challenger runs in shadow, the record also carries the challenger's version and
    its prediction of the same fish (both or neither); only production's answer is used.
    Without a challenger the JSON omits those fields, byte for byte as before shadow existed.
    """

    predicted_weight_kg: PredictedKg
    species_known: bool = Field(
        description="False when the model never saw this species and predicted from the "
        "shared part only"
    )
    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    predicted_at: UtcDatetime
    challenger_version: ShadowText = None
    challenger_predicted_weight_kg: ShadowKg = None

    @model_validator(mode="after")
    def _challenger_is_whole(self) -> Self:
        if (self.challenger_version is None) != (self.challenger_predicted_weight_kg is None):
            raise ValueError("challenger_version and challenger_predicted_weight_kg go together")
        return self

    def to_json(self) -> bytes:
        """The message as UTF-8 JSON bytes; absent shadow fields are left out, not null."""
        return self.model_dump_json(exclude_none=True).encode()


def prediction_json(
    measurement: Measurement,
    predicted_weight_kg: float,
    species_known: bool,
    model_name: str,
    model_version: str,
    predicted_at: datetime,
    challenger_version: str | None = None,
    challenger_predicted_weight_kg: float | None = None,
) -> bytes:
    """The JSON of the ``Prediction`` of a measurement, for the scorer's hot path.

    The same bytes as ``Prediction(...).to_json()`` (a test holds it to that) in a quarter of the
    time, because nothing is validated twice: the measurement already was, and the caller
    guarantees positive finite weights, non-empty model name and versions, a UTC time, and a
    challenger version exactly when there is a challenger's weight.
    """
    record = {
        "fish_id": measurement.fish_id,
        "species": measurement.species,
        "length_cm": measurement.length_cm,
        "height_cm": measurement.height_cm,
        "measured_at": measurement.measured_at,
        "predicted_weight_kg": predicted_weight_kg,
        "species_known": species_known,
        "model_name": model_name,
        "model_version": model_version,
        "predicted_at": predicted_at,
    }
    if challenger_version is not None:
        record["challenger_version"] = challenger_version
        record["challenger_predicted_weight_kg"] = challenger_predicted_weight_kg
    return orjson.dumps(record, option=orjson.OPT_UTC_Z)


class Scored(Prediction):
    """``fish.scored``: a prediction joined with the true weight, and the error.

    A prediction that carried a challenger's weight also gets the challenger's errors on the
    same fish, the evidence of the shadow evaluation (``tidemark.judging.shadow``).
    """

    weight_kg: WeightKg
    abs_error_kg: NonNegative
    rel_error: NonNegative
    joined_at: UtcDatetime
    challenger_abs_error_kg: ShadowError = None
    challenger_rel_error: ShadowError = None

    @model_validator(mode="after")
    def _challenger_errors_match(self) -> Self:
        has_prediction = self.challenger_predicted_weight_kg is not None
        if (self.challenger_abs_error_kg is not None) != has_prediction or (
            self.challenger_rel_error is not None
        ) != has_prediction:
            raise ValueError("challenger errors go with a challenger's prediction, and only")
        return self

    @classmethod
    def join(cls, prediction: Prediction, weight: Weight, joined_at: datetime) -> Scored:
        """Join a prediction with the fish's true weight; errors follow the original tutorial."""
        abs_error = abs(prediction.predicted_weight_kg - weight.weight_kg)
        challenger_abs_error = challenger_rel_error = None
        if prediction.challenger_predicted_weight_kg is not None:
            challenger_abs_error = abs(prediction.challenger_predicted_weight_kg - weight.weight_kg)
            challenger_rel_error = challenger_abs_error / weight.weight_kg
        return cls(
            **prediction.model_dump(),
            weight_kg=weight.weight_kg,
            abs_error_kg=abs_error,
            rel_error=abs_error / weight.weight_kg,
            joined_at=joined_at,
            challenger_abs_error_kg=challenger_abs_error,
            challenger_rel_error=challenger_rel_error,
        )


class RetrainReason(StrEnum):
    """Why a retrain was asked for."""

    ERROR = "error"
    DRIFT = "drift"
    SCHEDULE = "schedule"
    MANUAL = "manual"
    # The first model of a registry, trained on a scenario or a CSV rather than on the line.
    BOOTSTRAP = "bootstrap"


class RetrainRequest(Contract):
    """``<project>.retrain-requests``: the monitor (or a person) asks for a new model."""

    reason: RetrainReason
    window_start: UtcDatetime
    window_end: UtcDatetime
    metric: str = Field(min_length=1, description="name of the metric that fired")
    metric_value: float
    threshold: float
    model_version: str | None = None
    requested_at: UtcDatetime

    @model_validator(mode="after")
    def _window_is_ordered(self) -> Self:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self


class ShadowVerdict(StrEnum):
    """Where a shadow evaluation stands after a look at the live evidence
    (``tidemark.judging.shadow``)."""

    CONTINUE = "continue"
    PROMOTE = "promote"
    RETIRE = "retire"
    NO_EVIDENCE = "no_evidence"


class ModelEvent(StrEnum):
    """What a ``<project>.model-decisions`` record announces."""

    CHALLENGE = "challenge"  # a version starts running in shadow beside production
    PROMOTION = "promotion"  # a challenger won on live items and goes to production
    RETIREMENT = "retirement"  # a challenger lost, or found no evidence, and leaves shadow
    ROLLBACK = "rollback"  # production went back to the version it had replaced


class ShadowEvidence(Contract):
    """The live evidence of a shadow evaluation on one segment's items."""

    n: int = Field(ge=0)
    champion_mre: NonNegative
    challenger_mre: NonNegative
    statistic: float = Field(description="log likelihood ratio of the sequential test")
    p_value: float = Field(ge=0, le=1, description="always-valid p-value")
    alpha: float = Field(gt=0, lt=1, description="the level this segment's test was allotted")


class ModelDecision(Contract):
    """``<project>.model-decisions`` (key: model name): a challenge, promotion, retirement or
    rollback.

    The champion is the version in production when the evidence was gathered, the challenger
    the one in shadow beside it; for a rollback, the champion is the version rolled back and
    the challenger the version it had replaced, now restored. The evidence fields come from
    the sequential test on live items (``tidemark.judging.shadow``) and are absent for a decision a
    person made by hand.
    """

    kind: ModelEvent
    model_name: str = Field(min_length=1)
    champion_version: str = Field(min_length=1)
    challenger_version: str = Field(min_length=1)
    verdict: ShadowVerdict | None = None
    n: int = Field(default=0, ge=0, description="joined items both versions predicted")
    statistic: float | None = Field(default=None, description="log likelihood ratio")
    p_value: float | None = Field(default=None, ge=0, le=1, description="always-valid")
    alpha: float | None = Field(default=None, gt=0, lt=1)
    champion_mre: NonNegative | None = None
    challenger_mre: NonNegative | None = None
    segments: dict[str, ShadowEvidence] = Field(default_factory=dict)
    reason: str = Field(min_length=1)
    decided_by: str = Field(min_length=1, description="monitor, retrain, or manual")
    decided_at: UtcDatetime

    @model_validator(mode="after")
    def _two_versions(self) -> Self:
        if self.champion_version == self.challenger_version:
            raise ValueError("a version cannot challenge itself")
        return self


class DeadLetter(Contract):
    """``<project>.dead-letter``: a record that could not be used, kept whole with the reason."""

    # The raw value is kept to the byte, surrounding white space included.
    model_config = ConfigDict(str_strip_whitespace=False)

    source_topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key: str | None
    value: str = Field(description="the raw value, as text when UTF-8, else base64")
    value_encoding: Literal["utf-8", "base64"]
    error: str
    failed_at: UtcDatetime

    @classmethod
    def of(
        cls,
        *,
        source_topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        error: str,
    ) -> DeadLetter:
        """Wrap raw Kafka bytes that failed, so that nothing about them is lost."""
        raw = value or b""
        encoding: Literal["utf-8", "base64"] = "utf-8"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
        return cls(
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            key=key.decode("utf-8", errors="replace") if key is not None else None,
            value=text,
            value_encoding=encoding,
            error=error,
            failed_at=utc_now(),
        )

    def raw_value(self) -> bytes:
        """The original bytes of the failed record."""
        if self.value_encoding == "base64":
            return base64.b64decode(self.value)
        return self.value.encode("utf-8")


def describe(error: ValidationError) -> str:
    """One line naming each bad field and why, e.g. ``size: Input should be > 0``."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "record"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
