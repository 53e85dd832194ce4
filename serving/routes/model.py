"""GET /model: which model version is in service, what it was trained on, how good it was,
and the challenger in shadow beside it with its running evidence on live items."""

from __future__ import annotations

import math

import anyio
from fastapi import APIRouter

from serving.dependencies import ServingDep
from serving.errors import NoModelError
from serving.schemas import ChallengerInfo, ErrorResponse, ModelInfo
from tidemark.judging.shadow import SHADOW_ROLE_TAG, SHADOW_STATE_TAG, ShadowEvaluation
from tidemark.logs import get_logger
from tidemark.registry.reader import RegistryUnavailableError, VersionRef

log = get_logger("serving.model")

router = APIRouter(tags=["model"])

# Version tags of the registry contract that carry metrics (champion ones may say "none").
_METRIC_TAG_PREFIXES = ("candidate_", "champion_")
# The version this one was compared with: an identifier that parses as a number, not a metric.
_CHAMPION_VERSION_TAG = "champion_version"


@router.get("/model", response_model=ModelInfo, responses={503: {"model": ErrorResponse}})
async def model_info(serving: ServingDep) -> ModelInfo:
    """Name, version, run id, load time, training window and metrics of the model in service,
    and the challenger in shadow (read from the registry on each request)."""
    active, settings = serving.holder.active, serving.settings
    if active is None:
        raise NoModelError(
            f"no model loaded: no version of {settings.registry.model_name!r} is in production yet",
            settings.registry.poll_interval_s,
        )
    served = active.served
    challenger, challenger_error = None, None
    try:
        ref = await anyio.to_thread.run_sync(serving.challenger)
        challenger = None if ref is None else challenger_info(ref)
    except RegistryUnavailableError as error:
        challenger_error = str(error)
    return ModelInfo(
        name=served.name,
        version=served.version,
        run_id=served.run_id,
        loaded_at=served.loaded_at,
        training_window_start=served.tags.get("training_window_start"),
        training_window_end=served.tags.get("training_window_end"),
        segment=served.project.segment,
        known_segments=sorted(served.segments or ()),
        champion_version=_version_or_none(served.tags.get(_CHAMPION_VERSION_TAG)),
        fast_path=active.fast is not None,
        metrics=metrics_from_tags(served.tags),
        tags=served.tags,
        challenger=challenger,
        challenger_error=challenger_error,
    )


def challenger_info(ref: VersionRef) -> ChallengerInfo:
    """The challenger's tags and the state of its challenge as the monitor last saved it."""
    tags = ref.tags
    state = None
    if raw := tags.get(SHADOW_STATE_TAG):
        try:
            state = ShadowEvaluation.from_json(raw)
        except ValueError as error:  # an unreadable state must not hide the challenger
            log.warning("unreadable challenge state", version=ref.version, error=str(error))
    return ChallengerInfo(
        version=ref.version,
        champion_version=tags.get("shadow_champion"),
        role=tags.get(SHADOW_ROLE_TAG),
        started_at=tags.get("shadow_started_at"),
        start_reason=tags.get("shadow_start_reason"),
        verdict=state.verdict.value if state else None,
        n=state.n if state else 0,
        windows=state.looks if state else 0,
        statistic=state.statistic if state else None,
        p_value=state.p_value if state else None,
        alpha=state.config.alpha if state else None,
        champion_mre=state.overall.champion_mean if state else None,
        challenger_mre=state.overall.challenger_mean if state else None,
        reason=state.reason if state else None,
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
