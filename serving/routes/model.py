"""GET /model: which model version is in service, what it was trained on, how good it was."""

from __future__ import annotations

import math

from fastapi import APIRouter

from serving.dependencies import ServingDep
from serving.errors import NoModelError
from serving.schemas import ErrorResponse, ModelInfo

router = APIRouter(tags=["model"])

# Version tags of the registry contract that carry metrics (champion ones may say "none").
_METRIC_TAG_PREFIXES = ("candidate_", "champion_")
# The version this one was compared with: an identifier that parses as a number, not a metric.
_CHAMPION_VERSION_TAG = "champion_version"


@router.get("/model", response_model=ModelInfo, responses={503: {"model": ErrorResponse}})
async def model_info(serving: ServingDep) -> ModelInfo:
    """Name, version, run id, load time, training window and metrics of the model in service."""
    active, settings = serving.holder.active, serving.settings
    if active is None:
        raise NoModelError(
            f"no model loaded: no version of {settings.registry.model_name!r} is in production yet",
            settings.registry.poll_interval_s,
        )
    served = active.served
    return ModelInfo(
        name=served.name,
        version=served.version,
        run_id=served.run_id,
        loaded_at=served.loaded_at,
        training_window_start=served.tags.get("training_window_start"),
        training_window_end=served.tags.get("training_window_end"),
        known_species=sorted(served.known_species),
        champion_version=_version_or_none(served.tags.get(_CHAMPION_VERSION_TAG)),
        fast_path=active.fast is not None,
        metrics=metrics_from_tags(served.tags),
        tags=served.tags,
    )


def metrics_from_tags(tags: dict[str, str]) -> dict[str, float]:
    """The numeric metric tags of a version (``candidate_mae`` …); "none" and junk are skipped."""
    metrics = {}
    for key, value in tags.items():
        if not key.startswith(_METRIC_TAG_PREFIXES) or key == _CHAMPION_VERSION_TAG:
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):
            metrics[key] = number
    return metrics


def _version_or_none(tag: str | None) -> str | None:
    # The tag says "none" when there was no champion to compare with (the first version).
    return tag if tag and tag.isdigit() else None
