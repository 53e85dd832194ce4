"""A project's data contract: its messages as pydantic models, and the records the loop handles.

Every message on a project's topics is JSON whose field names come from the project file; the
models that validate them are built here, once per project, so that a bad record is refused
with a reason naming the field (missing, unknown, wrong type, NaN or infinite, out of bounds,
a category not allowed, a time that is not a time). Past the border, the services handle typed
records with the loop's own words (:class:`Item`, :class:`Truth`, :class:`Prediction`,
:class:`Scored`): key, segment, features, target, whatever the project calls them.

The fields a prediction and a scored record add are named after the project's target, unit
and segment (``predicted_<target>``, ``<segment>_known``, ``abs_error_<unit>``, ``rel_error``,
``challenger_predicted_<target>`` …), so a project keeps the record shapes it had before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, cast

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    model_validator,
)

from tidemark.project.spec import ErrorKind, Feature, FeatureType, Project

KEY_PATTERN = r"^[A-Za-z0-9._:\-]+$"
KEY_MAX_LENGTH = 128
CATEGORY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.,()/+\-]*$"
# No prediction is larger than this in magnitude: squared, it stays far from float64's limit,
# so no error metric downstream overflows.
PREDICTION_LIMIT = 1e15

Value = float | str | None


class ContractError(ValueError):
    """A record that passed validation but cannot become what the loop needs; says why."""


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # "9999-12-31T23:59:59-01:00" is a valid ISO-8601 time that no UTC clock reaches.
        raise ValueError("time is outside the range of UTC times") from None


def _absent_if_nan(value: object) -> object:
    # A table (the store's DataFrame) says "absent" with NaN; a message says it with null.
    return None if isinstance(value, float) and math.isnan(value) else value


UtcTime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Key = Annotated[
    str, Field(min_length=1, max_length=KEY_MAX_LENGTH, pattern=KEY_PATTERN, strict=True)
]
Version = Annotated[str, Field(min_length=1, max_length=64)]
Finite = Annotated[float, Field(strict=True, ge=-PREDICTION_LIMIT, le=PREDICTION_LIMIT)]
NonNegative = Annotated[float, Field(strict=True, ge=0)]


class Message(BaseModel):
    """Common rules of every message: no unknown fields, no NaN or infinity, trimmed text."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, frozen=True, str_strip_whitespace=True
    )


def _number(feature: Feature) -> Any:
    constraints: dict[str, Any] = {"strict": True}
    if feature.min is not None:
        constraints["gt" if feature.exclusive_min else "ge"] = feature.min
    if feature.max is not None:
        constraints["le"] = feature.max
    return Annotated[float, Field(**constraints)]


def _category(feature: Feature) -> Any:
    allowed = frozenset(feature.spell(v) for v in feature.values) if feature.values else None

    def spelled(value: str) -> str:
        value = feature.spell(value)
        if allowed is not None and value not in allowed:
            raise ValueError(f"should be one of {sorted(allowed)}")
        return value

    return Annotated[
        str,
        Field(min_length=1, max_length=feature.max_length, pattern=CATEGORY_PATTERN, strict=True),
        AfterValidator(spelled),
    ]


def field_type(feature: Feature) -> Any:
    """The annotation a feature's value is validated with."""
    return _number(feature) if feature.type is FeatureType.NUMBER else _category(feature)


def _declared(annotation: Any, required: bool, description: str | None) -> tuple[Any, Any]:
    if required:
        return annotation, Field(description=description)
    optional = Annotated[annotation | None, BeforeValidator(_absent_if_nan)]
    return optional, Field(default=None, description=description)


@dataclass(frozen=True, slots=True)
class FieldNames:
    """The names of the fields the platform adds to a project's messages."""

    predicted: str
    known: str | None
    challenger_predicted: str
    abs_error: str
    challenger_abs_error: str
    rel_error: str = "rel_error"
    challenger_rel_error: str = "challenger_rel_error"

    @classmethod
    def of(cls, project: Project) -> FieldNames:
        """The added fields' names: after the target, its unit and the segment."""
        target = project.target
        suffix = f"_{target.unit}" if target.unit else ""
        return cls(
            predicted=f"predicted_{target.name}",
            known=f"{project.segment}_known" if project.segment else None,
            challenger_predicted=f"challenger_predicted_{target.name}",
            abs_error=f"abs_error{suffix}",
            challenger_abs_error=f"challenger_abs_error{suffix}",
        )


