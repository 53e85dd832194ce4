"""One pure-ASGI middleware for every request: the body size limit, metrics, the version header.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a stream per request
on a path whose whole budget is a couple of milliseconds.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.active_model import ModelHolder
from serving.metrics import NO_MODEL, ServingMetrics

VERSION_HEADER = b"x-model-version"
_UNMATCHED = "unmatched"


class BodyTooLargeError(Exception):
    """The request body is over the configured limit (answered with 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than the limit of {limit} bytes")
        self.limit = limit


class ServingMiddleware:
    """Limits request bodies, names the model version on every response, records metrics."""

    def __init__(
        self, app: ASGIApp, *, holder: ModelHolder, metrics: ServingMetrics, max_body_bytes: int
    ) -> None:
        self.app = app
        self.holder = holder
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        limit = self.max_body_bytes
        declared = _content_length(scope)
        received = 0
        status, version = 500, NO_MODEL

        async def limited_receive() -> Message:
            nonlocal received
            # The declared length refuses an oversized body before reading any of it; counting
            # catches chunked bodies that declare none.
            if declared is not None and declared > limit:
                raise BodyTooLargeError(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def observing_send(message: Message) -> None:
            nonlocal status, version
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                named = next((v for k, v in headers if k == VERSION_HEADER), None)
                if named is not None:
                    version = named.decode("latin-1")
                else:
                    active = self.holder.active
                    if active is not None:
                        version = active.served.version
                        headers.append((VERSION_HEADER, version.encode("latin-1")))
                        message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, observing_send)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", _UNMATCHED)
            self.metrics.requests.labels(endpoint, scope["method"], str(status), version).inc()
            self.metrics.latency.labels(endpoint, version).observe(time.perf_counter() - started)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
