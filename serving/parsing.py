"""Request bodies of POST /predict: one fish (a JSON object) or a batch (a JSON array).

The body is validated straight from bytes by pydantic's JSON parser, which is faster than
decoding first and gives each error the exact place: ``length_cm`` for one fish, ``3.length_cm``
for the fourth fish of a batch.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError

from serving.schemas import Fish


class FishParser:
    """Parses and validates a predict body; the batch limit is fixed when the app is built."""

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        # The core validators themselves: ``model_validate_json`` and ``TypeAdapter.validate_json``
        # only add Python-level argument handling around them.
        self._one = TypeAdapter(Fish).validator
        self._batch = TypeAdapter(
            Annotated[list[Fish], Field(min_length=1, max_length=max_batch)]
        ).validator

    def parse(self, body: bytes) -> tuple[list[Fish], bool]:
        """The fish of the body and whether it was a batch; ``RequestValidationError`` if bad."""
        try:
            if body.lstrip()[:1] == b"[":
                batch: list[Fish] = self._batch.validate_json(body)
                return batch, True
            one: Fish = self._one.validate_json(body)
            return [one], False
        except ValidationError as error:
            raise RequestValidationError(located(error)) from None

    def openapi_schema(self, examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The request body as OpenAPI describes it: one fish or a non-empty batch, with
        ``examples`` (name → summary and value) for the docs' "Try it out"."""
        fish = Fish.model_json_schema()
        batch = {"type": "array", "items": fish, "minItems": 1, "maxItems": self.max_batch}
        return {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [fish, batch]}, "examples": examples}
            },
        }


def located(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors placed in the body, as FastAPI's own validation errors are."""
    return [
        {**item, "loc": ("body", *item["loc"])}
        for item in error.errors(include_url=False, include_input=False)
    ]
