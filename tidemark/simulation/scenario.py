"""A scenario bound to its project: every name, category and bound checked against it.

Binding is where a scenario file meets the project it names: each feature it draws must be one
of the project's, of the right type; each segment a value of the project's segment, in its
spelling; each draw and each target law must stay within the project's bounds at its extremes
(draws are clipped and noise is clipped at ``NOISE_CLIP_SD``, so the extremes are known); the
project's required features must all be drawn. Every problem is reported at once, each naming
its field (``phases.0.segments.rye.features.dough_g: …``), so that every record the
scenario generates is one the stream accepts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import TypeAdapter, ValidationError

from tidemark.project.contracts import Contracts, field_type
from tidemark.project.spec import Bounds, Feature, FeatureType, Project, Target, describe_errors
from tidemark.simulation.datasets import DataSet, DataSetError, locate, read_data_set
from tidemark.simulation.spec import (
    NOISE_CLIP_SD,
    Choice,
    Draw,
    FloatArray,
    Normal,
    Phase,
    PowerLaw,
    Ratio,
    ScenarioFile,
    Segment,
)

# The column of a generated table that tells each item's phase.
PHASE_COLUMN = "phase"


class ScenarioError(ValueError):
    """A scenario that cannot be read or does not fit its project; names each bad field."""


@dataclass(frozen=True)
class Scenario:
    """A scenario file checked against its project, with the data sets it resamples."""

    spec: ScenarioFile
    project: Project
    data: Mapping[str, DataSet] = field(default_factory=dict, compare=False, repr=False)
    # Where the file's data sets are found (the scenario's own folder).
    folder: Path | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The scenario's name (keys derive from it)."""
        return self.spec.name

    @property
    def description(self) -> str:
        """What the scenario plays, in a sentence."""
        return self.spec.description

    @property
    def event_interval_s(self) -> float | None:
        """Seconds between two items on the line the scenario describes, if it says."""
        return self.spec.event_interval_s

    @property
    def phases(self) -> list[Phase]:
        """The phases, in order."""
        return self.spec.phases

    @property
    def count(self) -> int:
        """The number of items of the whole scenario."""
        return self.spec.count

    def phase(self, name: str) -> Phase:
        """The phase of that name."""
        for phase in self.spec.phases:
            if phase.name == name:
                return phase
        raise ScenarioError(f"scenario {self.name!r} has no phase {name!r}")

    def with_phases(self, phases: Sequence[Phase], name: str | None = None) -> Scenario:
        """Another scenario of the same project and data: these phases, checked again.

        A new name gives the items keys of their own.
        """
        spec = ScenarioFile.model_validate(
            self.spec.model_dump() | {"name": name or self.name, "phases": list(phases)}
        )
        return bind(spec, self.project, folder=self.folder, data=self.data)


