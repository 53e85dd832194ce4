"""A project file: one prediction stream, declared once, validated by pydantic.

A project says what one stream looks like: the key that identifies an item in both streams,
the input's and the truth's event times, the features (numbers or categories, with units and
bounds), the optional segment (a categorical feature by which the loop monitors, opens
incidents, gathers evidence, pools the model and remembers absent groups), the target and the
error the loop judges, the model, and the loop's windows and thresholds where they differ from
the stack's settings. Everything else (topics, the store's collection, the registered model,
the Evidently project) follows from the project's name unless the file says otherwise::

    name = "bakery-loaf"
    key = "loaf_id"
    segment = "recipe"

    [times]
    input = "baked_at"
    truth = "weighed_at"
    join_window_s = 120

    [[features]]
    name = "recipe"
    type = "category"

    [[features]]
    name = "dough_g"
    type = "number"
    unit = "g"
    min = 0
    exclusive_min = true

    [target]
    name = "loaf_g"
    unit = "g"
    min = 0
    exclusive_min = true

A project may name the folder of its scenarios (``scenarios = "../examples/bakery/scenarios"``,
relative to the file): the synthetic streams ``tidemark simulate`` plays for it
(``tidemark.simulation``); and its bootstrap CSV (``bootstrap = "../examples/bakery/first.csv"``),
the records ``tidemark train --if-no-production`` trains its first model on.

The JSON Schema of this file is published in ``docs/project.schema.json``
(``tidemark projects schema`` writes it).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# A field name the platform can put in JSON, a DataFrame, a MongoDB document, a metric label
# and an environment-free file name alike.
FIELD_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
# A project's name is the registered model, the topics' prefix, the store's collection and
# the Evidently project: the characters all of them accept.
PROJECT_NAME = r"^[a-z][a-z0-9\-]{0,62}[a-z0-9]$"
TOPIC_PART = r"^[A-Za-z0-9._\-]{1,100}$"

FieldName = Annotated[str, Field(pattern=FIELD_NAME)]
# The fields every prediction and scored record adds; a project may not use them for its own.
RESERVED_FIELDS = frozenset(
    {"model_name", "model_version", "predicted_at", "joined_at", "challenger_version"}
)


class ProjectError(ValueError):
    """A project file that cannot be read or does not describe a stream; names the field."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FeatureType(StrEnum):
    """What kind of value a feature holds."""

    NUMBER = "number"
    CATEGORY = "category"


class Case(StrEnum):
    """How a category's values are spelled before anyone compares them."""

    KEEP = "keep"
    # Values arrive from scales and cameras in any case; the model sees one spelling.
    LOWER = "lower"


class ErrorKind(StrEnum):
    """The error the loop judges a prediction by."""

    # |predicted - actual| / actual: for a positive target, errors of a 1 kg and a 10 kg item
    # weigh the same.
    RELATIVE = "relative"
    # |predicted - actual| in the target's unit: for a target that may be zero or negative.
    ABSOLUTE = "absolute"


