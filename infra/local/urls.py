"""Where a person goes once ``make up`` is done: each UI, the API docs, the metrics endpoints."""

from __future__ import annotations

from pathlib import Path

from infra.local.admin_token import token_file
from tidemark.config import Settings


def people_urls(settings: Settings) -> list[tuple[str, str]]:
    """(URL, what it is for), in the order a newcomer visits them."""
    metrics = "http://127.0.0.1:{}/metrics"
    return [
        (settings.registry.tracking_uri, "MLflow UI: versions, metrics, decisions"),
        (settings.orchestration.ui_url, "Prefect UI: train, retrain, promote, rollback"),
        (f"{settings.serving.url}/docs", "API docs: try POST /predict"),
        (f"{settings.serving.url}/redoc", "API docs (ReDoc)"),
        (
            f"http://127.0.0.1:{settings.stack.evidently_ui_port}",
            "Evidently UI: the monitor's windows",
        ),
        (f"{settings.serving.url}/metrics", "metrics of the model server"),
        (metrics.format(settings.stream.scorer_metrics_port), "metrics of the scorer"),
        (metrics.format(settings.stream.joiner_metrics_port), "metrics of the joiner"),
        (metrics.format(settings.monitor.metrics_port), "metrics of the monitor"),
    ]


def admin_token_hint(settings: Settings, state: Path) -> str:
    """Where the token for the model server's admin endpoints (POST /reload) is."""
    path = token_file(settings, state)
    if path is not None and path.is_file():
        return f"admin token (POST /reload): in {path.resolve()}"
    return (
        "admin token (POST /reload): the TIDEMARK_SERVING_ADMIN_TOKEN setting (environment or .env)"
    )
