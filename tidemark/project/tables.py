"""A CSV in a project's shape: checked whole before anything is sent or trained on.

The columns must be the project's features and target (optional features may be missing),
and may add its key and its two times; any other column, or a missing one, refuses the file
with both lists. Every row is validated by the project's own contracts, so a row the stream
would dead-letter is refused here with its line number and the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from tidemark.project.contracts import Contracts
from tidemark.project.spec import ProjectError, describe_errors

_MAX_REPORTED_ROWS = 20
# Placeholders for the fields a CSV need not carry: the replay writes them.
_PLACEHOLDER_KEY = "row"
_PLACEHOLDER_TIME = "2000-01-01T00:00:00Z"


def expected_columns(contracts: Contracts) -> tuple[set[str], set[str]]:
    """The columns a CSV must have, and those it may have besides."""
    project = contracts.project
    required = {f.name for f in project.features if f.required} | {project.target.name}
    optional = {f.name for f in project.features if not f.required}
    optional |= {project.key, project.times.input, project.times.truth}
    return required, optional


def check_columns(contracts: Contracts, columns: Sequence[str], source: str) -> None:
    """Refuse a table whose columns are not the project's, naming the missing and unknown."""
    required, optional = expected_columns(contracts)
    missing = sorted(required - set(columns))
    unknown = sorted(set(columns) - required - optional)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"lacks the columns {missing}")
        if unknown:
            parts.append(
                f"has columns the project {contracts.project.name} does not declare {unknown}"
            )
        raise ProjectError(f"{source} " + " and ".join(parts))


def read_table(contracts: Contracts, path: Path) -> pd.DataFrame:
    """The rows of a CSV in the project's shape, each valid for the stream; else ProjectError.

    The frame has the features and the target in the project's spelling, and the key when
    the CSV carries one; rows keep the file's order. A row without a target is kept with NaN
    there: a replay sends no truth for it (a truth that never comes), training skips it.
    """
    try:
        frame = pd.read_csv(path, na_values=["", "NA", "NaN", "nan", "null"], keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ProjectError(f"{path}: cannot be read as CSV ({error})") from None
    return checked_frame(contracts, frame, str(path))


def checked_frame(contracts: Contracts, frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """``frame`` checked as :func:`read_table` checks a CSV (line numbers count the header)."""
    check_columns(contracts, [str(c) for c in frame.columns], source)
    if frame.empty:
        raise ProjectError(f"{source} has no rows")
    project = contracts.project
    names = [f.name for f in project.features if f.name in frame.columns]
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    has_key = project.key in frame.columns
    categories = {f.name for f in project.categories}
    for line, record in enumerate(frame.to_dict("records"), start=2):
        values = {name: _plain(record.get(name), name in categories) for name in names}
        target = _plain(record.get(project.target.name), False)
        key = str(record[project.key]) if has_key else _PLACEHOLDER_KEY
        try:
            item = contracts.input.model_validate(
                {project.key: key, **_present(values), project.times.input: _PLACEHOLDER_TIME}
            )
            truth = None
            if target is not None:
                truth = contracts.truth.model_validate(
                    {
                        project.key: key,
                        **{n: values.get(n) for n in project.truth_fields},
                        project.target.name: target,
                        project.times.truth: _PLACEHOLDER_TIME,
                    }
                )
        except ValidationError as error:
            problems.append(f"line {line}: {describe_errors(error)}")
            continue
        row = {name: item.__dict__[name] for name in names}
        row[project.target.name] = (
            truth.__dict__[project.target.name] if truth is not None else float("nan")
        )
        if has_key:
            row[project.key] = key
        rows.append(row)
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED_ROWS])
        more = len(problems) - _MAX_REPORTED_ROWS
        tail = f"\n  … and {more} more" if more > 0 else ""
        raise ProjectError(f"{source} has {len(problems)} bad rows:\n  {shown}{tail}")
    columns = [*([project.key] if has_key else []), *names, project.target.name]
    return pd.DataFrame(rows, columns=columns)


def _plain(value: Any, category: bool) -> Any:
    """A cell as JSON would carry it: NaN is absent, a category is text (``4`` is ``"4"``)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if category and not isinstance(value, str):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value)
    return value


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}
