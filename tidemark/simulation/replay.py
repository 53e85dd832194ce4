"""A CSV in a project's shape, replayed as rows: checked whole first, keys made if it has none.

The file is checked by :mod:`tidemark.project.tables` before any row is handed out, so a
replay never sends half a file. A CSV without the project's key gets keys derived from the
file's content, the seed and the row's position: the same file and seed replay the same keys
(the store deduplicates them), another seed sends the rows as new items. ``order_by`` replays
the rows in the order of one of the file's columns (the project's times are compared as times),
ties and gaps keeping the file's order.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from tidemark.project.contracts import Contracts
from tidemark.project.spec import ProjectError
from tidemark.project.tables import read_table
from tidemark.simulation.generate import KEY_NAMESPACE, Row

# The phase of every replayed row.
CSV_PHASE = "csv"


def csv_rows(contracts: Contracts, path: Path, seed: int, order_by: str | None = None) -> list[Row]:
    """The rows of a CSV in the project's shape; ``ProjectError`` naming what is wrong."""
    import pandas as pd

    project = contracts.project
    frame = read_table(contracts, path)
    if order_by is not None:
        column = _column(path, order_by)
        if order_by in (project.times.input, project.times.truth):
            column = pd.to_datetime(column, utc=True, format="ISO8601", errors="coerce")
        order = column.sort_values(kind="stable", na_position="last").index
        frame = frame.loc[order].reset_index(drop=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    names = [f.name for f in project.features if f.name in frame.columns]
    rows = []
    for index, record in enumerate(frame.to_dict("records")):
        key = record.get(project.key)
        features = {name: _plain(record[name]) for name in names}
        rows.append(
            Row(
                phase=CSV_PHASE,
                key=str(key)
                if key is not None
                else str(uuid.uuid5(KEY_NAMESPACE, f"csv:{digest}:{seed}:{index}")),
                features={k: v for k, v in features.items() if v is not None},
                target=_plain(record[project.target.name]),
            )
        )
    return rows


def _column(path: Path, name: str) -> Any:
    import pandas as pd

    header = pd.read_csv(path, nrows=0).columns
    if name not in header:
        raise ProjectError(f"--order-by {name}: {path} has no such column (it has {list(header)})")
    return pd.read_csv(path, usecols=[name], keep_default_na=False, na_values=[""])[name]


def _plain(value: Any) -> Any:
    """A table's cell as a message carries it: NaN is absent, numpy numbers are Python's."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value
