"""The API of every project: ``GET /models`` lists them, ``POST /models/{name}/predict`` predicts
for one with its own contracts, documented with its own schema and examples.

Each project gets a route of its own path, so that OpenAPI shows each one's request body and
examples. The default project's route is the ``/predict`` handler itself (the same parser, model,
fast path and answers); the others validate the request with a model built from the project's
features (``tidemark.project.contracts``: the same types and bounds as its input topic, the key
optional and echoed, no event time) and answer from the project's production version
(``serving.project_models``), with the fields named as its prediction records name them.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from serving.active_model import VERSION_HEADER
from serving.dependencies import Serving, ServingDep
from serving.errors import NoModelError, NotFoundError
from serving.examples import project_examples
from serving.parsing import located
from serving.project_models import ProjectModels
from serving.projects import ServedProject
from serving.routes.predict import REFUSALS, read_body
from serving.schemas import ServedModelInfo
from tidemark.project.contracts import Key, Message, field_type

router = APIRouter(tags=["models"])


def request_model(served: ServedProject) -> type[BaseModel]:
    """One item of a predict request: the project's features, and its key, optional."""
    project = served.project
    fields: dict[str, Any] = {
        project.key: (Key | None, Field(default=None, description="echoed back")),
    }
    for feature in project.features:
        annotation = field_type(feature)
        if feature.required:
            fields[feature.name] = (annotation, Field(description=feature.description))
        else:
            fields[feature.name] = (
                annotation | None,
                Field(default=None, description=feature.description),
            )
    title = "".join(part.capitalize() for part in project.name.split("-"))
    model: type[BaseModel] = create_model(
        f"{title}Request",
        __base__=Message,
        __doc__=f"One item of {project.name} to predict.",
        **fields,
    )
    return model


class ProjectPredictor:
    """Validates, predicts and answers for one project that is not the default one."""

    def __init__(self, served: ServedProject, models: ProjectModels, max_batch: int) -> None:
        self.served = served
        self.models = models
        self.model = request_model(served)
        self._one = TypeAdapter(self.model).validator
        batch: Any = Annotated[list[self.model], Field(min_length=1, max_length=max_batch)]  # type: ignore[name-defined]
        self._batch = TypeAdapter(batch).validator
        self.max_batch = max_batch

    def parse(self, body: bytes) -> tuple[list[dict[str, Any]], bool]:
        """The request's items as field dicts (absent optional ones left out), and whether
        it was a batch; ``RequestValidationError`` naming the fields when it is bad."""
        try:
            if body.lstrip()[:1] == b"[":
                items = self._batch.validate_json(body)
                return [_present(i) for i in items], True
            return [_present(self._one.validate_json(body))], False
        except ValidationError as error:
            raise RequestValidationError(located(error)) from None

    def answer(self, body: bytes) -> Response:
        """The predictions of the body's items by the project's production version."""
        rows, is_batch = self.parse(body)
        current = self.models.current(self.served.name)
        registry = self.served.settings.registry
        if current is None:
            problem = self.models.errors.get(self.served.name)
            raise NoModelError(
                f"no production model of {registry.model_name!r} loaded: the registry has no "
                f"version with alias @{registry.production_alias}"
                + (f" ({problem})" if problem else ""),
                registry.poll_interval_s,
            )
        result = current.predict(rows)
        project, names = self.served.project, self.served.contracts.names
        predictions = []
        for row, value, known in zip(
            rows, result.values.tolist(), result.segment_known.tolist(), strict=True
        ):
            one: dict[str, Any] = {project.key: row.get(project.key)}
            if project.segment is not None:
                one[project.segment] = row.get(project.segment)
            one[names.predicted] = value
            if names.known is not None:
                one[names.known] = known
            predictions.append(one)
        head = {"model_name": registry.model_name, "model_version": current.version}
        body_out = (
            {**head, "count": len(predictions), "predictions": predictions}
            if is_batch
            else {**head, **predictions[0]}
        )
        return Response(
            orjson.dumps(body_out),
            media_type="application/json",
            headers={VERSION_HEADER.decode(): current.version},
        )

    def openapi_body(self) -> dict[str, Any]:
        """The request body as OpenAPI describes it, with the project's examples."""
        one = self.model.model_json_schema()
        batch = {"type": "array", "items": one, "minItems": 1, "maxItems": self.max_batch}
        return {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [one, batch]},
                    "examples": project_examples(self.served.project),
                }
            },
        }


def _present(item: BaseModel) -> dict[str, Any]:
    return {k: v for k, v in item.__dict__.items() if v is not None}


def add_project_routes(app: FastAPI, serving: Serving, models: ProjectModels) -> None:
    """``POST /models/{name}/predict`` for each project, then the 404 of any other name."""
    for served in serving.projects.all:
        path = f"/models/{served.name}/predict"
        if served.default:
            continue  # added by serving.routes.predict with the /predict handler
        predictor = ProjectPredictor(served, models, serving.settings.serving.max_batch)
        app.add_api_route(
            path,
            _endpoint(predictor),
            methods=["POST"],
            tags=["models"],
            responses=REFUSALS,
            openapi_extra={"requestBody": predictor.openapi_body()},
            summary=f"Predict for {served.name}",
            name=f"predict {served.name}",
        )
    app.include_router(router)


def _endpoint(predictor: ProjectPredictor) -> Any:
    async def predict(request: Request) -> Response:
        return predictor.answer(await read_body(request))

    target = predictor.served.project.target.name
    predict.__doc__ = (
        f"Predict {target} of one item of {predictor.served.name} (an object) or of a batch "
        f"(an array) with its production version; the answer names the version."
    )
    return predict


@router.get("/models", response_model=list[ServedModelInfo])
async def served_models(serving: ServingDep) -> list[ServedModelInfo]:
    """Each project this server speaks of: its registered model, the version loaded now, the
    paths to predict, to read its production history and to explain an item, and the JSON
    Schema of one item to predict."""
    listed = []
    for served in serving.projects.all:
        error = None
        if served.default:
            active = serving.holder.active
            version = active.served.version if active else None
            error = None if serving.holder.source.registry_ok else serving.holder.source.last_error
        else:
            current = serving.project_models.current(served.name)
            version = current.version if current else None
            error = serving.project_models.errors.get(served.name)
        project = served.project
        listed.append(
            ServedModelInfo(
                project=served.name,
                model_name=served.model_name,
                default=served.default,
                production_version=version,
                target=project.target.name,
                unit=project.target.unit,
                segment=project.segment,
                predict_path=f"/models/{served.name}/predict",
                history_path=f"/models/{served.name}/history",
                explain_path=f"/models/{served.name}/predictions/{{key}}",
                input_schema=request_schema(served),
                error=error,
            )
        )
    return listed


_SCHEMAS: dict[str, dict[str, Any]] = {}


def request_schema(served: ServedProject) -> dict[str, Any]:
    """The JSON Schema of one item of a project's predict request, built once."""
    if served.name not in _SCHEMAS:
        _SCHEMAS[served.name] = request_model(served).model_json_schema()
    return _SCHEMAS[served.name]


@router.post("/models/{name}/predict", include_in_schema=False)
async def no_such_project(name: str, serving: ServingDep) -> Response:
    """Any name that is not a project's."""
    found = serving.projects.find(name)
    if found is not None:
        # The registered model's name of a project: answer as its own path does.
        raise NotFoundError(
            f"{name!r} is {found.name!r}'s model: POST /models/{found.name}/predict"
        )
    raise NotFoundError(serving.projects.unknown(name))
