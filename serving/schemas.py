"""What the model server's endpoints accept and answer, as pydantic models.

A project's request and answer models are built from its project file (``serving.parsing`` for
the request, :func:`answer_models` here for the answers), so that each project's predict route
is documented with its own field names: the key it echoes, its segment, the predicted target
and whether the model knew the segment, named as its prediction records name them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, create_model

from tidemark.project.contracts import FieldNames
from tidemark.project.spec import Project
from tidemark.registry.history import ProductionInterval


def answer_models(project: Project, title: str) -> tuple[type[BaseModel], type[BaseModel]]:
    """The answers of a project's predict route, for its docs: to one item, and to a batch.

    ``title`` is the project's name as a class name; the fields follow the project's names
    (``tidemark.project.contracts.FieldNames``).
    """
    names = FieldNames.of(project)
    unit = f" ({project.target.unit})" if project.target.unit else ""
    fields: dict[str, Any] = {
        project.key: (str | None, Field(description="the request's key, echoed back")),
    }
    if project.segment is not None:
        fields[project.segment] = (str, Field(description="the segment, as the model saw it"))
    fields[names.predicted] = (
        float,
        Field(description=f"the predicted {project.target.name}{unit}"),
    )
    if names.known is not None:
        fields[names.known] = (
            bool,
            Field(
                description=f"False when the model never saw this {project.segment}: the value "
                f"then comes from the part of the model shared by all of them and is less reliable"
            ),
        )
    one: type[BaseModel] = create_model(
        f"{title}Prediction", __doc__=f"The prediction for one item of {project.name}.", **fields
    )
    version: dict[str, Any] = {"model_name": (str, ...), "model_version": (str, ...)}
    single: type[BaseModel] = create_model(
        f"{title}PredictionResponse",
        __base__=one,
        __doc__="The answer to one item, naming the model version that produced it.",
        **version,
    )
    batch: type[BaseModel] = create_model(
        f"{title}BatchResponse",
        __doc__="The answer to a batch: one prediction per item, in order, from one version.",
        **version,
        count=(int, ...),
        predictions=(list[one], ...),
    )
    return single, batch


class FieldError(BaseModel):
    """One reason a request was refused."""

    field: str = Field(description="dotted path of the bad field; batch items start at 0")
    reason: str
    type: str


class ErrorResponse(BaseModel):
    """Any refused request: a one-line summary, and for validation errors each bad field."""

    detail: str
    errors: list[FieldError] = Field(default_factory=list)


class Health(BaseModel):
    """Liveness: the process answers."""

    status: str = "ok"


class Readiness(BaseModel):
    """Whether the server can predict, and why not, plus the state of the registry link."""

    ready: bool
    reason: str
    model_version: str | None
    registry_reachable: bool
    registry_error: str | None
    registry_checked_at: datetime | None


class ChallengerInfo(BaseModel):
    """The version in shadow beside production and its running evidence on live items."""

    version: str
    champion_version: str | None = Field(description="The production version it runs against")
    role: str | None = Field(
        description="challenger (promoted if it wins) or rollback-watch (the version a "
        "promotion replaced: production is rolled back if it wins)"
    )
    started_at: str | None
    start_reason: str | None
    verdict: str | None = Field(
        description="continue while undecided; promote, retire or no_evidence once final"
    )
    n: int = Field(description="Joined items both versions predicted, counted so far")
    windows: int = Field(description="Monitor windows that brought items")
    statistic: float | None = Field(description="Log likelihood ratio of the overall mSPRT")
    p_value: float | None = Field(description="Always-valid p-value of the overall test")
    alpha: float | None
    champion_mre: float | None
    challenger_mre: float | None
    reason: str | None


class ModelInfo(BaseModel):
    """The model in service: identity, when it was loaded, what it was trained on, its metrics."""

    name: str
    version: str
    run_id: str
    loaded_at: datetime
    training_window_start: str | None
    training_window_end: str | None
    segment: str | None = Field(
        description="The project's segment field (null for a project without one)"
    )
    known_segments: list[str] = Field(
        description="Segments the model was trained on; any other is scored as unknown"
    )
    champion_version: str | None = Field(
        description="The version this one was compared with before promotion; null for the "
        "first version"
    )
    fast_path: bool = Field(
        description="True when predictions are computed from the model's log-linear "
        "coefficients (verified equal to the pipeline's) rather than through the pipeline"
    )
    metrics: dict[str, float]
    tags: dict[str, str]
    challenger: ChallengerInfo | None = Field(
        default=None, description="The version in shadow, if any, with its live evidence"
    )
    challenger_error: str | None = Field(
        default=None, description="Why the challenger could not be read from the registry"
    )


class ReloadResponse(BaseModel):
    """The outcome of a forced registry check."""

    swapped: bool
    model_version: str | None
    registry_reachable: bool
    registry_error: str | None


class ProductionHistory(BaseModel):
    """Every interval in which a version of a model served, oldest first."""

    project: str
    model_name: str
    production_version: str | None = Field(
        description="The version serving now, as the history's last move says"
    )
    intervals: list[ProductionInterval]


class ServedModelInfo(BaseModel):
    """One project's model as this server serves it."""

    project: str
    model_name: str
    default: bool = Field(description="True for the project that /predict answers for")
    production_version: str | None = Field(description="The version loaded now, if any")
    target: str
    unit: str | None
    segment: str | None
    predict_path: str
    history_path: str
    explain_path: str
    input_schema: dict[str, Any] = Field(description="JSON Schema of one item to predict")
    error: str | None = Field(default=None, description="Why no model is loaded, if known")
