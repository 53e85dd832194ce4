"""One pure-ASGI middleware for every request: the body size limit, metrics, the version header.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a stream per request
on a path whose whole budget is a few hundred microseconds. For the same reason it wraps
``receive`` only when the declared length does not already settle the limit (the HTTP server
never hands over more than the declared length).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.active_model import VERSION_HEADER, ModelHolder
from serving.metrics import NO_MODEL, ServingMetrics

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
        declared = _content_length(scope)
        if declared is None or declared > self.max_body_bytes:
            receive = _limited(receive, declared, self.max_body_bytes)
        status, version = 500, NO_MODEL

        # A plain function handing back ``send``'s awaitable: one coroutine less per message.
        def observing_send(message: Message) -> Awaitable[None]:
            nonlocal status, version
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                for key, value in headers:
                    if key == VERSION_HEADER:
                        version = value.decode("latin-1")
                        break
                else:
                    active = self.holder.active
                    if active is not None:
                        version = active.served.version
                        message = {**message, "headers": [*headers, active.version_header]}
            return send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", _UNMATCHED)
            self.metrics.count_request(
                endpoint, scope["method"], status, version, time.perf_counter() - started
            )


def _limited(receive: Receive, declared: int | None, limit: int) -> Receive:
    received = 0

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

    return limited_receive


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
