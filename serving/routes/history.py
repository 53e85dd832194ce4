"""GET /models/{name}/history: every interval in which a version served, how it came, why it
left, with the figures of each decision (``tidemark.registry.history``)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter

from serving.dependencies import ServingDep
from serving.errors import UnavailableError
from serving.schemas import ErrorResponse, ProductionHistory
from tidemark.registry.history import moves_of, production_intervals
from tidemark.registry.reader import RegistryUnavailableError

router = APIRouter(tags=["model"])


@router.get(
    "/models/{name}/history",
    response_model=ProductionHistory,
    responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def production_history(name: str, serving: ServingDep) -> ProductionHistory:
    """The production history of a project's model, read from the registry on each request:
    for each interval, the version, from when to when (``end`` null while it serves), the
    move that brought it (``came``: bootstrap, evidence, emergency, shadow_win, forced or
    rollback, with its reason and figures) and the one that ended it (``left``)."""
    served = serving.project(name)
    registry = served.settings.registry
    try:
        tags = await anyio.to_thread.run_sync(serving.model_tags, registry)
    except RegistryUnavailableError as error:
        raise UnavailableError(
            f"the registry at {registry.tracking_uri} did not answer: {error}"
        ) from error
    intervals = production_intervals(moves_of(tags or {}))
    return ProductionHistory(
        project=served.name,
        model_name=served.model_name,
        production_version=intervals[-1].version if intervals else None,
        intervals=intervals,
    )