class Bounds(_Spec):
    """Inclusive bounds of a number, and whether its minimum itself is excluded."""

    min: float | None = Field(default=None, description="smallest value accepted")
    max: float | None = Field(default=None, description="largest value accepted")
    exclusive_min: bool = Field(
        default=False, description="values must be strictly above min (a positive size: min 0)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.exclusive_min and self.min is None:
            raise ValueError("exclusive_min needs a min")
        if (
            self.min is not None
            and self.max is not None
            and (self.min > self.max or (self.exclusive_min and self.min == self.max))
        ):
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    @property
    def positive(self) -> bool:
        """Whether every accepted value is above zero (so its logarithm exists)."""
        if self.min is None:
            return False
        return self.min > 0 or (self.min == 0 and self.exclusive_min)

    def contains(self, value: float) -> bool:
        """Whether ``value`` is a finite number within the bounds."""
        if not math.isfinite(value):
            return False
        if self.min is not None and (
            value < self.min or (self.exclusive_min and value == self.min)
        ):
            return False
        return self.max is None or value <= self.max


class Feature(Bounds):
    """One input field of the model: a number with a unit and bounds, or a category."""

    name: FieldName
    type: FeatureType
    unit: str | None = Field(default=None, max_length=32)
    required: bool = Field(default=True, description="an optional feature may be absent or null")
    description: str | None = None
    # Categories only.
    values: tuple[str, ...] | None = Field(
        default=None, description="the allowed values of a category (any value when absent)"
    )
    case: Case = Field(default=Case.KEEP, description="a category's spelling")
    max_length: int = Field(default=64, ge=1, le=1_024, description="a category's longest value")

    @model_validator(mode="after")
    def _fits_type(self) -> Self:
        if self.type is FeatureType.CATEGORY:
            if self.min is not None or self.max is not None:
                raise ValueError(f"{self.name}: a category has no min or max")
            if self.unit is not None:
                raise ValueError(f"{self.name}: a category has no unit")
            if self.values is not None:
                if not self.values:
                    raise ValueError(f"{self.name}: values is empty")
                spelled = [self.spell(v) for v in self.values]
                if len(set(spelled)) != len(spelled):
                    raise ValueError(f"{self.name}: a value is listed twice")
        elif self.values is not None:
            raise ValueError(f"{self.name}: only a category has values")
        return self

    def spell(self, value: str) -> str:
        """The one spelling of a category's value."""
        value = value.strip()
        return value.lower() if self.case is Case.LOWER else value


class Target(Bounds):
    """What the model predicts, and the error the loop judges it by."""

    name: FieldName
    unit: str | None = Field(default=None, max_length=32, pattern=r"^[A-Za-z0-9_]+$")
    description: str | None = None
    error: ErrorKind | None = Field(
        default=None,
        description="relative for a positive target, absolute otherwise (the default follows "
        "the bounds: relative when min is 0 exclusive or above)",
    )

    @model_validator(mode="after")
    def _error_fits(self) -> Self:
        if self.error is ErrorKind.RELATIVE and not self.positive:
            raise ValueError(
                f"{self.name}: a relative error needs a positive target "
                "(min 0 with exclusive_min, or a positive min)"
            )
        return self

    @property
    def judged_by(self) -> ErrorKind:
        """The error the loop judges: as declared, else relative for a positive target."""
        if self.error is not None:
            return self.error
        return ErrorKind.RELATIVE if self.positive else ErrorKind.ABSOLUTE


class Times(_Spec):
    """The event times of both streams, and how long an input waits for its truth."""

    input: FieldName = Field(description="the input's event time (UTC ISO-8601, with offset)")
    truth: FieldName = Field(description="the truth's event time")
    join_window_s: float | None = Field(
        default=None, gt=0, description="the stack's stream join window when absent"
    )


class Topics(_Spec):
    """The project's Kafka topics: ``<prefix>.<role>``; the prefix is the name by default."""

    prefix: str | None = Field(default=None, pattern=TOPIC_PART)
    input: str = Field(default="inputs", pattern=TOPIC_PART)
    truth: str = Field(default="truths", pattern=TOPIC_PART)


class ModelSpec(_Spec):
    """The model: the platform's default for the target, or the user's estimator."""

    factory: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:function returning an unfitted scikit-learn estimator, given the "
        "project; the platform's default model when absent",
    )


class Store(_Spec):
    """Where the project's joined records are kept."""

    collection: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]{0,100}$",
        description="the MongoDB collection of joined records; the project's name when absent",
    )


class Loop(_Spec):
    """The loop's windows and thresholds where this project differs from the stack's settings.

    Each table holds fields of the settings section of the same name (``monitor``,
    ``retrain``, ``shadow``); they are checked against it when the project is resolved.
    """

    monitor: dict[str, Any] = Field(default_factory=dict)
    retrain: dict[str, Any] = Field(default_factory=dict)
    shadow: dict[str, Any] = Field(default_factory=dict)


