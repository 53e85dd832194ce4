"""What the routes receive through ``Depends``: the app's settings, model, parser and metrics.

Everything lives on ``app.state``, set once by serving.app.create_app, so two apps in one process
(tests) never share state.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.active_model import ModelHolder
from serving.metrics import ServingMetrics
from serving.parsing import FishParser
from tidemark.config import Settings


def settings_of(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def holder_of(request: Request) -> ModelHolder:
    """The model in service and its source."""
    holder: ModelHolder = request.app.state.holder
    return holder


def parser_of(request: Request) -> FishParser:
    """The predict body parser (it knows the batch limit)."""
    parser: FishParser = request.app.state.parser
    return parser


def metrics_of(request: Request) -> ServingMetrics:
    """The app's Prometheus metrics."""
    metrics: ServingMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(settings_of)]
HolderDep = Annotated[ModelHolder, Depends(holder_of)]
ParserDep = Annotated[FishParser, Depends(parser_of)]
MetricsDep = Annotated[ServingMetrics, Depends(metrics_of)]

_bearer = HTTPBearer(auto_error=False, description="settings.admin_token (TIDEMARK_ADMIN_TOKEN)")


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse with 401 unless the request carries ``Authorization: Bearer <admin token>``."""
    expected = settings.admin_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials else b""
    if not secrets.compare_digest(given, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a valid admin bearer token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
