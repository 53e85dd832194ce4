"""Request bodies of a project's predict route: one item (a JSON object) or a batch (an array).

The model that validates one item is built from the project file (``tidemark.project``): its
features with their types, bounds, allowed values and spelling, exactly as the project's input
topic checks them, and its key, optional and echoed back; the event time is not asked for. A
bad request is refused with the same reasons a bad record on the stream gets, each naming the
field.

The body is validated straight from bytes by pydantic's JSON parser, which is faster than
decoding first and gives each error the exact place: ``<feature>`` for one item,
``3.<feature>`` for the fourth item of a batch.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from tidemark.project.contracts import Key, Message, field_type
from tidemark.project.spec import Project


def title_of(project: Project) -> str:
    """The project's name as a class name (``bakery-loaf`` → ``BakeryLoaf``)."""
    return "".join(part.capitalize() for part in project.name.split("-"))


def request_model(project: Project) -> type[BaseModel]:
    """One item of a predict request: the project's features, and its key, optional."""
    fields: dict[str, Any] = {
        project.key: (Key | None, Field(default=None, description="echoed back")),
    }
    for feature in project.features:
        annotation = field_type(feature)
        if feature.required:
            fields[feature.name] = (annotation, Field(description=feature.description))
        else:
            fields[feature.name] = (
                annotation | None,
                Field(default=None, description=feature.description),
            )
    model: type[BaseModel] = create_model(
        f"{title_of(project)}Request",
        __base__=Message,
        __doc__=f"One item of {project.name} to predict.",
        **fields,
    )
    return model


class ItemParser:
    """Parses and validates a project's predict body; the batch limit is fixed when the app
    is built."""

    def __init__(self, project: Project, max_batch: int) -> None:
        self.project = project
        self.max_batch = max_batch
        self.model = request_model(project)
        # The core validators themselves: ``model_validate_json`` and ``TypeAdapter.validate_json``
        # only add Python-level argument handling around them.
        self._one = TypeAdapter(self.model).validator
        batch: Any = Annotated[list[self.model], Field(min_length=1, max_length=max_batch)]  # type: ignore[name-defined]
        self._batch = TypeAdapter(batch).validator

    def parse(self, body: bytes) -> tuple[list[dict[str, Any]], bool]:
        """The items of the body as their fields by name (an absent optional one is None), and
        whether it was a batch; ``RequestValidationError`` naming the fields when it is bad.

        The fields are the validated instances' own dicts: no copy on the request path.
        """
        try:
            if body.lstrip()[:1] == b"[":
                batch = self._batch.validate_json(body)
                return [item.__dict__ for item in batch], True
            return [self._one.validate_json(body).__dict__], False
        except ValidationError as error:
            raise RequestValidationError(located(error)) from None

    def openapi_schema(self, examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The request body as OpenAPI describes it: one item or a non-empty batch, with
        ``examples`` (name → summary and value) for the docs' "Try it out"."""
        one = self.model.model_json_schema()
        batch = {"type": "array", "items": one, "minItems": 1, "maxItems": self.max_batch}
        return {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [one, batch]}, "examples": examples}
            },
        }


def located(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors placed in the body, as FastAPI's own validation errors are."""
    return [
        {**item, "loc": ("body", *item["loc"])}
        for item in error.errors(include_url=False, include_input=False)
    ]
