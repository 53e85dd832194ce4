"""The fingerprint of a model's training data: which records, whatever their order."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from tidemark.modelling.frames import DataError, check_frame
from tidemark.project.spec import Project

_VERSION = "tidemark-fingerprint-v1"
# Units of a record's line; no category value or number is spelled with it.
_SEPARATOR = "\x1f"


def data_fingerprint(project: Project, df: pd.DataFrame) -> str:
    """A sha256 hex digest of the features and the target of ``df``.

    It identifies the multiset of records: it ignores row order, the index and other columns
    (keys, times), and counts duplicates, so the same records read back from the store in any
    order give the same fingerprint. Numbers are hashed as float64 values (their shortest
    round-trip spelling), categories as text, an absent value as an empty field.
    """
    check_frame(project, df, target=True, min_rows=0, error=DataError, values=False)
    names = [*(f.name for f in project.features), project.target.name]
    numbers = {f.name for f in project.numbers} | {project.target.name}
    cells = [_spelled(df, name, name in numbers) for name in names]
    lines = sorted(_SEPARATOR.join(row) for row in zip(*cells, strict=True))
    digest = hashlib.sha256()
    for line in [_VERSION, _SEPARATOR.join(names), *lines]:
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _spelled(df: pd.DataFrame, name: str, number: bool) -> list[str]:
    if name not in df.columns:
        return [""] * len(df)
    column = df[name]
    absent = column.isna().tolist()
    if number:
        # repr of a Python float is its shortest round-trip form, the same on every platform.
        values = pd.to_numeric(column).to_numpy(np.float64).tolist()
        return ["" if gone else repr(value) for value, gone in zip(values, absent, strict=True)]
    return ["" if gone else str(value) for value, gone in zip(column.tolist(), absent, strict=True)]
