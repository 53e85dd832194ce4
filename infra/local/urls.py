"""Where a person goes once ``make up`` is done: each UI, the API docs, the metrics endpoints."""

from __future__ import annotations

from pathlib import Path

from tidemark.config import Settings

ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 (a file name, not a secret)


def people_urls(settings: Settings) -> list[tuple[str, str]]:
    """(URL, what it is for), in the order a newcomer visits them."""
    metrics = "http://127.0.0.1:{}/metrics"
    return [
        (settings.mlflow_tracking_uri, "MLflow UI: versions, metrics, decisions"),
        (settings.prefect_ui_url, "Prefect UI: train, retrain, promote, rollback"),
        (f"{settings.serving_url}/docs", "API docs: try POST /predict"),
        (f"{settings.serving_url}/redoc", "API docs (ReDoc)"),
        (f"http://127.0.0.1:{settings.evidently_ui_port}", "Evidently UI: the monitor's windows"),
        (f"{settings.serving_url}/metrics", "metrics of the model server"),
        (metrics.format(settings.scorer_metrics_port), "metrics of the scorer"),
        (metrics.format(settings.joiner_metrics_port), "metrics of the joiner"),
        (metrics.format(settings.monitor_metrics_port), "metrics of the monitor"),
    ]


def admin_token_hint(state: Path) -> str:
    """Where the token for the model server's admin endpoints (POST /reload) is."""
    path = state / ADMIN_TOKEN_FILE
    if path.is_file():
        return f"admin token (POST /reload): in {path.resolve()}"
    return "admin token (POST /reload): the TIDEMARK_ADMIN_TOKEN setting (environment or .env)"