def parse_spec(text: str, source: str) -> ScenarioFile:
    """A scenario file's YAML, checked for its shape alone; errors name each bad field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScenarioError(f"scenario {source} is not valid YAML: {error}") from None
    if not isinstance(data, Mapping):
        raise ScenarioError(f"scenario {source} must be a mapping with name, project and phases")
    try:
        return ScenarioFile.model_validate(data)
    except ValidationError as error:
        problems = describe_errors(error).replace("; ", "\n  ")
        raise ScenarioError(
            f"scenario {source} is invalid ({error.error_count()} problems):\n  {problems}"
        ) from None


def bind(
    spec: ScenarioFile,
    project: Project,
    *,
    folder: Path | None = None,
    data: Mapping[str, DataSet] | None = None,
    source: str | None = None,
) -> Scenario:
    """``spec`` checked against ``project`` (see the module docstring); ``ScenarioError`` else.

    The scenario's data sets are read from ``folder`` (the scenario file's) unless ``data``
    gives them already read. The project's name is not compared with the one the file names:
    a variant of the project (its own name and topics) plays the same scenarios.
    """
    source = source or spec.name
    contracts = Contracts(project)
    problems: list[str] = []
    if data is None:
        data = _read_data(spec, contracts, folder, problems)
    names = {f.name for f in project.features} | {project.key, project.target.name}
    if PHASE_COLUMN in names:
        problems.append(
            f"project {project.name} has a field named {PHASE_COLUMN!r}, the column that "
            "tells a generated item's phase"
        )
    for index, phase in enumerate(spec.phases):
        for label, segment in phase.segments.items():
            where = f"phases.{index}.segments.{label}"
            problems += _segment_label(project, label, where)
            if segment.resample is not None:
                problems += _resampled(project, spec, data, label, segment, where)
            else:
                problems += _drawn(project, segment, where)
    if problems:
        listed = "\n  ".join(problems)
        raise ScenarioError(
            f"scenario {source} does not fit project {project.name} "
            f"({len(problems)} problems):\n  {listed}"
        )
    return Scenario(spec, project, dict(data), folder)


def _read_data(
    spec: ScenarioFile, contracts: Contracts, folder: Path | None, problems: list[str]
) -> dict[str, DataSet]:
    data = {}
    for name, file in spec.data.items():
        try:
            data[name] = read_data_set(contracts, *locate(file, folder))
        except DataSetError as error:
            problems.append(f"data.{name}: {error}")
    return data


def _segment_label(project: Project, label: str, where: str) -> list[str]:
    if project.segment is None:
        # Without a segment, the names only tell the mixed populations apart.
        return []
    feature = project.feature(project.segment)
    assert feature is not None  # the project checks its segment
    return _category_value(feature.name, field_type(feature), label, where, project.segment)


def _category_value(name: str, annotation: Any, value: str, where: str, what: str) -> list[str]:
    try:
        spelled = TypeAdapter(annotation).validate_python(value)
    except ValidationError as error:
        reason = "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())
        return [f"{where}: {value!r} is not a value of {what} ({reason})"]
    if spelled != value:
        return [f"{where}: the project {name} spells {value!r} as {spelled!r}"]
    return []


def _drawn(project: Project, segment: Segment, where: str) -> list[str]:
    problems = []
    for name, draw in segment.features.items():
        problems += _draw(project, segment, name, draw, f"{where}.features.{name}")
    drawn = set(segment.features)
    missing = [
        f.name
        for f in project.features
        if f.required and f.name != project.segment and f.name not in drawn
    ]
    if missing:
        problems.append(f"{where}.features: lacks {missing}, required by the project")
    if not problems:
        problems += _law(project, segment, f"{where}.target")
    return problems


def _draw(project: Project, segment: Segment, name: str, draw: Draw, where: str) -> list[str]:
    feature = project.feature(name)
    if feature is None:
        known = [f.name for f in project.features if f.name != project.segment]
        return [f"{where}: not a feature of project {project.name} (its features: {known})"]
    if name == project.segment:
        return [f"{where}: {name} is the segment, which the segments' names give"]
    if feature.type is FeatureType.CATEGORY:
        if not isinstance(draw, Choice):
            return [f"{where}: {name} is a category: draw it with choice"]
        problems = []
        for value in draw.choice:
            problems += _category_value(name, field_type(feature), value, f"{where}.choice", name)
        return problems
    if isinstance(draw, Choice):
        return [f"{where}: {name} is a number: draw it from a normal or a ratio"]
    if isinstance(draw, Ratio):
        base = segment.features.get(draw.ratio_of)
        if type(base) is not Normal:
            return [
                f"{where}.ratio_of: {draw.ratio_of} is not a number this segment draws from "
                "a normal"
            ]
    low, high = _range(segment, name)
    return _within(feature, low, high, where, "draws range")


def _range(segment: Segment, name: str) -> tuple[float, float]:
    """The smallest and largest value a segment's draw of a number can take."""
    draw = segment.features[name]
    assert isinstance(draw, Normal)
    if not isinstance(draw, Ratio):
        return draw.min, draw.max
    base = segment.features[draw.ratio_of]
    assert isinstance(base, Normal)
    corners = [b * r for b in (base.min, base.max) for r in (draw.min, draw.max)]
    return min(corners), max(corners)


