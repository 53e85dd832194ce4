"""What a model answers for a batch of items, and which answers the loop can use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tidemark.project.contracts import PREDICTION_LIMIT
from tidemark.project.spec import Project


@dataclass(frozen=True, slots=True)
class Predictions:
    """Predicted values of the target, and whether the model knew each item's segment.

    ``segment_known`` is True everywhere for a project without a segment.
    """

    values: npt.NDArray[np.float64]
    segment_known: npt.NDArray[np.bool_]


def unusable(project: Project, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Where a prediction cannot go out: not a finite number within the contracts' limit, or
    not above zero for a positive target (NaN fails every comparison, so it is caught too)."""
    with np.errstate(invalid="ignore"):
        usable = np.abs(values) <= PREDICTION_LIMIT
        if project.target.positive:
            usable &= values > 0
    return np.asarray(~usable, dtype=np.bool_)


def usable(project: Project, value: float) -> bool:
    """Whether one prediction can go out (:func:`unusable`'s rule for a plain float)."""
    # NaN fails every comparison.
    if project.target.positive:
        return 0.0 < value <= PREDICTION_LIMIT
    return -PREDICTION_LIMIT <= value <= PREDICTION_LIMIT


def no_usable_value(project: Project, rows: str) -> str:
    """The message of a :class:`~tidemark.modelling.frames.DataError` for unusable answers."""
    return (
        f"features out of any plausible range give no usable {project.target.name} at rows {rows}"
    )
