"""How far a model's predictions are from the truth, named for the error the project judges."""

from __future__ import annotations

from dataclasses import dataclass

from tidemark.project.spec import ErrorKind

JUDGED_METRIC = {
    ErrorKind.RELATIVE: "mean_relative_error",
    ErrorKind.ABSOLUTE: "mean_absolute_error",
}


@dataclass(frozen=True, slots=True)
class Metrics:
    """Error of a model's predictions on a set of items with known targets.

    ``judged`` is the mean of the error the project judges (``project.target.judged_by``):
    ``mean(|predicted - actual| / actual)`` for a relative error, the MAE for an absolute one.
    Logged to MLflow by its name (:attr:`judged_name`), so a relative project's metrics keep
    the names ``mae``, ``rmse``, ``mean_relative_error`` and ``n``.
    """

    mae: float
    rmse: float
    judged: float
    n: int
    kind: ErrorKind = ErrorKind.RELATIVE

    @property
    def judged_name(self) -> str:
        """The judged error's metric name: ``mean_relative_error`` or ``mean_absolute_error``."""
        return JUDGED_METRIC[self.kind]

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """The metrics as floats for ``mlflow.log_metrics``, names optionally prefixed."""
        values = {"mae": self.mae, "rmse": self.rmse, self.judged_name: self.judged, "n": self.n}
        return {f"{prefix}{name}": float(value) for name, value in values.items()}
