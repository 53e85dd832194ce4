"""POST /predict: the weight of one fish or a batch, from the version named in the answer.

The route is added to the app itself, before the other routers, and receives its state from
the app's construction rather than through ``Depends``: each dependency FastAPI solves, and
each included router it walks to match a path, costs time on every request.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect

from serving.active_model import ActiveModel, ModelHolder
from serving.dependencies import Serving
from serving.errors import NoModelError
from serving.metrics import UNKNOWN_SPECIES
from serving.schemas import BatchPredictionResponse, ErrorResponse, Fish, PredictionResponse

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


def add_route(
    app: FastAPI, serving: Serving, request_body: dict[str, Any], path: str = PATH
) -> None:
    """Add the route to ``app`` at ``path``, its request body documented (the schema depends on
    the app's batch limit). The default project's ``/models/{name}/predict`` is this same
    handler under its project's path."""
    holder, parser, metrics = serving.holder, serving.parser, serving.metrics
    registry = serving.settings.registry

    async def predict(request: Request) -> Response:
        """Answer one fish with one prediction, or an array of fish with one prediction each.

        Every answer names the model version that produced it, in the body and in the
        ``x-model-version`` header. A species the model never saw is scored from the part of
        the model shared by all species and flagged with ``species_known: false``.
        """
        fish, is_batch = parser.parse(await read_body(request))
        # One read of the reference: the whole request is answered by this version.
        active = holder.active
        if active is None:
            raise NoModelError(
                f"no production model to answer with: the registry has no version of "
                f"{registry.model_name!r} with alias @{registry.production_alias} yet"
                + _registry_note(holder),
                registry.poll_interval_s,
            )
        if is_batch:
            return Answer(orjson.dumps(_batch(active, fish)), active.version_header)
        one = fish[0]
        weight, known = active.predict_one(one)
        served = active.served
        metrics.count_prediction(one.species if known else UNKNOWN_SPECIES, served.version)
        body = {
            "model_name": served.name,
            "model_version": served.version,
            "fish_id": one.fish_id,
            "species": one.species,
            "predicted_weight_kg": weight,
            "species_known": known,
        }
        return Answer(orjson.dumps(body), active.version_header)

    def _batch(active: ActiveModel, fish: list[Fish]) -> dict[str, Any]:
        weights, known = active.predict(fish)
        served = active.served
        metrics.count_predictions([f.species for f in fish], known, served.version)
        predictions = [
            {
                "fish_id": f.fish_id,
                "species": f.species,
                "predicted_weight_kg": w,
                "species_known": k,
            }
            for f, w, k in zip(fish, weights, known, strict=True)
        ]
        return {
            "model_name": served.name,
            "model_version": served.version,
            "count": len(predictions),
            "predictions": predictions,
        }

    app.add_api_route(
        path,
        predict,
        methods=["POST"],
        tags=["predict"],
        response_model=PredictionResponse | BatchPredictionResponse,
        responses=REFUSALS,
        openapi_extra={"requestBody": request_body},
        summary="Predict the weight of one fish (an object) or a batch (an array)",
    )


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
