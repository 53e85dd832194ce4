"""GET /models/{name}/predictions/{key} and GET /predictions/{key}: the whole chain of one
item's prediction (``tidemark.explain``): inputs, the version that predicted and when, the
challenger's prediction, that version's lineage, and the truth and the window once joined."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter

from serving.dependencies import Explainer, ServingDep
from serving.errors import ConflictError, NotFoundError, UnavailableError
from serving.projects import ServedProject
from serving.schemas import ErrorResponse
from tidemark.explain import Explanation, ItemNotFoundError

router = APIRouter(tags=["explain"])

_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No prediction of that key is retained."},
    409: {"model": ErrorResponse, "description": "Several projects scored that key."},
    503: {"model": ErrorResponse, "description": "Kafka did not answer."},
}


@router.get("/models/{name}/predictions/{key}", response_model=Explanation, responses=_ANSWERS)
async def explain_item(name: str, key: str, serving: ServingDep) -> Explanation:
    """Why the item ``key`` of project ``name`` got its prediction: its inputs; the version
    that predicted it and when, and the challenger's prediction if one ran in shadow; that
    version's lineage (training run, window and rows, data fingerprint, trigger, held-out
    evidence per segment, how it came to production, links to MLflow and Prefect); once its
    truth is joined, the truth, the errors and the monitor's window that judged it.
    ``status`` says ``scored``, ``waiting_for_truth`` or ``no_truth``. Items are found on the
    predictions and scored topics, within their retention."""
    served = serving.project(name)
    return await _explain(serving.explainer, served, key)


@router.get("/predictions/{key}", response_model=Explanation, responses=_ANSWERS)
async def explain_default(key: str, serving: ServingDep) -> Explanation:
    """The same for whichever project scored ``key``: the only one when the stack has one
    project; with several, the one that holds the key (409 if several do)."""
    projects = serving.projects.all
    if not projects:
        raise NotFoundError(serving.projects.unknown("(default)"))
    if len(projects) == 1:
        return await _explain(serving.explainer, projects[0], key)
    found: list[Explanation] = []
    for served in projects:
        try:
            found.append(await _explain(serving.explainer, served, key))
        except NotFoundError:
            continue
    if not found:
        names = ", ".join(p.name for p in projects)
        raise NotFoundError(f"no project ({names}) has a retained prediction of {key!r}")
    if len(found) > 1:
        raise ConflictError(
            f"{key!r} was scored by {', '.join(e.project for e in found)}: ask "
            f"/models/{{name}}/predictions/{key} of one of them"
        )
    return found[0]


async def _explain(explainer: Explainer, served: ServedProject, key: str) -> Explanation:
    try:
        return await anyio.to_thread.run_sync(explainer, served, key)
    except ItemNotFoundError as error:
        raise NotFoundError(str(error)) from None
    except (OSError, TimeoutError) as error:
        raise UnavailableError(f"the topics could not be read: {error}") from error
    except Exception as error:
        if type(error).__module__.startswith("kafka"):
            raise UnavailableError(f"Kafka did not answer: {error}") from error
        raise
