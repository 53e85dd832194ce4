"""The ``rollback`` flow: production goes back to the version that preceded it."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.candidate import Outcome
from tidemark import registry
from tidemark.config import get_settings
from tidemark.orchestration import ROLLBACK_FLOW


@flow(name=ROLLBACK_FLOW)
def rollback() -> Outcome:
    """Re-point production to the previous production version; fails when there is none."""
    settings = get_settings()
    rolled_back, restored = registry.rollback(settings)
    get_run_logger().info("production: v%s -> v%s", rolled_back, restored)
    return Outcome(
        model_name=settings.model_name,
        version=restored,
        decision="rolled back",
        reason=f"v{rolled_back} rolled back; v{restored} is in production again",
        production_version=restored,
    )