def _law(project: Project, segment: Segment, where: str) -> list[str]:
    law = segment.target
    assert law is not None
    kind = "exponents" if isinstance(law, PowerLaw) else "coefficients"
    problems = []
    for name in law.features:
        draw = segment.features.get(name)
        if not isinstance(draw, Normal):
            problems.append(f"{where}.{kind}.{name}: not a number this segment draws")
        elif isinstance(law, PowerLaw) and _range(segment, name)[0] <= 0:
            problems.append(
                f"{where}.{kind}.{name}: a power law needs positive values, and {name} may be "
                f"{_range(segment, name)[0]:.4g}"
            )
    if problems:
        return problems
    values = dict(_corners(segment, law.features))
    size = len(next(iter(values.values()))) if values else 1
    z = np.repeat([-NOISE_CLIP_SD, NOISE_CLIP_SD], size)
    doubled = {name: np.tile(array, 2) for name, array in values.items()}
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        targets = law.sample(doubled, z)
    return _within(
        project.target, float(targets.min()), float(targets.max()), where, "targets range"
    )


def _corners(segment: Segment, names: Sequence[str]) -> Iterator[tuple[str, FloatArray]]:
    """Each feature a law reads, at every corner of the independent draws behind them.

    A law is monotone in each draw (a power law) or linear in each (a linear law, of numbers
    and their ratios): its extremes lie at these corners.
    """
    axes: dict[str, tuple[float, float]] = {}
    for name in names:
        draw = segment.features[name]
        assert isinstance(draw, Normal)
        axes[name] = (draw.min, draw.max)
        if isinstance(draw, Ratio):
            base = segment.features[draw.ratio_of]
            assert isinstance(base, Normal)
            axes[draw.ratio_of] = (base.min, base.max)
    grid = np.array(list(itertools.product(*axes.values())), dtype=np.float64).T
    columns = dict(zip(axes, grid, strict=True))
    for name in names:
        draw = segment.features[name]
        if isinstance(draw, Ratio):
            yield name, columns[draw.ratio_of] * columns[name]
        else:
            yield name, columns[name]


def _resampled(
    project: Project,
    spec: ScenarioFile,
    data: Mapping[str, DataSet],
    label: str,
    segment: Segment,
    where: str,
) -> list[str]:
    resample = segment.resample
    assert resample is not None
    if resample.data not in data:
        if resample.data in spec.data:
            return []  # unreadable: reported under data
        return [
            f"{where}.resample.data: no data set named {resample.data!r} "
            f"(the scenario's: {sorted(spec.data)})"
        ]
    table = data[resample.data]
    rows = table.rows(label)
    if not len(rows):
        return [f"{where}.resample: {table.source} has no rows of {project.segment} {label}"]
    spread = np.exp(np.array([-NOISE_CLIP_SD, NOISE_CLIP_SD]) * resample.noise_sd)
    problems = []
    columns = {**table.numbers, project.target.name: table.target}
    for name, column in columns.items():
        present = column[rows][~np.isnan(column[rows])]
        if not len(present):
            continue
        ends = np.outer([present.min(), present.max()], spread)
        subject = project.target if name == project.target.name else project.feature(name)
        assert subject is not None
        problems += _within(
            subject,
            float(ends.min()),
            float(ends.max()),
            f"{where}.resample.noise_sd",
            f"{name} with noise ranges",
        )
    return problems


def _within(subject: Feature | Target, low: float, high: float, where: str, what: str) -> list[str]:
    if subject.contains(low) and subject.contains(high):
        return []
    unit = f" {subject.unit}" if subject.unit else ""
    return [
        f"{where}: {what} over [{low:.4g}, {high:.4g}]{unit}, outside "
        f"{subject.name}'s bounds {_interval(subject)}{unit}"
    ]


def _interval(bounds: Bounds) -> str:
    opening = "(" if bounds.exclusive_min else "["
    low = "-inf" if bounds.min is None else f"{bounds.min:g}"
    high = "inf" if bounds.max is None else f"{bounds.max:g}"
    return f"{opening}{low}, {high}]"
