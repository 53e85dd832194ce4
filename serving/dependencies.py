"""What the routes receive through ``Depends``: the app's settings, model, parser and metrics.

They live in one :class:`Serving` on ``app.state``, set once by serving.app.create_app, so two
apps in one process (tests) never share state. The getter is ``async`` on purpose: FastAPI runs
a plain ``def`` dependency in its thread pool, a hop that costs more than the whole prediction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.active_model import ModelHolder
from serving.metrics import ServingMetrics
from serving.parsing import FishParser
from tidemark.config import Settings
from tidemark.registry.reader import VersionRef


@dataclass(frozen=True)
class Serving:
    """Everything a route may need, built once per app."""

    settings: Settings
    holder: ModelHolder
    parser: FishParser
    metrics: ServingMetrics
    # The version in shadow with its tags (a blocking registry read; None: no challenger).
    challenger: Callable[[], VersionRef | None]


async def serving_of(request: Request) -> Serving:
    """The app's serving state (one dependency: each one FastAPI solves costs time per request)."""
    serving: Serving = request.app.state.serving
    return serving


ServingDep = Annotated[Serving, Depends(serving_of)]

_bearer = HTTPBearer(
    auto_error=False, description="settings.serving.admin_token (TIDEMARK_SERVING_ADMIN_TOKEN)"
)


def require_admin(
    serving: ServingDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse with 401 unless the request carries ``Authorization: Bearer <admin token>``."""
    expected = serving.settings.serving.admin_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials else b""
    if not secrets.compare_digest(given, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a valid admin bearer token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
