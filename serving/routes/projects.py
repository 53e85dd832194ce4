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

from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response

from serving.dependencies import Serving, ServingDep
from serving.errors import NoModelError, NotFoundError
from serving.examples import project_examples
from serving.metrics import ServingMetrics
from serving.parsing import ItemParser, request_model, title_of
from serving.project_models import ProjectModels
from serving.projects import ServedProject
from serving.routes.predict import REFUSALS, Answer, Answers, describe, read_body
from serving.schemas import ServedModelInfo, answer_models

router = APIRouter(tags=["models"])


class ProjectPredictor:
    """Validates, predicts and answers for one project that is not the default one."""

    def __init__(
        self,
        served: ServedProject,
        models: ProjectModels,
        max_batch: int,
        metrics: ServingMetrics,
    ) -> None:
        self.served = served
        self.models = models
        self.parser = ItemParser(served.project, max_batch)
        self.answers = Answers(served.project, metrics)

    def answer(self, body: bytes) -> Response:
        """The predictions of the body's items by the project's production version."""
        rows, is_batch = self.parser.parse(body)
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
        values, known = result.values.tolist(), result.segment_known.tolist()
        name, version = registry.model_name, current.version
        if is_batch:
            out = self.answers.batch(rows, values, known, name, version)
        else:
            out = self.answers.one(rows[0], values[0], known[0], name, version)
        return Answer(orjson.dumps(out), current.version_header)

    def openapi_body(self) -> dict[str, Any]:
        """The request body as OpenAPI describes it, with the project's examples."""
        return self.parser.openapi_schema(project_examples(self.served.project))


def add_project_routes(app: FastAPI, serving: Serving, models: ProjectModels) -> None:
    """``POST /models/{name}/predict`` for each project, then the 404 of any other name."""
    for served in serving.projects.all:
        path = f"/models/{served.name}/predict"
        if served.default:
            continue  # added by serving.routes.predict with the /predict handler
        predictor = ProjectPredictor(
            served, models, serving.settings.serving.max_batch, serving.metrics
        )
        one, batch = answer_models(served.project, title_of(served.project))
        app.add_api_route(
            path,
            _endpoint(predictor),
            methods=["POST"],
            tags=["models"],
            response_model=one | batch,
            responses=REFUSALS,
            openapi_extra={"requestBody": predictor.openapi_body()},
            summary=f"Predict {served.project.target.name} for {served.name}",
            name=f"predict {served.name}",
        )
    app.include_router(router)


def _endpoint(predictor: ProjectPredictor) -> Any:
    async def predict(request: Request) -> Response:
        return predictor.answer(await read_body(request))

    predict.__doc__ = describe(predictor.served.project)
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
        _SCHEMAS[served.name] = request_model(served.project).model_json_schema()
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
