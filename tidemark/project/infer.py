"""A first project file from a CSV: types, bounds with a margin, a guessed segment, no units.

``tidemark init NAME --csv FILE --target COLUMN`` writes what it can tell from the data and
leaves the rest to the user, with a comment on every guess: units (a CSV does not say them),
whether the segment is the right column, whether a bound is physical or only what this sample
held. The file it writes loads as it is (a test holds it to that).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tidemark.project.spec import FIELD_NAME, PROJECT_NAME, ProjectError

# A column with at most this many distinct values, all text, is a category; a segment also
# needs at least two values and every value seen often enough to judge on its own.
MAX_CATEGORY_LEVELS = 50
MAX_SEGMENT_LEVELS = 20
MIN_SEGMENT_ROWS = 5
# Bounds reach this share of the observed range beyond it, so that the next batch of real data
# is not refused for being a little larger than this sample.
BOUND_MARGIN = 0.5
KEY_NAMES = ("id", "key", "uuid")


@dataclass(frozen=True, slots=True)
class Column:
    """What the data say of one column."""

    name: str
    kind: str  # "number" or "category"
    missing: int
    low: float = math.nan
    high: float = math.nan
    levels: tuple[str, ...] = ()


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV as text and numbers, empty cells and ``NA`` as missing."""
    try:
        return pd.read_csv(path, na_values=["", "NA", "NaN", "nan", "null", "."])
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ProjectError(f"{path}: cannot be read as CSV ({error})") from None


def describe_column(name: str, values: pd.Series) -> Column:
    """The type, missing count, range or levels of a column."""
    present = values.dropna()
    missing = int(values.isna().sum())
    if pd.api.types.is_bool_dtype(values):
        present = present.astype(str).str.lower()
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(values):
        return Column(name, "number", missing, float(present.min()), float(present.max()))
    levels = tuple(sorted(str(v).strip() for v in present.unique()))
    return Column(name, "category", missing, levels=levels)


def infer_project(
    name: str, frame: pd.DataFrame, target: str, source: str = "the CSV"
) -> tuple[str, list[str]]:
    """A project file's text for ``frame``, and the notes of what was guessed."""
    if not re.match(PROJECT_NAME, name):
        raise ProjectError(f"name: {name!r} must be lower-case letters, digits and '-'")
    if frame.empty:
        raise ProjectError(f"{source} has no rows")
    bad = [c for c in frame.columns if not re.match(FIELD_NAME, str(c))]
    if bad:
        raise ProjectError(
            f"{source}: columns {bad} are not field names (letters, digits and _, not starting "
            "with a digit); rename them in the CSV first"
        )
    if target not in frame.columns:
        raise ProjectError(f"--target {target} is not a column of {source} ({list(frame.columns)})")
    columns = {c: describe_column(c, frame[c]) for c in frame.columns}
    notes: list[str] = []
    if columns[target].kind != "number":
        raise ProjectError(f"--target {target} is not a number in {source}: Tidemark regresses")
    if columns[target].missing:
        notes.append(
            f"{columns[target].missing} rows of {source} have no {target}: a replay sends no "
            "truth for them, training skips them"
        )
    key = _key_column(frame, columns, target)
    if key is None:
        key_name = "item_id"
        notes.append(f"no column identifies a row: the key is {key_name}, made by the replay")
    else:
        key_name = key
        notes.append(f"key: {key} (every value is distinct)")
    features = [c for c in columns.values() if c.name not in {target, key}]
    unusable = [
        c.name for c in features if c.kind == "category" and len(c.levels) > MAX_CATEGORY_LEVELS
    ]
    if unusable:
        raise ProjectError(
            f"{source}: columns {unusable} hold text with more than {MAX_CATEGORY_LEVELS} "
            "distinct values: not a category the model can use; drop them from the CSV"
        )
    if not features:
        raise ProjectError(f"{source} has no column to predict {target} from")
    segment = _segment(frame, features)
    if segment is None:
        notes.append("no column looks like a segment: the loop judges the stream as a whole")
    else:
        notes.append(f"segment: {segment} (a guess: the first category with 2-20 common values)")
    scales = None
    if not columns[target].low > 0:
        scales = _absolute_scales(frame[target].dropna(), columns[target])
        notes.append(
            f"{target} is not always positive: the loop judges its absolute error, with the "
            f"error threshold ({scales[0]}) and the shadow's error cap ({scales[1]}) guessed "
            "from its spread; set both in its unit"
        )
    text = _render(name, key_name, features, segment, columns[target], source, scales)
    return text, notes