@dataclass(frozen=True, slots=True)
class Item:
    """One input record: what the model sees of an item, and when it was seen."""

    key: str
    segment: str | None
    at: datetime
    # Every validated field of the record by its project name (key and time included),
    # without the optional ones that were absent.
    fields: Mapping[str, Any]

    def feature(self, name: str) -> Value:
        """A feature's value (None when an optional one is absent)."""
        return cast(Value, self.fields.get(name))


@dataclass(frozen=True, slots=True)
class Truth:
    """The true value of an item's target, when it became known."""

    key: str
    value: float
    at: datetime
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Prediction:
    """An item with the value production predicted and, in shadow, the challenger's."""

    item: Item
    value: float
    segment_known: bool
    model_name: str
    model_version: str
    predicted_at: datetime
    challenger_version: str | None = None
    challenger_value: float | None = None

    @property
    def key(self) -> str:
        """The item's key."""
        return self.item.key

    @property
    def segment(self) -> str | None:
        """The item's segment."""
        return self.item.segment

    @property
    def at(self) -> datetime:
        """The item's event time."""
        return self.item.at


@dataclass(frozen=True, slots=True)
class Scored:
    """A prediction joined with its truth, and the errors of both versions that predicted."""

    prediction: Prediction
    truth: float
    abs_error: float
    # None when the target is not positive: a relative error then means nothing.
    rel_error: float | None
    joined_at: datetime
    challenger_abs_error: float | None = None
    challenger_rel_error: float | None = None

    @property
    def key(self) -> str:
        """The item's key."""
        return self.prediction.item.key

    @property
    def segment(self) -> str | None:
        """The item's segment."""
        return self.prediction.item.segment

    @property
    def at(self) -> datetime:
        """The item's event time (windows are cut by it)."""
        return self.prediction.item.at


