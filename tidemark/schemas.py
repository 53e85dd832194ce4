"""The platform's own messages that cross a process boundary, as pydantic models.

A project's records (inputs, truths, predictions, scored records) are built from its project
file by :mod:`tidemark.project.contracts`; these are the loop's messages about models, whatever
the project: retrain requests, model decisions with their live evidence, dead letters.
Validation is strict on purpose: a message that is missing a field, carries an unknown one, has
the wrong type, a NaN or an infinity is rejected with a reason naming the field.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC, as every timestamp of the contract is."""
    return datetime.now(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
NonNegative = Annotated[float, Field(ge=0, strict=True)]


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
