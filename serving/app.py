"""The model server: ``create_app(settings)`` builds a FastAPI app that follows the registry.

At start it loads the production model (if there is one) and then follows the registry in a
background thread (tidemark.registry.watcher); a promoted or rolled-back version is loaded there
and swapped in with one assignment, so requests never wait for a load. The challenger in shadow
is never served: ``/model`` only reads its tags (version, role, running evidence) on request.

The API docs (``/docs``: Swagger UI, ``/redoc``: ReDoc) load their scripts and styles from the
server itself (files shipped in the fastapi-offline wheel), so they work without internet; the
ReDoc page is ours (serving.routes.redoc) so that its footer's logo is not fetched from a CDN.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from serving import errors
from serving.active_model import ModelHolder, ModelSource
from serving.dependencies import Explainer, Serving, explain_on_topics, read_model_tags
from serving.examples import project_examples
from serving.metrics import ServingMetrics
from serving.metrics_dir import shared_metrics_dir
from serving.middleware import ServingMiddleware
from serving.parsing import ItemParser
from serving.project_models import ProjectModels
from serving.projects import ServedProjects
from serving.routes import admin, explain, health, history, model, predict
from serving.routes import metrics as metrics_route
from serving.routes.projects import add_project_routes
from serving.routes.redoc import add_redoc_page
from tidemark.config import RegistrySettings, Settings, get_settings
from tidemark.logs import get_logger
from tidemark.registry.reader import RegistryReader, VersionRef
from tidemark.registry.watcher import ModelWatcher

log = get_logger("serving")

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
DOCS_ASSETS_URL = "/docs-assets"


def create_app(
    settings: Settings | None = None,
    source: ModelSource | None = None,
    challenger: Callable[[], VersionRef | None] | None = None,
    model_tags: Callable[[RegistrySettings], dict[str, str] | None] | None = None,
    explainer: Explainer | None = None,
    project_models: ProjectModels | None = None,
) -> FastAPI:
    """The app; ``source`` defaults to a ModelWatcher on the settings' registry.

    Called with no argument, it is the factory every worker process of ``tidemark serve
    --workers N`` builds its own app (and watcher) with.

    ``challenger`` names the version in shadow with its tags, for ``/model``; it defaults to
    the registry's challenger alias when the model comes from the registry (no ``source``),
    and to "none" beside a ``source`` of the caller's. ``model_tags`` reads a registered
    model's tags (its production history), from the registry by default; ``explainer`` explains
    an item, from the project's topics and registry by default. ``project_models`` serves the
    other projects' models; it follows the registry, unless ``source`` is the caller's.
    """
    settings = settings or get_settings()
    reader: RegistryReader | None = None
    follow = source is None
    projects = ServedProjects(settings)
    if not projects.all:
        # /predict validates and answers with the default project's fields: no project, no API.
        raise RuntimeError(
            f"the model server needs the project it serves: {projects.problem} "
            f"(TIDEMARK_PROJECTS_DIR={settings.projects.dir})"
        )
    default = projects.default.project
    if source is None:
        source = ModelWatcher(settings.registry, default)
        reader = RegistryReader(settings.registry)
    if challenger is None:
        alias = settings.registry.challenger_alias
        challenger = (lambda: reader.alias(alias)) if reader is not None else (lambda: None)
    holder = ModelHolder(source)
    if project_models is None:
        project_models = ProjectModels(
            projects.all, settings.registry.poll_interval_s, follow=follow
        )
    parser = ItemParser(default, settings.serving.max_batch)
    metrics = ServingMetrics(holder, shared_metrics_dir())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The first registry check and load happen here, before the first request is accepted.
        await anyio.to_thread.run_sync(source.start)
        await anyio.to_thread.run_sync(project_models.start)
        active = holder.active
        log.info(
            "model server ready" if active else "model server up without a model",
            model_version=active.served.version if active else None,
            registry_reachable=source.registry_ok,
            registry_error=source.last_error,
            pid=os.getpid(),
        )
        async with anyio.create_task_group() as background:
            background.start_soon(metrics.flush_every)
            yield
            background.cancel_scope.cancel()
        await anyio.to_thread.run_sync(source.stop)
        await anyio.to_thread.run_sync(project_models.stop)
        metrics.close()
        if reader is not None:
            reader.close()

    app = FastAPIOffline(
        docs_url=DOCS_URL,
        redoc_url=None,
        static_url=DOCS_ASSETS_URL,
        title="Tidemark model server",
        summary="Predictions of each project's model in production, hot-swapped on promotion.",
        description=f"`POST /predict` answers for the default project, {default.name}: "
        f"{default.description or default.target.name}. `GET /models` lists every project.",
        version="1",
        lifespan=lifespan,
        # Try it out opens ready to run: the docs are for people trying the API.
        swagger_ui_parameters={"tryItOutEnabled": True, "displayRequestDuration": True},
    )
    serving = Serving(
        settings=settings,
        holder=holder,
        parser=parser,
        metrics=metrics,
        challenger=challenger,
        projects=projects,
        model_tags=model_tags or read_model_tags,
        explainer=explainer or explain_on_topics,
        project_models=project_models,
    )
    app.state.serving = serving
    add_redoc_page(app, REDOC_URL, DOCS_ASSETS_URL)
    app.add_middleware(
        ServingMiddleware,
        holder=holder,
        metrics=metrics,
        max_body_bytes=settings.serving.max_body_bytes,
    )
    errors.install(app)
    # The app's own route, ahead of the routers: the one path that must be fast.
    default_body = parser.openapi_schema(project_examples(default))
    predict.add_route(app, serving, parser, default_body)
    # The default project's own path is the same handler; the others get theirs.
    predict.add_route(app, serving, parser, default_body, f"/models/{default.name}/predict")
    add_project_routes(app, serving, project_models)
    for router in (
        health.router,
        model.router,
        history.router,
        explain.router,
        metrics_route.router,
        admin.router,
    ):
        app.include_router(router)
    return app
