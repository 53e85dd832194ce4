"""The framework's floor: a FastAPI app that reads the body and answers a constant, nothing more.

    .venv/bin/python -m benchmarks.serving.floor_app --port 8001 [--workers N]

No model server on FastAPI and uvicorn can answer faster than this, so benchmarks/serving/floor.py
measures ``tidemark serve`` as a share of it. It runs under the very uvicorn options of
``tidemark serve`` (serving.cli.run_uvicorn). The answer is a one-fish answer of the usual size.
"""

from __future__ import annotations

from typing import Annotated

import typer
from fastapi import FastAPI, Request, Response

from serving.cli import run_uvicorn

ANSWER = (
    b'{"model_name":"fish-weight","model_version":"1","fish_id":null,"species":"salmon",'
    b'"predicted_weight_kg":4.215,"species_known":true}'
)

app = FastAPI(title="The framework's floor")


@app.post("/predict")
async def predict(request: Request) -> Response:
    """Read the body, answer the constant."""
    await request.body()
    return Response(ANSWER, media_type="application/json")


@app.get("/ready")
async def ready() -> Response:
    """Always ready: there is nothing to load."""
    return Response(b"{}", media_type="application/json")


def main(
    port: Annotated[int, typer.Option()],
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve the floor on 127.0.0.1."""
    run_uvicorn("benchmarks.serving.floor_app:app", "127.0.0.1", port, workers)


if __name__ == "__main__":
    typer.run(main)
