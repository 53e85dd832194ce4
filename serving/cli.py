"""``tidemark serve``: the model server under uvicorn, in one process or several on one port."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from serving.admin_guard import UnsafeAdminTokenError, check_admin_token
from serving.metrics_dir import metrics_dir_for
from tidemark.config import get_settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: TIDEMARK_SERVING_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind (default: TIDEMARK_SERVING_PORT).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes answering on the port, each following the registry "
            "(default: TIDEMARK_SERVING_WORKERS).",
        ),
    ] = None,
) -> None:
    """Serve predictions from the production model, following the registry for new versions."""
    settings = get_settings()
    bind = host or settings.serving.host
    try:
        check_admin_token(settings.serving.admin_token, bind)
    except UnsafeAdminTokenError as error:
        typer.echo(f"tidemark serve: {error}", err=True)
        raise typer.Exit(2) from error
    count = workers or settings.serving.workers
    with metrics_dir_for(count):
        if count == 1:
            from serving.app import create_app

            run_uvicorn(create_app(settings), bind, port or settings.serving.port, 1)
        else:
            # Each worker process builds its own app (and watcher) from the same settings.
            run_uvicorn(
                "serving.app:create_app", bind, port or settings.serving.port, count, factory=True
            )


def run_uvicorn(
    app: ASGIApp | Callable[[], ASGIApp] | str,
    host: str,
    port: int,
    workers: int,
    *,
    factory: bool = False,
) -> None:
    """Run ``app`` under uvicorn as every model server here runs (benchmarks/serving's floor too).

    Several workers each run their own uvicorn server on a socket of their own (serving.workers);
    ``app`` then names what each imports (``module:attribute``, a function to call when
    ``factory``).
    """
    options: dict[str, Any] = {
        # Logging stays as tidemark.logs configured it (JSON lines under supervisor); requests
        # are counted in /metrics, so a log line per request would only cost time.
        "log_config": None,
        "access_log": False,
    }
    if workers == 1:
        import uvicorn

        uvicorn.run(app, host=host, port=port, factory=factory, **options)
        return
    if not isinstance(app, str):
        raise TypeError("several workers import the app themselves: name it as module:attribute")
    from serving.workers import serve_workers

    serve_workers(app, host, port, workers, factory, options)
