"""``tidemark serve``: the model server under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from serving.app import create_app
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
    uvicorn.run(
        create_app(settings),
        host=host or settings.serving_host,
        port=port or settings.serving_port,
        # Logging stays as tidemark.logs configured it (JSON lines under supervisor); requests
        # are counted in /metrics, so a log line per request would only cost time.
        log_config=None,
        access_log=False,
    )
