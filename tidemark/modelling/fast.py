"""A default model's fast form: the pipeline's answers without the pipeline's cost.

A scikit-learn Pipeline costs milliseconds per call whatever the batch size (pandas, nested
ColumnTransformers, validation), which dominates a one-item request and a scorer's small
batches. A default model (:mod:`tidemark.modelling.default`) is linear in its link (the log of
a positive target, the target itself otherwise)::

    g(y) = offset[segment] + Σ_f slope_f[segment]·t_f(x_f) + Σ_c level_c[x_c]

with ``t_f`` the log of a positive numeric feature and the value otherwise, an absent optional
number adding ``missing_f[segment]`` (its slope times its imputed median) and an absent
optional category the offset of its imputed level. A segment the model never saw has the
shared law, an unknown level of a category adds nothing. So the whole model is a handful of
numbers per segment and per level, which :meth:`FastForm.derive` reads from the pipeline's
own predictions (at ``t = 0`` and ``t = 1`` for each feature, without it, and at each level)
and then checks against the pipeline on a grid of segments, feature values and levels. A
model that does not match is served through its pipeline instead, so the fast form can never
change an answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tidemark.modelling.default import encoded_levels, known_segments, logged
from tidemark.modelling.frames import DataError, frame_of, model_input
from tidemark.modelling.predictions import Predictions, no_usable_value, unusable
from tidemark.project.spec import Feature, Project

# Agreement demanded on every probe of the grid; float64 round-off is about 1e-15.
TOLERANCE = 1e-9
# Rows per segment in the grid that checks a derived form (at least one per value and level).
_GRID_ROWS = 16
_LADDER_STEPS = 6

Value = float | str | None


class Columns(Protocol):
    """Columns by feature name: a DataFrame, or a dict of lists or arrays."""

    def __getitem__(self, name: str, /) -> Any: ...

    def __contains__(self, name: object, /) -> bool: ...


@dataclass(frozen=True, slots=True)
class Law:
    """One segment's law (or the shared one) in the link's space.

    ``slopes`` and ``missing`` follow the project's numeric features; ``missing`` is what an
    absent value adds (NaN for a required feature: its absence gives no answer).
    """

    offset: float
    slopes: tuple[float, ...]
    missing: tuple[float, ...]


class FastForm:
    """A default model as numbers: a law per known segment, the shared law, level offsets."""

    def __init__(
        self,
        project: Project,
        laws: Mapping[str, Law],
        shared: Law,
        levels: Mapping[str, Mapping[str | None, float]],
    ) -> None:
        self.project = project
        self.laws = dict(laws)
        self.shared = shared
        # An absent category's offset is stored under None.
        self.levels = {name: dict(offsets) for name, offsets in levels.items()}
        numbers = project.numbers
        self._segment = project.segment
        self._log_target = project.target.positive
        self._numbers = tuple(f.name for f in numbers)
        self._logged = tuple(logged(f) for f in numbers)
        # The one-item path reads these: plain tuples, no attribute lookups in the loop.
        self._terms = {
            name: self._terms_of(law) for name, law in [*self.laws.items(), (None, shared)]
        }
        self._level_items = tuple(self.levels.items())
        # The batch path reads these: one row per law, the shared law last.
        ordered = [*self.laws.values(), shared]
        self._index = {name: i for i, name in enumerate(self.laws)}
        self._shared_index = len(self.laws)
        self._offsets = np.array([law.offset for law in ordered], np.float64)
        shape = (len(ordered), len(numbers))
        self._slopes = np.array([law.slopes for law in ordered], np.float64).reshape(shape)
        self._missing = np.array([law.missing for law in ordered], np.float64).reshape(shape)

    def _terms_of(self, law: Law) -> tuple[float, tuple[tuple[str, bool, float, float], ...]]:
        terms = zip(self._numbers, self._logged, law.slopes, law.missing, strict=True)
        return law.offset, tuple(terms)

    @property
    def segments(self) -> frozenset[str]:
        """The segments with a law of their own."""
        return frozenset(self.laws)

    @classmethod
    def derive(cls, project: Project, model: Any) -> FastForm | None:
        """The fast form of a fitted model of ``project``, or None when the model is not a
        default model or does not match the form on the grid."""
        segments = known_segments(project, model)
        if segments is None:
            return None
        levels: dict[str, frozenset[str]] = {}
        for category in _other_categories(project):
            found = encoded_levels(model, category.name)
            if found is None:
                return None
            levels[category.name] = found
        unseen = _absent_from(segments, "unseen")
        named = [*sorted(segments), unseen] if project.segment else [unseen]
        probes = _Probes(project, levels)
        for segment in named:
            probes.law(segment)
        for category in _other_categories(project):
            probes.levels(category, unseen)
        links = _link(project, _pipeline_values(project, model, probes.rows))
        if links is None:
            return None
        laws = {segment: probes.read_law(segment, links) for segment in named}
        shared = laws.pop(unseen)
        offsets = {c.name: probes.read_levels(c, unseen, links) for c in _other_categories(project)}
        candidate = cls(project, laws if project.segment else {}, shared, offsets)
        return candidate if candidate._matches(model, named, levels) else None

    def predict_one(self, fields: Mapping[str, Any]) -> tuple[float, bool]:
        """One item's prediction and whether its segment is known, from plain values.

        ``fields`` are the item's values by feature name (an :class:`Item`'s ``fields``, an
        API request's dict); an absent optional feature is missing or None. The single-item
        request is the common case, and numpy's per-call overhead on one-element arrays is
        larger than the arithmetic. The caller judges the value (``predictions.usable``): NaN
        when a required feature is absent or a log is taken of a value not above zero,
        infinity past float64's range.
        """
        if self._segment is None:
            known = True
            offset, terms = self._terms[None]
        else:
            law = self._terms.get(fields.get(self._segment))
            known = law is not None
            offset, terms = law if law is not None else self._terms[None]
        link = offset
        try:
            for name, is_logged, slope, missing in terms:
                value = fields.get(name)
                if value is None:
                    link += missing
                else:
                    link += slope * (math.log(value) if is_logged else value)
            for name, offsets in self._level_items:
                link += offsets.get(fields.get(name), 0.0)
            return (math.exp(link) if self._log_target else link), known
        except ValueError:
            return math.nan, known
        except OverflowError:
            return math.inf, known

    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> Predictions:
        """:meth:`predict` of records given one by one (items' fields, API requests)."""
        names = [f.name for f in self.project.features]
        columns = {name: [row.get(name) for row in rows] for name in names}
        return self._predict(columns, len(rows))

    def predict(self, columns: Columns) -> Predictions:
        """Predictions and known segments for a batch, vectorised; the same contract as
        :func:`tidemark.modelling.training.predict` (``DataError`` for unusable answers).

        ``columns`` holds each feature by name (a DataFrame, or a dict of lists or arrays); an
        optional feature may be left out or hold None or NaN where absent.
        """
        present = [f.name for f in self.project.features if f.name in columns]
        if not present:
            raise DataError("the batch has none of the project's features")
        return self._predict(columns, len(columns[present[0]]))

    def _predict(self, columns: Columns, count: int) -> Predictions:
        if self._segment is None:
            rows = np.full(count, self._shared_index, np.intp)
        else:
            index, shared = self._index, self._shared_index
            segments = _plain(columns[self._segment])
            rows = np.fromiter((index.get(s, shared) for s in segments), np.intp, count)
        link = self._offsets[rows]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for j, name in enumerate(self._numbers):
                if name in columns:
                    values = np.asarray(columns[name], dtype=np.float64)
                else:
                    values = np.full(count, np.nan)
                transformed = np.log(values) if self._logged[j] else values
                link = link + np.where(
                    np.isnan(values), self._missing[rows, j], self._slopes[rows, j] * transformed
                )
            for name, offsets in self._level_items:
                if name in columns:
                    link = link + np.fromiter(
                        (offsets.get(_level(v), 0.0) for v in _plain(columns[name])),
                        np.float64,
                        count,
                    )
                else:
                    link = link + offsets.get(None, 0.0)
            values = np.exp(link) if self._log_target else link
        bad = unusable(self.project, values)
        if bad.any():
            raise DataError(no_usable_value(self.project, str(np.flatnonzero(bad).tolist())))
        known = rows != self._shared_index if self._segment else np.ones(count, np.bool_)
        return Predictions(np.asarray(values, np.float64), known)

    def _matches(
        self, model: Any, segments: list[str], levels: Mapping[str, frozenset[str]]
    ) -> bool:
        grid = _grid(self.project, segments, levels)
        expected = _pipeline_values(self.project, model, grid)
        try:
            batch = self.predict_rows(grid).values
        except DataError:
            return False
        one_by_one = np.array([self.predict_one(row)[0] for row in grid], np.float64)
        scale = 0.0 if self._log_target else TOLERANCE * max(1.0, float(np.max(np.abs(expected))))
        return bool(
            np.allclose(batch, expected, rtol=TOLERANCE, atol=scale)
            and np.allclose(one_by_one, expected, rtol=TOLERANCE, atol=scale)
        )


class _Probes:
    """The rows that read a form off a pipeline, and where each one's answer sits."""

    def __init__(self, project: Project, levels: Mapping[str, frozenset[str]]) -> None:
        self.project = project
        self.rows: list[dict[str, Value]] = []
        self._known = levels
        self._at: dict[tuple[str | None, ...], int] = {}
        # The reference: every number at t = 0, every category at a level the model never saw.
        self._reference: dict[str, Value] = {f.name: _zero(f) for f in project.numbers}
        for name, known in levels.items():
            self._reference[name] = _absent_from(known, "unseen")

    def _add(self, key: tuple[str | None, ...], segment: str, **changes: Value) -> None:
        row = dict(self._reference)
        if self.project.segment is not None:
            row[self.project.segment] = segment
        row.update(changes)
        self._at[key] = len(self.rows)
        self.rows.append(row)

    def law(self, segment: str) -> None:
        self._add(("base", segment), segment)
        for feature in self.project.numbers:
            self._add(("unit", segment, feature.name), segment, **{feature.name: _one(feature)})
            if not feature.required:
                self._add(("absent", segment, feature.name), segment, **{feature.name: None})

    def levels(self, category: Feature, segment: str) -> None:
        for level in self._levels_of(category):
            self._add(("level", category.name, level), segment, **{category.name: level})

    def read_law(self, segment: str, links: npt.NDArray[np.float64]) -> Law:
        base = float(links[self._at["base", segment]])
        slopes, missing = [], []
        for feature in self.project.numbers:
            slopes.append(float(links[self._at["unit", segment, feature.name]]) - base)
            at = self._at.get(("absent", segment, feature.name))
            missing.append(math.nan if at is None else float(links[at]) - base)
        return Law(offset=base, slopes=tuple(slopes), missing=tuple(missing))

    def read_levels(
        self, category: Feature, segment: str, links: npt.NDArray[np.float64]
    ) -> dict[str | None, float]:
        base = float(links[self._at["base", segment]])
        return {
            level: float(links[self._at["level", category.name, level]]) - base
            for level in self._levels_of(category)
        }

    def _levels_of(self, category: Feature) -> list[str | None]:
        # The reference holds a level the model never saw: each known one is read against it.
        known: list[str | None] = [*sorted(self._known[category.name])]
        return [*known, *([None] if not category.required else [])]


def _grid(
    project: Project, segments: list[str], levels: Mapping[str, frozenset[str]]
) -> list[dict[str, Value]]:
    """Rows covering every segment with every ladder value and level, in shuffled pairings."""
    rng = np.random.default_rng(0)
    choices: dict[str, list[Value]] = {f.name: _ladder(f) for f in project.numbers}
    for category in _other_categories(project):
        known: list[Value] = [*sorted(levels[category.name])]
        unseen: list[Value] = [_absent_from(levels[category.name], "unseen")]
        choices[category.name] = known + unseen + ([None] if not category.required else [])
    count = max([_GRID_ROWS, *(len(values) for values in choices.values())])
    rows: list[dict[str, Value]] = []
    for segment in segments:
        picks = {
            name: np.resize(rng.permutation(len(values)), count) for name, values in choices.items()
        }
        for i in range(count):
            row: dict[str, Value] = {name: choices[name][picks[name][i]] for name in choices}
            if project.segment is not None:
                row[project.segment] = segment
            rows.append(row)
    return rows


def _ladder(feature: Feature) -> list[Value]:
    """Values of a numeric feature to check on: its range and the probes' points."""
    if logged(feature):
        low = feature.min if feature.min else None
        high = feature.max
        low = low if low is not None else (high / 1e3 if high else 1e-2)
        high = high if high is not None else low * 1e5
        values = [*np.geomspace(low, high, _LADDER_STEPS).tolist(), 1.0, math.e]
    else:
        low = feature.min if feature.min is not None else -100.0
        high = feature.max if feature.max is not None else low + 200.0
        if feature.min is None and feature.max is not None:
            low = high - 200.0
        values = [*np.linspace(low, high, _LADDER_STEPS).tolist(), 0.0, 1.0]
    return [*values, *([None] if not feature.required else [])]


def _zero(feature: Feature) -> float:
    """The value at which a feature's transformed value is 0."""
    return 1.0 if logged(feature) else 0.0


def _one(feature: Feature) -> float:
    """The value at which a feature's transformed value is 1."""
    return math.e if logged(feature) else 1.0


def _plain(column: Any) -> Any:
    """A column as a list when it is a Series or an array: iterating those is much slower."""
    return column.tolist() if hasattr(column, "tolist") else column


def _level(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _other_categories(project: Project) -> list[Feature]:
    return [c for c in project.categories if c.name != project.segment]


def _absent_from(known: frozenset[str], name: str) -> str:
    while name in known:
        name += "-x"
    return name


def _link(project: Project, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
    """The link of the pipeline's answers, or None when one has none (not a finite number,
    or not above zero for a logged target)."""
    if not np.isfinite(values).all():
        return None
    if not project.target.positive:
        return values
    if not (values > 0).all():
        return None
    return np.asarray(np.log(values), np.float64)


def _pipeline_values(
    project: Project, model: Any, rows: list[dict[str, Value]]
) -> npt.NDArray[np.float64]:
    frame = model_input(project, frame_of(project, rows))
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        return np.asarray(model.predict(frame), dtype=np.float64).reshape(len(rows))