class Contracts:
    """The messages of one project's topics, and their codecs."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.names = FieldNames.of(project)
        target = project.target
        target_type = _number(Feature(name=target.name, type=FeatureType.NUMBER, **_bounds(target)))
        features: dict[str, Any] = {
            f.name: _declared(field_type(f), f.required, f.description) for f in project.features
        }
        key: dict[str, Any] = {
            project.key: (Key, Field(description="identifies the item in both streams"))
        }
        title = "".join(part.capitalize() for part in project.name.split("-"))
        inputs: dict[str, Any] = {
            **key,
            **features,
            project.times.input: (UtcTime, Field(description="the input's event time")),
        }
        self.input: type[Message] = create_model(
            f"{title}Input",
            __base__=Message,
            __doc__=f"An input of {project.name}: what the model predicts from.",
            **inputs,
        )
        truths: dict[str, Any] = {
            **key,
            **{name: features[name] for name in project.truth_fields},
            target.name: (target_type, Field(description=target.description)),
            project.times.truth: (UtcTime, Field(description="the truth's event time")),
        }
        self.truth: type[Message] = create_model(
            f"{title}Truth",
            __base__=Message,
            __doc__=f"A truth of {project.name}: the item's real {target.name}.",
            **truths,
        )
        names = self.names
        predicted: Any = _positive_prediction() if target.positive else Finite
        shadow_version: Any = Annotated[Version | None, BeforeValidator(_absent_if_nan)]
        shadow_value: Any = Annotated[predicted | None, BeforeValidator(_absent_if_nan)]
        added: dict[str, Any] = {names.predicted: (predicted, Field(description="production's"))}
        if names.known is not None:
            added[names.known] = (
                bool,
                Field(description="False when the model never saw this segment"),
            )
        added |= {
            "model_name": (Version, ...),
            "model_version": (Version, ...),
            "predicted_at": (UtcTime, ...),
            "challenger_version": (shadow_version, None),
            names.challenger_predicted: (shadow_value, None),
        }
        self.prediction: type[Message] = create_model(
            f"{title}Prediction",
            __base__=self.input,
            __doc__="An input with the value production predicted (and a challenger's).",
            __validators__={"challenger_whole": _pair("challenger_version", names)},
            **added,
        )
        shadow_error: Any = Annotated[NonNegative | None, BeforeValidator(_absent_if_nan)]
        relative = target.judged_by is ErrorKind.RELATIVE
        joined: dict[str, Any] = {
            target.name: (target_type, ...),
            names.abs_error: (NonNegative, ...),
            names.rel_error: (NonNegative, ...) if relative else (shadow_error, None),
            "joined_at": (UtcTime, ...),
            names.challenger_abs_error: (shadow_error, None),
            names.challenger_rel_error: (shadow_error, None),
        }
        self.scored: type[Message] = create_model(
            f"{title}Scored",
            __base__=self.prediction,
            __doc__="A prediction joined with its truth, and the errors.",
            **joined,
        )

    # -- decoding: raises pydantic's ValidationError naming the fields --------------------

    def decode_input(self, raw: bytes | str) -> Item:
        """An input record as the loop's :class:`Item`."""
        return self.item(self.input.model_validate_json(raw).__dict__)

    def decode_truth(self, raw: bytes | str) -> Truth:
        """A truth record as the loop's :class:`Truth`."""
        fields = self.truth.model_validate_json(raw).__dict__
        return Truth(
            key=fields[self.project.key],
            value=fields[self.project.target.name],
            at=fields[self.project.times.truth],
            fields=_present(fields),
        )

    def decode_prediction(self, raw: bytes | str) -> Prediction:
        """A prediction record as the loop's :class:`Prediction`."""
        return self._prediction(self.prediction.model_validate_json(raw).__dict__)

    def decode_scored(self, raw: bytes | str) -> Scored:
        """A scored record as the loop's :class:`Scored`."""
        return self._scored(self.scored.model_validate_json(raw).__dict__)

    def scored_from(self, document: Mapping[str, Any]) -> Scored:
        """A scored record from a stored document or a table row (validated like a message)."""
        return self._scored(self.scored.model_validate(dict(document)).__dict__)

    def item(self, fields: Mapping[str, Any]) -> Item:
        """An :class:`Item` of validated input fields."""
        segment = self.project.segment
        return Item(
            key=fields[self.project.key],
            segment=fields[segment] if segment else None,
            at=fields[self.project.times.input],
            fields=_present({name: fields.get(name) for name in self.input.model_fields}),
        )

    def _prediction(self, fields: Mapping[str, Any]) -> Prediction:
        names = self.names
        return Prediction(
            item=self.item(fields),
            value=fields[names.predicted],
            segment_known=fields[names.known] if names.known else True,
            model_name=fields["model_name"],
            model_version=fields["model_version"],
            predicted_at=fields["predicted_at"],
            challenger_version=fields.get("challenger_version"),
            challenger_value=fields.get(names.challenger_predicted),
        )

    def _scored(self, fields: Mapping[str, Any]) -> Scored:
        names = self.names
        return Scored(
            prediction=self._prediction(fields),
            truth=fields[self.project.target.name],
            abs_error=fields[names.abs_error],
            rel_error=fields.get(names.rel_error),
            joined_at=fields["joined_at"],
            challenger_abs_error=fields.get(names.challenger_abs_error),
            challenger_rel_error=fields.get(names.challenger_rel_error),
        )

    # -- encoding: the caller's records are already valid ---------------------------------

    def prediction_fields(self, prediction: Prediction) -> dict[str, Any]:
        """The fields of a prediction record, in contract order, absent ones left out."""
        names = self.names
        record = dict(prediction.item.fields)
        record[names.predicted] = prediction.value
        if names.known is not None:
            record[names.known] = prediction.segment_known
        record["model_name"] = prediction.model_name
        record["model_version"] = prediction.model_version
        record["predicted_at"] = prediction.predicted_at
        if prediction.challenger_version is not None:
            record["challenger_version"] = prediction.challenger_version
            record[names.challenger_predicted] = prediction.challenger_value
        return record

    def encode_prediction(self, prediction: Prediction) -> bytes:
        """The JSON of a prediction record (no validation: the scorer's hot path)."""
        return orjson.dumps(self.prediction_fields(prediction), option=orjson.OPT_UTC_Z)

    def scored_fields(self, scored: Scored) -> dict[str, Any]:
        """The fields of a scored record, in contract order, absent ones left out."""
        names = self.names
        record = self.prediction_fields(scored.prediction)
        record[self.project.target.name] = scored.truth
        record[names.abs_error] = scored.abs_error
        if scored.rel_error is not None:
            record[names.rel_error] = scored.rel_error
        record["joined_at"] = scored.joined_at
        if scored.challenger_abs_error is not None:
            record[names.challenger_abs_error] = scored.challenger_abs_error
            if scored.challenger_rel_error is not None:
                record[names.challenger_rel_error] = scored.challenger_rel_error
        return record

    def encode_scored(self, scored: Scored) -> bytes:
        """The JSON of a scored record."""
        return orjson.dumps(self.scored_fields(scored), option=orjson.OPT_UTC_Z)

    # -- the join -------------------------------------------------------------------------

    def join(self, prediction: Prediction, truth: Truth, joined_at: datetime) -> Scored:
        """A prediction joined with its truth and the errors of both versions.

        Raises ``ContractError`` when an error is not a finite number (a truth so close to
        zero that the relative error overflows): such a pair cannot be judged.
        """
        positive = self.project.target.positive
        abs_error, rel_error = _errors(prediction.value, truth.value, positive)
        challenger_abs = challenger_rel = None
        if prediction.challenger_value is not None:
            challenger_abs, challenger_rel = _errors(
                prediction.challenger_value, truth.value, positive
            )
        return Scored(
            prediction=prediction,
            truth=truth.value,
            abs_error=abs_error,
            rel_error=rel_error,
            joined_at=joined_at,
            challenger_abs_error=challenger_abs,
            challenger_rel_error=challenger_rel,
        )

    def error(self, scored: Scored) -> float:
        """The error the loop judges this record by (relative or absolute)."""
        if self.project.target.judged_by is ErrorKind.RELATIVE:
            assert scored.rel_error is not None  # the scored contract requires it
            return scored.rel_error
        return scored.abs_error

    def challenger_error(self, scored: Scored) -> float | None:
        """The challenger's judged error on this record, when a challenger predicted it."""
        if self.project.target.judged_by is ErrorKind.RELATIVE:
            return scored.challenger_rel_error
        return scored.challenger_abs_error

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """The JSON Schema of each message, by role."""
        return {
            "input": self.input.model_json_schema(),
            "truth": self.truth.model_json_schema(),
            "prediction": self.prediction.model_json_schema(),
            "scored": self.scored.model_json_schema(),
        }


def _bounds(target: Any) -> dict[str, Any]:
    return {"min": target.min, "max": target.max, "exclusive_min": target.exclusive_min}


def _positive_prediction() -> Any:
    return Annotated[float, Field(strict=True, gt=0, le=PREDICTION_LIMIT)]


def _pair(version_field: str, names: FieldNames) -> Any:
    def whole(model: Any) -> Any:
        if (getattr(model, version_field) is None) != (
            getattr(model, names.challenger_predicted) is None
        ):
            raise ValueError(f"{version_field} and {names.challenger_predicted} go together")
        return model

    return model_validator(mode="after")(whole)


def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def _errors(predicted: float, actual: float, positive: bool) -> tuple[float, float | None]:
    abs_error = abs(predicted - actual)
    if not math.isfinite(abs_error):
        raise ContractError(f"the error of {predicted} against {actual} is not finite")
    if not positive:
        return abs_error, None
    rel_error = abs_error / actual
    if not math.isfinite(rel_error):
        raise ContractError(
            f"the relative error of {predicted} against {actual} is not a finite number"
        )
    return abs_error, rel_error
