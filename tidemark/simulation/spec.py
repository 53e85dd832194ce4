"""A scenario file's shape: phases of items, each drawn by laws written as data.

These models check the file alone (types, signs, one law per segment); what a scenario means
for its project (feature names, categories, bounds) is checked when it is bound to the project
(:mod:`tidemark.simulation.scenario`). The format is described in :mod:`tidemark.simulation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from tidemark.project.spec import FIELD_NAME, PROJECT_NAME

FloatArray = npt.NDArray[np.float64]
# Every standard normal draw is clipped here, so that a law's extremes are known in advance
# and checked against the project's bounds before anything is generated.
NOISE_CLIP_SD = 4.0

FieldName = Annotated[str, Field(pattern=FIELD_NAME)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def clipped(z: FloatArray) -> FloatArray:
    """Standard normal draws clipped to ``±NOISE_CLIP_SD``."""
    return np.clip(z, -NOISE_CLIP_SD, NOISE_CLIP_SD)


class Normal(_Spec):
    """A number from a normal distribution clipped to ``[min, max]``."""

    mean: float
    sd: float = Field(ge=0)
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.min <= self.mean <= self.max:
            raise ValueError(f"need min <= mean <= max, got {self.min}, {self.mean}, {self.max}")
        return self

    def apply(self, z: FloatArray) -> FloatArray:
        """Standard normal draws turned into values of this distribution."""
        return np.clip(self.mean + self.sd * z, self.min, self.max)


class Ratio(Normal):
    """A share of another number of the same item: ``ratio_of`` times a clipped normal.

    A loaf's crust as a share of its dough keeps the crust of big loaves big, as it is.
    """

    ratio_of: FieldName


class Choice(_Spec):
    """A category drawn among values with relative weights."""

    choice: dict[str, Annotated[float, Field(gt=0)]] = Field(min_length=1)

    def pick(self, u: FloatArray) -> npt.NDArray[np.object_]:
        """Values for uniform draws ``u`` in [0, 1)."""
        weights = np.array(list(self.choice.values()))
        edges = np.cumsum(weights) / weights.sum()
        index = np.minimum(np.searchsorted(edges, u, side="right"), len(weights) - 1)
        return np.array(list(self.choice), dtype=object)[index]


def _draw_kind(value: Any) -> str:
    fields = value if isinstance(value, Mapping) else vars(value)
    if "choice" in fields:
        return "choice"
    return "ratio" if "ratio_of" in fields else "normal"


# Told apart by their fields, so that a mistake is explained by the one model it was meant for.
Draw = Annotated[
    Annotated[Normal, Tag("normal")]
    | Annotated[Ratio, Tag("ratio")]
    | Annotated[Choice, Tag("choice")],
    Discriminator(_draw_kind),
]


class PowerLaw(_Spec):
    """``scale * Π feature**exponent``, times the log-normal noise ``exp(noise_sd * z)``.

    A log-linear law: its relative noise is the same for small and large items.
    """

    law: Literal["power"]
    scale: float = Field(gt=0)
    exponents: dict[FieldName, float] = Field(default_factory=dict)
    noise_sd: float = Field(ge=0, description="the noise's standard deviation in log units")

    @property
    def features(self) -> tuple[str, ...]:
        """The features the law reads."""
        return tuple(self.exponents)

    def median(self, values: Mapping[str, FloatArray], size: int) -> FloatArray:
        """The noise-free (median) target of items with these feature values."""
        result = np.full(size, self.scale)
        for name, exponent in self.exponents.items():
            result = result * values[name] ** exponent
        return result

    def sample(self, values: Mapping[str, FloatArray], z: FloatArray) -> FloatArray:
        """Targets with multiplicative noise; ``z`` are standard normal draws (clipped)."""
        return self.median(values, len(z)) * np.exp(self.noise_sd * clipped(z))


class LinearLaw(_Spec):
    """``intercept + Σ coefficient * feature``, plus the Gaussian noise ``noise_sd * z``."""

    law: Literal["linear"]
    intercept: float = 0.0
    coefficients: dict[FieldName, float] = Field(default_factory=dict)
    noise_sd: float = Field(ge=0, description="the noise's standard deviation in target units")

    @property
    def features(self) -> tuple[str, ...]:
        """The features the law reads."""
        return tuple(self.coefficients)

    def median(self, values: Mapping[str, FloatArray], size: int) -> FloatArray:
        """The noise-free (mean and median) target of items with these feature values."""
        result = np.full(size, self.intercept)
        for name, coefficient in self.coefficients.items():
            result = result + coefficient * values[name]
        return result

    def sample(self, values: Mapping[str, FloatArray], z: FloatArray) -> FloatArray:
        """Targets with additive noise; ``z`` are standard normal draws (clipped)."""
        return self.median(values, len(z)) + self.noise_sd * clipped(z)


Law = Annotated[PowerLaw | LinearLaw, Field(discriminator="law")]


class Resample(_Spec):
    """The rows of this segment in a data set, replayed at random with measurement noise.

    Each number (features and target) is multiplied by ``exp(noise_sd * z)``: two draws of the
    same row are two measurements of the same item, not the same record twice.
    """

    data: str = Field(min_length=1, description="a data set named in the scenario's data")
    noise_sd: float = Field(default=0.0, ge=0, description="relative measurement noise")


class Segment(_Spec):
    """The items of one segment during a phase: drawn feature by feature, or resampled."""

    share: float = Field(default=1.0, gt=0, description="relative share of the phase's items")
    features: dict[FieldName, Draw] = Field(default_factory=dict)
    target: Law | None = None
    resample: Resample | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.resample is not None and (self.features or self.target is not None):
            raise ValueError("a resampled segment draws no features and no target")
        if self.resample is None and self.target is None:
            raise ValueError("give the target's law (target) or a data set to resample")
        return self


class DataFile(_Spec):
    """A CSV: a file beside the scenario, or a file inside an installed package."""

    file: str | None = Field(default=None, min_length=1, description="relative to the scenario")
    package: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*$")
    path: str | None = Field(default=None, min_length=1, description="inside the package")

    @model_validator(mode="after")
    def _one_place(self) -> Self:
        if (self.file is None) == (self.package is None):
            raise ValueError("give either file, or package and path")
        if (self.package is None) != (self.path is None):
            raise ValueError("a package's file needs both package and path")
        return self

    def __str__(self) -> str:
        return self.file if self.file is not None else f"{self.package}:{self.path}"


class Phase(_Spec):
    """A stretch of the stream with a fixed mix of segments and fixed laws."""

    name: str = Field(min_length=1)
    count: int = Field(ge=1)
    segments: dict[str, Segment] = Field(min_length=1)


class ScenarioFile(_Spec):
    """A named sequence of phases for one project; drift is the change between phases."""

    name: str = Field(min_length=1)
    project: str = Field(pattern=PROJECT_NAME, description="the project whose items these are")
    description: str = ""
    event_interval_s: float | None = Field(
        default=None, gt=0, description="seconds between two items on the real line, if known"
    )
    data: dict[str, DataFile] = Field(default_factory=dict)
    phases: list[Phase] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_phase_names(self) -> Self:
        names = [phase.name for phase in self.phases]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"phase names must be unique, repeated: {duplicates}")
        return self

    @property
    def count(self) -> int:
        """The number of items of the whole scenario."""
        return sum(phase.count for phase in self.phases)
