"""POST /predict: the weight of one fish or a batch, from the version named in the answer."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from serving.active_model import ModelHolder
from serving.dependencies import ServingDep
from serving.errors import NoModelError
from serving.middleware import VERSION_HEADER
from serving.schemas import BatchPredictionResponse, ErrorResponse, PredictionResponse

_REFUSALS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "The body is over the size limit."},
    422: {"model": ErrorResponse, "description": "A field is missing, unknown or invalid."},
    503: {"model": ErrorResponse, "description": "There is no production model yet."},
}


def build_router(request_body: dict[str, Any]) -> APIRouter:
    """The route, its request body documented (the schema depends on the app's batch limit)."""
    router = APIRouter(tags=["predict"])

    @router.post(
        "/predict",
        response_model=PredictionResponse | BatchPredictionResponse,
        responses=_REFUSALS,
        openapi_extra={"requestBody": request_body},
        summary="Predict the weight of one fish (an object) or a batch (an array)",
    )
    async def predict(request: Request, serving: ServingDep) -> Response:
        """Answer one fish with one prediction, or an array of fish with one prediction each.

        Every answer names the model version that produced it, in the body and in the
        ``x-model-version`` header. A species the model never saw is scored from the part of
        the model shared by all species and flagged with ``species_known: false``.
        """
        fish, is_batch = serving.parser.parse(await request.body())
        holder, registry = serving.holder, serving.settings.registry
        # One read of the reference: the whole request is answered by this version.
        active = holder.active
        if active is None:
            raise NoModelError(
                f"no production model to answer with: the registry has no version of "
                f"{registry.model_name!r} with alias @{registry.production_alias} yet"
                + _registry_note(holder),
                registry.poll_interval_s,
            )
        weights, known = active.predict(fish)
        served = active.served
        species = [f.species for f in fish]
        serving.metrics.count_predictions(species, known, served.version)
        predictions = [
            {
                "fish_id": f.fish_id,
                "species": s,
                "predicted_weight_kg": w,
                "species_known": k,
            }
            for f, s, w, k in zip(fish, species, weights, known, strict=True)
        ]
        identity = {"model_name": served.name, "model_version": served.version}
        body: dict[str, Any] = (
            {**identity, "count": len(predictions), "predictions": predictions}
            if is_batch
            else {**identity, **predictions[0]}
        )
        return Response(
            orjson.dumps(body),
            media_type="application/json",
            headers={VERSION_HEADER.decode(): served.version},
        )

    return router


def _registry_note(holder: ModelHolder) -> str:
    source = holder.source
    if source.registry_ok:
        return ""
    return f" (the registry is unreachable: {source.last_error or 'not checked yet'})"
