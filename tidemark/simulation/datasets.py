"""The real data sets a scenario resamples: a CSV beside it or inside an installed package.

A data set is read with the ``csv`` module (no pandas: the simulator stays light) and checked
row by row with the project's own contracts, so every value it lends a scenario is one the
stream accepts. It may hold more columns than the project (they are ignored) and rows with
gaps: a row without the target or a required feature is skipped, as a data set's incomplete
records are; an optional feature may be empty (the item then lacks it). A value the project
refuses (out of bounds, a category it does not allow) refuses the whole data set, by line.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from tidemark.project.contracts import Contracts
from tidemark.project.spec import FeatureType, describe_errors
from tidemark.simulation.spec import DataFile, FloatArray

NA_CELLS = frozenset({"", "NA", "NaN", "nan", "null"})
_MAX_REPORTED_ROWS = 20
# Placeholders for the fields a data set need not carry: the simulator writes them.
_PLACEHOLDER_KEY = "row"
_PLACEHOLDER_TIME = "2000-01-01T00:00:00Z"


class DataSetError(ValueError):
    """A data set that cannot be read or does not fit the project; names the line or column."""


@dataclass(frozen=True, eq=False)
class DataSet:
    """The usable rows of a data set, column by column, in the project's spelling."""

    source: str
    # Each numeric feature (NaN where an optional one is absent) and the target.
    numbers: dict[str, FloatArray]
    categories: dict[str, npt.NDArray[np.object_]]
    target: FloatArray
    # The rows of each value of the project's segment (one entry, None, without a segment).
    segments: dict[str | None, npt.NDArray[np.int64]]
    skipped: int

    def rows(self, segment: str | None) -> npt.NDArray[np.int64]:
        """The indices of the rows of ``segment`` (every row for None); empty if none."""
        if None in self.segments:
            return self.segments[None]
        return self.segments.get(segment, np.empty(0, dtype=np.int64))


def locate(data: DataFile, folder: Path | None) -> tuple[str, str]:
    """The text of a data set and where it came from.

    A package's file is found by importlib's resource reader, without running the package's
    code: its modules (and whatever they import) stay unloaded.
    """
    if data.file is not None:
        path = (folder or Path.cwd()) / data.file
        try:
            return path.read_text(encoding="utf-8-sig"), str(path)
        except OSError as error:
            raise DataSetError(f"cannot read {path}: {error.strerror}") from None
    package, inner = data.package, data.path
    assert package is not None
    assert inner is not None  # DataFile asks for both
    source = f"{package}:{inner}"
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    # importlib.resources' own reader of the package's files, got without importing it.
    get_reader = getattr(spec.loader, "get_resource_reader", None) if spec else None
    reader = get_reader(package) if get_reader is not None else None
    if reader is None:
        raise DataSetError(f"{source}: no installed package {package} with files")
    try:
        return reader.files().joinpath(inner).read_text(encoding="utf-8-sig"), source
    except OSError as error:
        raise DataSetError(f"{source}: cannot be read ({error.strerror})") from None


def read_data_set(contracts: Contracts, text: str, source: str) -> DataSet:
    """The rows of a CSV's text that fit the project (see the module docstring)."""
    project = contracts.project
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = set(reader.fieldnames or [])
    required = [f.name for f in project.features if f.required] + [project.target.name]
    missing = [name for name in required if name not in columns]
    if missing:
        raise DataSetError(f"{source} lacks the columns {missing}")
    names = [f.name for f in project.features if f.name in columns]
    numbers = {f.name for f in project.numbers}
    kept: list[dict[str, Any]] = []
    problems: list[str] = []
    skipped = 0
    for record in reader:
        cells = {name: _cell(record.get(name)) for name in [*names, project.target.name]}
        if any(cells[name] is None for name in required):
            skipped += 1
            continue
        try:
            kept.append(_checked(contracts, cells, numbers))
        except (ValueError, ValidationError) as error:
            reason = describe_errors(error) if isinstance(error, ValidationError) else error
            problems.append(f"line {reader.line_num}: {reason}")
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED_ROWS])
        more = len(problems) - _MAX_REPORTED_ROWS
        tail = f"\n  … and {more} more" if more > 0 else ""
        raise DataSetError(f"{source} has {len(problems)} bad rows:\n  {shown}{tail}")
    if not kept:
        raise DataSetError(f"{source} has no complete rows")
    return _columns(contracts, kept, source, skipped)


def _cell(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return None if value in NA_CELLS else value


def _checked(
    contracts: Contracts, cells: dict[str, str | None], numbers: set[str]
) -> dict[str, Any]:
    project = contracts.project
    values: dict[str, Any] = {}
    for name, cell in cells.items():
        if cell is None:
            continue
        if name in numbers or name == project.target.name:
            try:
                values[name] = float(cell)
            except ValueError:
                raise ValueError(f"{name}: not a number ({cell!r})") from None
        else:
            values[name] = cell
    target = values.pop(project.target.name)
    item = contracts.input.model_validate(
        {project.key: _PLACEHOLDER_KEY, **values, project.times.input: _PLACEHOLDER_TIME}
    )
    truth = contracts.truth.model_validate(
        {
            project.key: _PLACEHOLDER_KEY,
            **{name: values.get(name) for name in project.truth_fields},
            project.target.name: target,
            project.times.truth: _PLACEHOLDER_TIME,
        }
    )
    row = {f.name: item.__dict__[f.name] for f in project.features}
    row[project.target.name] = truth.__dict__[project.target.name]
    return row


def _columns(
    contracts: Contracts, rows: list[dict[str, Any]], source: str, skipped: int
) -> DataSet:
    project = contracts.project
    numbers = {
        f.name: np.array([np.nan if r[f.name] is None else r[f.name] for r in rows])
        for f in project.features
        if f.type is FeatureType.NUMBER
    }
    categories = {
        f.name: np.array([r[f.name] for r in rows], dtype=object)
        for f in project.features
        if f.type is FeatureType.CATEGORY
    }
    target = np.array([r[project.target.name] for r in rows])
    segments: dict[str | None, npt.NDArray[np.int64]]
    if project.segment is None:
        segments = {None: np.arange(len(rows), dtype=np.int64)}
    else:
        labels = categories[project.segment]
        segments = {
            str(label): np.flatnonzero(labels == label).astype(np.int64)
            for label in dict.fromkeys(labels.tolist())
        }
    return DataSet(source, numbers, categories, target, segments, skipped)
