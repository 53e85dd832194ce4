"""POST /reload: ask the registry now instead of waiting for the next poll (admin token)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from serving.dependencies import ServingDep, require_admin
from serving.schemas import ErrorResponse, ReloadResponse

router = APIRouter(tags=["admin"])


@router.post(
    "/reload",
    response_model=ReloadResponse,
    dependencies=[Depends(require_admin)],
    responses={401: {"model": ErrorResponse}},
)
def reload(serving: ServingDep) -> ReloadResponse:
    """Check the registry once; a new production version is loaded and swapped in.

    Runs in the thread pool: a load takes a second or two and must not block the event loop,
    which keeps answering predictions from the current model meanwhile.
    """
    source = serving.holder.source
    swapped = source.check_now()
    active = serving.holder.active
    return ReloadResponse(
        swapped=swapped,
        model_version=active.served.version if active else None,
        registry_reachable=source.registry_ok,
        registry_error=source.last_error,
    )
