"""``tidemark serve``: the model server under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from serving.admin_guard import UnsafeAdminTokenError, check_admin_token
from tidemark.config import get_settings


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: TIDEMARK_SERVING_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind (default: TIDEMARK_SERVING_PORT).")
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
    import uvicorn

    from serving.app import create_app

    uvicorn.run(
        create_app(settings),
        host=bind,
        port=port or settings.serving.port,
        # Logging stays as tidemark.logs configured it (JSON lines under supervisor); requests
        # are counted in /metrics, so a log line per request would only cost time.
        log_config=None,
        access_log=False,
    )
