"""What the judging reads of a scored record: its segment and the error its project judges.

A project without a segment is one implicit segment, :data:`WHOLE`: its items are monitored,
held out and judged as one group, under that name. The error judged is the project's
(``project.target.judged_by``): the relative error for a positive target, else the absolute
one, the same rule as ``tidemark.project.contracts.Contracts.error``, here on the error kind
alone so that pure logic needs no contracts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tidemark.modelling.metrics import Metrics
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind

# The one segment of a project without a segment (a Prefect tag, a metric label and a tag name
# accept it).
WHOLE = "*"


def segment_of(record: Scored) -> str:
    """The record's segment; :data:`WHOLE` for a project without one."""
    segment = record.segment
    return WHOLE if segment is None else segment


def error_of(record: Scored, kind: ErrorKind) -> float:
    """The error of production's prediction that the loop judges."""
    if kind is ErrorKind.RELATIVE:
        if record.rel_error is None:
            raise ValueError(f"item {record.key} has no relative error to judge")
        return record.rel_error
    return record.abs_error


def challenger_error_of(record: Scored, kind: ErrorKind) -> float | None:
    """The challenger's judged error on the record, when a challenger predicted it."""
    if kind is ErrorKind.RELATIVE:
        return record.challenger_rel_error
    return record.challenger_abs_error


def scored_metrics(records: Sequence[Scored], kind: ErrorKind) -> Metrics:
    """Production's error on a non-empty sequence of scored records: MAE and RMSE in the
    target's unit, and the mean of the error ``kind`` the project judges."""
    if not records:
        raise ValueError("no records to compute the error of")
    n = len(records)
    return Metrics(
        mae=math.fsum(r.abs_error for r in records) / n,
        rmse=math.sqrt(math.fsum(r.abs_error**2 for r in records) / n),
        judged=math.fsum(error_of(r, kind) for r in records) / n,
        n=n,
        kind=kind,
    )


def scored_by(records: Sequence[Scored], version: str) -> list[Scored]:
    """The records that model version ``version`` predicted."""
    return [r for r in records if r.prediction.model_version == version]
