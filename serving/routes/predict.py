"""POST /predict: the default project's target for one item or a batch, from the version named
in the answer.

The request's fields, the answer's fields and the examples of the docs all come from the
default project's file: the answer names its key, its segment, ``predicted_<target>`` and
``<segment>_known`` as the project's prediction records do.

The route is added to the app itself, before the other routers, and receives its state from
the app's construction rather than through ``Depends``: each dependency FastAPI solves, and
each included router it walks to match a path, costs time on every request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect

from serving.active_model import ActiveModel, ModelHolder
from serving.dependencies import Serving
from serving.errors import NoModelError
from serving.metrics import NO_SEGMENT, UNKNOWN_SEGMENT, ServingMetrics
from serving.parsing import ItemParser, title_of
from serving.schemas import ErrorResponse, answer_models
from tidemark.project.contracts import FieldNames
from tidemark.project.spec import Project

PATH = "/predict"

REFUSALS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "The body is over the size limit."},
    422: {"model": ErrorResponse, "description": "A field is missing, unknown or invalid."},
    503: {"model": ErrorResponse, "description": "There is no production model yet."},
}
_JSON = (b"content-type", b"application/json")


class Answer(Response):
    """A JSON answer whose headers are put together from parts built once per model version,
    rather than parsed from a mapping as ``Response`` does."""

    media_type = "application/json"

    def __init__(self, body: bytes, version_header: tuple[bytes, bytes]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", b"%d" % len(body)), _JSON, version_header]


class Answers:
    """A project's answers: the fields of each prediction named as its prediction records
    name them (the key, the segment, ``predicted_<target>``, ``<segment>_known``), and the
    count of predictions by segment in the server's metrics."""

    def __init__(self, project: Project, metrics: ServingMetrics) -> None:
        names = FieldNames.of(project)
        self.project = project.name
        self.key = project.key
        self.segment = project.segment
        self.predicted = names.predicted
        self.known = names.known
        self.metrics = metrics

    def one(
        self, fields: Mapping[str, Any], value: float, known: bool, name: str, version: str
    ) -> dict[str, Any]:
        """The answer to one item, counted."""
        # Built in place rather than from ``_prediction``: the one-item answer is the hot path.
        segment = self.segment
        body = {"model_name": name, "model_version": version, self.key: fields.get(self.key)}
        label: str = NO_SEGMENT
        if segment is not None:
            body[segment] = label = fields[segment]
            if not known:
                label = UNKNOWN_SEGMENT
        body[self.predicted] = value
        if self.known is not None:
            body[self.known] = known
        self.metrics.count_prediction(self.project, label, version)
        return body

    def batch(
        self,
        rows: Sequence[Mapping[str, Any]],
        values: Sequence[float],
        known: Sequence[bool],
        name: str,
        version: str,
    ) -> dict[str, Any]:
        """The answer to a batch, in order, counted."""
        predictions = [
            self._prediction(fields, value, is_known)
            for fields, value, is_known in zip(rows, values, known, strict=True)
        ]
        segment = self.segment
        labels = [NO_SEGMENT] * len(rows) if segment is None else [r[segment] for r in rows]
        self.metrics.count_predictions(self.project, labels, list(known), version)
        return {
            "model_name": name,
            "model_version": version,
            "count": len(predictions),
            "predictions": predictions,
        }

    def _prediction(self, fields: Mapping[str, Any], value: float, known: bool) -> dict[str, Any]:
        one = {self.key: fields.get(self.key)}
        if self.segment is not None:
            one[self.segment] = fields.get(self.segment)
        one[self.predicted] = value
        if self.known is not None:
            one[self.known] = known
        return one


def add_route(
    app: FastAPI,
    serving: Serving,
    parser: ItemParser,
    request_body: dict[str, Any],
    path: str = PATH,
) -> None:
    """Add the default project's route to ``app`` at ``path``, its request body documented
    (the schema depends on the app's batch limit). The default project's
    ``/models/{name}/predict`` is this same handler under its project's path."""
    holder, metrics = serving.holder, serving.metrics
    registry = serving.settings.registry
    project = parser.project
    answers = Answers(project, metrics)
    parse = parser.parse

    async def predict(request: Request) -> Response:
        items, is_batch = parse(await read_body(request))
        # One read of the reference: the whole request is answered by this version.
        active = holder.active
        if active is None:
            raise NoModelError(
                f"no production model to answer with: the registry has no version of "
                f"{registry.model_name!r} with alias @{registry.production_alias} yet"
                + _registry_note(holder),
                registry.poll_interval_s,
            )
        served = active.served
        if is_batch:
            return Answer(orjson.dumps(_batch(active, items)), active.version_header)
        fields = items[0]
        value, known = active.predict_one(fields)
        body = answers.one(fields, value, known, served.name, served.version)
        return Answer(orjson.dumps(body), active.version_header)

    def _batch(active: ActiveModel, items: list[dict[str, Any]]) -> dict[str, Any]:
        values, known = active.predict(items)
        served = active.served
        return answers.batch(items, values, known, served.name, served.version)

    predict.__doc__ = describe(project)
    one, batch = answer_models(project, title_of(project))
    app.add_api_route(
        path,
        predict,
        methods=["POST"],
        tags=["predict"],
        response_model=one | batch,
        responses=REFUSALS,
        openapi_extra={"requestBody": request_body},
        summary=f"Predict {project.target.name} of one item (an object) or a batch (an array)",
        name=f"predict {project.name}" if path != PATH else "predict",
    )


def describe(project: Project) -> str:
    """The docs' description of a project's predict route."""
    text = (
        f"Answer one item of {project.name} with its predicted {project.target.name}, or an "
        f"array of items with one prediction each.\n\nEvery answer names the model version that "
        f"produced it, in the body and in the `x-model-version` header."
    )
    names = FieldNames.of(project)
    if project.segment is not None:
        text += (
            f" A {project.segment} the model never saw is predicted from the part of the model "
            f"shared by all of them and flagged with `{names.known}: false`."
        )
    return text


async def read_body(request: Request) -> bytes:
    """The request body: Starlette's ``Request.body`` streams it through an async generator, a
    cost of its own on a request whose body comes in one message."""
    message = await request.receive()
    chunks: list[bytes] = []
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await request.receive()


def _registry_note(holder: ModelHolder) -> str:
    source = holder.source
    if source.registry_ok:
        return ""
    return f" (the registry is unreachable: {source.last_error or 'not checked yet'})"
