"""GET /health (liveness) and GET /ready (a model is loaded), with the registry link's state."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serving.active_model import ModelHolder
from serving.dependencies import ServingDep
from serving.schemas import Health, Readiness
from tidemark.config import Settings

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process is up and answering; says nothing about the model."""
    return Health()


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(serving: ServingDep) -> JSONResponse:
    """200 when a model is loaded (even if the registry is unreachable), else 503 with why."""
    readiness = readiness_of(serving.holder, serving.settings)
    return JSONResponse(
        readiness.model_dump(mode="json"), status_code=200 if readiness.ready else 503
    )


def readiness_of(holder: ModelHolder, settings: Settings) -> Readiness:
    """Whether the server can predict, and a sentence saying why (not)."""
    source, active = holder.source, holder.active
    if not source.registry_ok:
        link = (
            f"the registry at {settings.registry.tracking_uri} is unreachable ({source.last_error})"
            if source.last_checked_at is not None
            else "the registry has not been checked yet"
        )
    else:
        link = "the registry is reachable"
    if active is not None:
        version = active.served.version
        reason = f"serving version {version} of {active.served.name}; {link}"
        if not source.registry_ok:
            reason += "; the last loaded model keeps serving until it answers again"
    else:
        version = None
        reason = (
            f"no production model: the registry has no version of {settings.registry.model_name!r} "
            f"with alias @{settings.registry.production_alias} yet"
            if source.registry_ok
            else f"no model loaded: {link}"
        )
    return Readiness(
        ready=active is not None,
        reason=reason,
        model_version=version,
        registry_reachable=source.registry_ok,
        registry_error=source.last_error,
        registry_checked_at=source.last_checked_at,
    )