def _absolute_scales(values: pd.Series, target: Column) -> tuple[str, str]:
    """A guess of the error threshold and the shadow's error cap of a target judged by its
    absolute error: half its standard deviation (a model whose typical error is that large
    explains little of it) and its whole observed range."""
    spread = float(values.std()) if len(values) > 1 else 0.0
    span = target.high - target.low
    threshold = 0.5 * spread if spread > 0 else 0.1 * (abs(target.high) or 1.0)
    return _outward(threshold, up=True), _outward(span if span > 0 else 10 * threshold, up=True)


def _key_column(frame: pd.DataFrame, columns: dict[str, Column], target: str) -> str | None:
    for name, column in columns.items():
        lowered = name.lower()
        looks_like_key = lowered in KEY_NAMES or lowered.endswith(("_id", "_key"))
        if name != target and looks_like_key and not column.missing and frame[name].is_unique:
            return name
    return None


def _segment(frame: pd.DataFrame, features: list[Column]) -> str | None:
    for column in features:
        if column.kind != "category" or column.missing:
            continue
        counts = frame[column.name].astype(str).str.strip().value_counts()
        if 2 <= len(counts) <= MAX_SEGMENT_LEVELS and counts.min() >= MIN_SEGMENT_ROWS:
            return column.name
    return None


def _number(value: float) -> str:
    """A bound written with at most three significant figures, rounded outward by the caller."""
    if value == 0:
        return "0"
    rounded = float(f"{value:.3g}")
    return repr(int(rounded)) if rounded.is_integer() else repr(rounded)


def _bounds(column: Column) -> list[str]:
    spread = column.high - column.low
    margin = BOUND_MARGIN * (spread if spread > 0 else abs(column.high) or 1.0)
    high = _outward(column.high + margin, up=True)
    if column.low > 0:
        # Every value seen is positive: the bound is zero itself, which also lets the default
        # model work in log space.
        return ["min = 0", "exclusive_min = true", f"max = {high}"]
    return [f"min = {_outward(column.low - margin, up=False)}", f"max = {high}"]


def _outward(value: float, up: bool) -> str:
    magnitude = 10 ** (math.floor(math.log10(abs(value))) - 1) if value else 1.0
    step = math.ceil if up else math.floor
    return _number(step(value / magnitude) * magnitude)


def _render(
    name: str,
    key: str,
    features: list[Column],
    segment: str | None,
    target: Column,
    source: str,
    absolute_scales: tuple[str, str] | None,
) -> str:
    lines = [
        f"# A project written by `tidemark init` from {source}: check every guess, then add units.",
        f'name = "{name}"',
        f'key = "{key}"',
    ]
    if segment is not None:
        lines += [
            "# The category the loop monitors, judges and pools the model by (a guess).",
            f'segment = "{segment}"',
        ]
    lines += [
        "",
        "# The input's and the truth's event times: `tidemark simulate` writes them on replay.",
        "[times]",
        'input = "seen_at"',
        'truth = "truth_at"',
    ]
    for column in features:
        lines += ["", "[[features]]", f'name = "{column.name}"', f'type = "{column.kind}"']
        if column.kind == "number":
            lines.append(f"# unit = ...  (seen from {column.low:g} to {column.high:g})")
            lines += _bounds(column)
        else:
            shown = ", ".join(column.levels[:8]) + (" …" if len(column.levels) > 8 else "")
            lines.append(f"# {len(column.levels)} values seen: {shown}")
        if column.missing:
            lines.append(f"# {column.missing} rows lack it")
            lines.append("required = false")
    lines += [
        "",
        "[target]",
        f'name = "{target.name}"',
        f"# unit = ...  (seen from {target.low:g} to {target.high:g})",
        *_bounds(target),
    ]
    if absolute_scales is not None:
        threshold, cap = absolute_scales
        lines += [
            "",
            f"# {target.name} may be zero or negative: the loop judges its absolute error, in its",
            "# unit. The mean absolute error above which the model is retrained (a guess: half",
            "# the target's standard deviation in the CSV).",
            "[loop.monitor]",
            f"error_threshold = {threshold}",
            "",
            "# A shadow's per-item errors are capped here before the challenger is compared",
            "# (a guess: the target's range in the CSV).",
            "[loop.shadow]",
            f"error_cap = {cap}",
        ]
    return "\n".join(lines) + "\n"
