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
from serving.errors import NotFoundError
from serving.metrics import ServingMetrics
from serving.parsing import ItemParser
from serving.project_models import ProjectModels
from serving.projects import ServedProject, ServedProjects
from tidemark.config import RegistrySettings, Settings
from tidemark.explain import Explanation, explain
from tidemark.registry.reader import RegistryReader, VersionRef

Explainer = Callable[[ServedProject, str], Explanation]


@dataclass(frozen=True)
class Serving:
    """Everything a route may need, built once per app."""

    settings: Settings
    holder: ModelHolder
    # The default project's request parser (/predict).
    parser: ItemParser
    metrics: ServingMetrics
    # The version in shadow with its tags (a blocking registry read; None: no challenger).
    challenger: Callable[[], VersionRef | None]
    projects: ServedProjects
    # A registered model's tags (a blocking registry read; None: no such model).
    model_tags: Callable[[RegistrySettings], dict[str, str] | None]
    # An item's explanation (blocking reads of Kafka and the registry).
    explainer: Explainer
    # The production models of the projects but the default one.
    project_models: ProjectModels

    def project(self, name: str) -> ServedProject:
        """The project a URL names; ``NotFoundError`` naming those there are."""
        found = self.projects.find(name)
        if found is None:
            raise NotFoundError(self.projects.unknown(name))
        return found


def explain_on_topics(served: ServedProject, key: str) -> Explanation:
    """An item's explanation read from the project's topics and registry (blocking)."""
    return explain(served.settings, served.contracts, key)


def read_model_tags(registry: RegistrySettings) -> dict[str, str] | None:
    """A registered model's tags, read over MLflow's REST API."""
    with RegistryReader(registry) as reader:
        return reader.model_tags()


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
