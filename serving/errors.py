"""How refused requests are answered: always JSON with a one-line ``detail`` a person can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette import status

from serving.middleware import BodyTooLargeError
from serving.schemas import ErrorResponse, FieldError
from tidemark.modelling.frames import DataError

# A 1,000-item batch with a bad column would otherwise list 1,000 times the same reason.
_MAX_LISTED_ERRORS = 20


class NotFoundError(Exception):
    """Nothing of that name here: an unknown project, an item with no record (answered 404)."""


class UnavailableError(Exception):
    """The registry or Kafka did not answer a read a route needs (answered 503)."""


class ConflictError(Exception):
    """A name that designates several things where the route needs one (answered 409)."""


class NoModelError(Exception):
    """There is no production model to answer with (answered with 503)."""

    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


def error_response(
    status_code: int, detail: str, errors: Sequence[FieldError] = ()
) -> JSONResponse:
    """The JSON body of every refusal."""
    body = ErrorResponse(detail=detail, errors=list(errors))
    return JSONResponse(body.model_dump(), status_code=status_code)


def field_errors(raw: Sequence[Any]) -> list[FieldError]:
    """Pydantic/FastAPI error dicts as fields and reasons (``body`` itself is left out)."""
    out = []
    for item in raw:
        loc = [str(part) for part in item.get("loc", ())]
        if loc[:1] == ["body"]:
            loc = loc[1:]
        out.append(FieldError(field=".".join(loc) or "body", reason=item["msg"], type=item["type"]))
    return out


async def _invalid(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = field_errors(error.errors())
    listed = errors[:_MAX_LISTED_ERRORS]
    detail = "; ".join(f"{e.field}: {e.reason}" for e in listed)
    if len(errors) > len(listed):
        detail += f"; and {len(errors) - len(listed)} more errors"
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, detail, listed)


async def _unusable(_: Request, error: Exception) -> JSONResponse:
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error))


async def _no_model(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, NoModelError)
    response = error_response(status.HTTP_503_SERVICE_UNAVAILABLE, str(error))
    # The watcher asks the registry at this pace, so sooner would not help.
    response.headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
    return response


async def _too_large(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, BodyTooLargeError)
    return error_response(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"request body is larger than {error.limit} bytes; send fewer items per request",
    )


async def _not_found(_: Request, error: Exception) -> JSONResponse:
    return error_response(status.HTTP_404_NOT_FOUND, str(error))


async def _unavailable(_: Request, error: Exception) -> JSONResponse:
    return error_response(status.HTTP_503_SERVICE_UNAVAILABLE, str(error))


async def _conflict(_: Request, error: Exception) -> JSONResponse:
    return error_response(status.HTTP_409_CONFLICT, str(error))


def install(app: FastAPI) -> None:
    """Register the handlers of every refusal the server makes."""
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(DataError, _unusable)
    app.add_exception_handler(NoModelError, _no_model)
    app.add_exception_handler(BodyTooLargeError, _too_large)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(UnavailableError, _unavailable)
    app.add_exception_handler(ConflictError, _conflict)
