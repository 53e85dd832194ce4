"""The MLflow tracking server in one process: what ``mlflow server`` does, minus its launcher.

``mlflow server --workers 1`` imports all of MLflow (about 285 MB) only to prepare the stores and
start ``python -m uvicorn mlflow.server.fastapi_app:app`` as a child, then waits for it. This
does the same two steps in one process: it hands the app its configuration through the
variables ``mlflow server`` sets for its workers (``mlflow.server.constants``), prepares the
backend and registry stores (creating or upgrading the database) before the first request, and
serves the same app with uvicorn in-process. Job execution stays off, as the stack wants it.

Usage: ``python -m infra.local.mlflow_server --backend-store-uri URI --artifacts-destination DIR
--host HOST --port PORT``.
"""

from __future__ import annotations

import argparse
import os
import uuid
from pathlib import Path

# What `mlflow server` resolves the artifact root to when it proxies artifacts (the default).
_PROXIED_ARTIFACT_ROOT = "mlflow-artifacts:/"


def main(argv: list[str] | None = None) -> None:
    """Prepare the stores and serve MLflow's app until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend-store-uri", required=True)
    parser.add_argument("--artifacts-destination", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)

    from mlflow.server import constants

    os.environ.update(
        {
            constants.BACKEND_STORE_URI_ENV_VAR: args.backend_store_uri,
            constants.REGISTRY_STORE_URI_ENV_VAR: args.backend_store_uri,
            constants.ARTIFACT_ROOT_ENV_VAR: _PROXIED_ARTIFACT_ROOT,
            constants.SERVE_ARTIFACTS_ENV_VAR: "true",
            constants.ARTIFACTS_DESTINATION_ENV_VAR: args.artifacts_destination,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # The server never loads a model, and should it ever, it does not unpickle one.
            "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
            # The rest of what `mlflow server` tells a uvicorn worker about itself.
            "_MLFLOW_SGI_NAME": "uvicorn",
            "_MLFLOW_SERVER_BOOT_ID": uuid.uuid4().hex,
            "_MLFLOW_IN_JOB_EXECUTOR": "false",
        }
    )
    import mlflow.server
    import uvicorn
    from mlflow.server.handlers import initialize_backend_stores

    initialize_backend_stores(
        args.backend_store_uri, args.backend_store_uri, _PROXIED_ARTIFACT_ROOT
    )
    log_config = Path(mlflow.server.__file__).parent / "uvicorn_log_config.yaml"
    uvicorn.run(
        "mlflow.server.fastapi_app:app",
        host=args.host,
        port=args.port,
        log_config=str(log_config) if log_config.exists() else None,
    )


if __name__ == "__main__":
    main()