class Project(_Spec):
    """One prediction stream (see the module docstring for the file)."""

    name: str = Field(pattern=PROJECT_NAME, description="lower-case letters, digits and '-'")
    description: str | None = None
    key: FieldName = Field(description="the field that identifies an item in both streams")
    times: Times
    features: tuple[Feature, ...] = Field(min_length=1)
    segment: FieldName | None = Field(
        default=None,
        description="a categorical feature by which the loop monitors, opens incidents, "
        "gathers evidence, pools the model and remembers absent groups",
    )
    target: Target
    truth_fields: tuple[FieldName, ...] = Field(
        default=(),
        description="input fields the truth record carries too (validated, not used)",
    )
    topics: Topics = Topics()
    store: Store = Store()
    model: ModelSpec = ModelSpec()
    loop: Loop = Loop()
    scenarios: str | None = Field(
        default=None,
        min_length=1,
        description="the folder of the project's scenarios (YAML files that tidemark simulate "
        "plays), relative to the project file",
    )
    bootstrap: str | None = Field(
        default=None,
        min_length=1,
        description="a CSV in the project's shape that the first model is trained on "
        "(tidemark train --if-no-production), relative to the project file",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [f.name for f in self.features]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"features: {name} is declared twice")
            seen.add(name)
        own = {"key": self.key, "times.input": self.times.input, "times.truth": self.times.truth}
        for where, name in own.items():
            if name in seen:
                raise ValueError(f"{where}: {name} is also a feature")
        if self.target.name in seen:
            raise ValueError(f"target: {self.target.name} is also a feature")
        if self.target.name in own.values():
            raise ValueError(f"target: {self.target.name} is also the key or a time")
        if len(set(own.values())) != len(own):
            raise ValueError("key, times.input and times.truth must be three different fields")
        for name in [*names, *own.values(), self.target.name, *self.truth_fields]:
            if name in RESERVED_FIELDS or name.startswith(("predicted_", "challenger_")):
                raise ValueError(f"{name} is a name the platform uses for its own fields")
        if self.segment is not None:
            segment = self.feature(self.segment)
            if segment is None:
                raise ValueError(f"segment: {self.segment} is not a feature")
            if segment.type is not FeatureType.CATEGORY:
                raise ValueError(f"segment: {self.segment} is a {segment.type}, not a category")
            if not segment.required:
                raise ValueError(f"segment: {self.segment} must be required")
        for name in self.truth_fields:
            if name not in seen:
                raise ValueError(f"truth_fields: {name} is not a feature")
        if self.target.judged_by is ErrorKind.ABSOLUTE:
            self._absolute_scales_declared()
        return self

    def _absolute_scales_declared(self) -> None:
        # The stack's error threshold (0.10) and shadow cap (1.0) are relative errors: in the
        # unit of an absolute error they would mean nothing (a 0.1 °C threshold, every error
        # capped at 1 g), so a project judged by its absolute error states both in its unit.
        missing = [
            f"[loop.{section}] {name}"
            for section, name in (("monitor", "error_threshold"), ("shadow", "error_cap"))
            if name not in getattr(self.loop, section)
        ]
        if missing:
            unit = f" (in {self.target.unit})" if self.target.unit else ""
            raise ValueError(
                f"target: {self.target.name} is judged by its absolute error, so the error the "
                f"loop tolerates and the cap of a shadow's per-item errors are in its own "
                f"unit{unit}: set {' and '.join(missing)}; the stack's defaults are relative errors"
            )

    def feature(self, name: str) -> Feature | None:
        """The feature of that name, or None."""
        return next((f for f in self.features if f.name == name), None)

    @property
    def numbers(self) -> tuple[Feature, ...]:
        """The numeric features, in file order."""
        return tuple(f for f in self.features if f.type is FeatureType.NUMBER)

    @property
    def categories(self) -> tuple[Feature, ...]:
        """The categorical features, the segment included, in file order."""
        return tuple(f for f in self.features if f.type is FeatureType.CATEGORY)

    @property
    def topic_prefix(self) -> str:
        """The topics' prefix: the file's, else the project's name."""
        return self.topics.prefix or self.name

    @property
    def collection(self) -> str:
        """The MongoDB collection of the project's joined records."""
        return self.store.collection or self.name

    def variant(
        self, name: str, *, topic_prefix: str | None = None, collection: str | None = None
    ) -> Project:
        """The same stream under another name: its own registered model, topics and store.

        Topics take the new name as prefix and the collection the new name, unless given;
        the input and truth topics keep their role names. Tests and side-by-side trials run
        a variant so that nothing of theirs meets the original's.
        """
        return parse_project(
            self.model_dump(mode="json")
            | {
                "name": name,
                "topics": self.topics.model_dump() | {"prefix": topic_prefix or name},
                "store": {"collection": collection or name},
            },
            f"variant {name} of {self.name}",
        )


def parse_project(data: Any, source: str = "project") -> Project:
    """A project from parsed TOML/YAML data; ``ProjectError`` names each bad field."""
    try:
        return Project.model_validate(data)
    except ValidationError as error:
        raise ProjectError(f"{source}: {describe_errors(error)}") from None


def load_project(path: Path) -> Project:
    """Read and validate a project file (``.toml``, ``.yaml`` or ``.yml``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ProjectError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in {".yaml", ".yml"}:
            data = yaml.safe_load(text)
        else:
            raise ProjectError(f"{path}: a project file ends in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ProjectError(f"{path}: not valid {path.suffix[1:].upper()}: {error}") from None
    project = parse_project(data, str(path))
    # Relative to the file, wherever it is read from: the same file finds the same scenarios
    # and bootstrap CSV.
    relative = {"scenarios": project.scenarios, "bootstrap": project.bootstrap}
    return project.model_copy(
        update={k: str((path.parent / v).resolve()) for k, v in relative.items() if v is not None}
    )


def save_project(project: Project, path: Path) -> Path:
    """Write a project file (YAML) that :func:`load_project` reads back as the same project."""
    data = project.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def describe_errors(error: ValidationError) -> str:
    """One line naming each bad field and why, e.g. ``features.1.type: Input should be …``."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"])
        message = re.sub(r"^Value error, ", "", item["msg"])
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def schema_text() -> str:
    """The JSON Schema of a project file, as published in ``docs/project.schema.json``."""
    schema = Project.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Tidemark project"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
